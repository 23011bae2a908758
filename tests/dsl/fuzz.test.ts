/**
 * Bad input never crashes the language tools (DESIGN.md §5): 5,000 mutated copies of the seed
 * workflows (`workflows/*.wf` and `workflows/shared/*.wf`, read at test time) go through
 * `checkSource`, which must not throw, must not report an internal error (WF0901), and must give
 * every diagnostic a message and a span inside the text it names. The result must be an error,
 * or a model that compiles and instantiates, or a file that is not a workflow at all (a library
 * of types and tables, or a file cut before its first declaration).
 *
 * Each copy gets one to three mutations — delete, duplicate or swap adjacent tokens, insert
 * random Unicode (CJK, emoji, combining marks, full-width punctuation, control characters, lone
 * surrogates), truncate — from a seeded generator, so a failure prints the seed and source that
 * reproduce it. `FUZZ_SEED=<n>` changes the base seed, `FUZZ_RUNS=<n>` the count, and
 * `FUZZ_CASE=<seed>` runs the one case with that seed.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSource, type SourceLoader } from '../../dsl/check.ts';
import { compile } from '../../dsl/compile.ts';
import { instantiate } from '../../dsl/runtime.ts';
import { positions, spanProblems } from './markers.ts';

const WORKFLOWS = fileURLToPath(new URL('../../workflows/', import.meta.url));
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 5000);
const BASE_SEED = Number(process.env['FUZZ_SEED'] ?? 20240501);
const ONE_CASE = process.env['FUZZ_CASE'];

// ---- seeds -------------------------------------------------------------------------------------

interface Seed {
  /** Path relative to `workflows/`, which is also the file name given to the checker. */
  readonly file: string;
  readonly source: string;
}

function readSeeds(): Seed[] {
  const list = (dir: string): string[] => (existsSync(posix.join(WORKFLOWS, dir))
    ? readdirSync(posix.join(WORKFLOWS, dir)).filter((f) => f.endsWith('.wf')).sort().map((f) => posix.join(dir, f))
    : []);
  return [...list('.'), ...list('shared')].map((file) => ({ file, source: readFileSync(posix.join(WORKFLOWS, file), 'utf8') }));
}

/** Used only when `workflows/` has no `.wf` files: the golden draft and a small valid workflow. */
const FALLBACK: readonly Seed[] = [
  { file: 'ten-mistakes.wf', source: readFileSync(fileURLToPath(new URL('./fixtures/ten-mistakes.wf', import.meta.url)), 'utf8') },
  {
    file: 'inline.wf',
    source: 'workflow 示例 "示例"\nroles 居民, 书记\ncase { 电话: text matches "^1[0-9]{10}$", 评分: number? }\nstart 受理 by 居民\n' +
      'state 受理\n  on 评价 by 书记 with { 分数: number range 1..5 } set case.评分 = 分数\n    -> 办结 when 分数 >= 3\n    -> 受理 otherwise\n' +
      '  after 2 workdays escalate -> 受理\nfinal 办结\n',
  },
];

const FOUND = readSeeds();
const SEEDS = FOUND.length > 0 ? FOUND : FALLBACK;

/** Imports read the real (unmutated) files under `workflows/`, cached. */
const cache = new Map<string, string | undefined>();
const load: SourceLoader = (from, importer) => {
  const path = posix.normalize(posix.join(posix.dirname(importer), from));
  if (path.startsWith('../') || path.startsWith('/')) return undefined;
  if (!cache.has(path)) {
    const full = posix.join(WORKFLOWS, path);
    cache.set(path, existsSync(full) && statSync(full).isFile() ? readFileSync(full, 'utf8') : undefined);
  }
  const source = cache.get(path);
  return source === undefined ? undefined : { file: path, source };
};

// ---- a seeded generator and the mutations -------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Token boundaries as the language roughly sees them; it need not match the real lexer. */
const TOKEN = /"(?:[^"\\\n]|\\.)*"?|“[^”\n]*”?|--[^\n]*|[\p{L}_][\p{L}\p{N}\p{M}_]*|\d+(?:\.\d+)?|->|\.\.|[=!<>]=|&&|\|\||\?\?|\S/gu;

function tokens(source: string): { start: number; end: number }[] {
  return [...source.matchAll(TOKEN)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
}

const pickFrom = (r: (n: number) => number, xs: readonly string[]): string => xs[r(xs.length)] ?? '';
const codePoint = (r: (n: number) => number, lo: number, hi: number): string => String.fromCodePoint(lo + r(hi - lo + 1));

/** Random Unicode of the kinds a Chinese input method, a paste or a broken file produce. */
const UNICODE_KINDS: readonly ((r: (n: number) => number) => string)[] = [
  (r) => codePoint(r, 0x4e00, 0x9fff), // CJK
  (r) => codePoint(r, 0x20000, 0x2a6df), // CJK Extension B (a surrogate pair)
  (r) => pickFrom(r, ['😀', '👍', '🏠', '👨‍👩‍👧', '🇨🇳', '❤️', '1️⃣']), // emoji, with ZWJ, flags and variation selectors
  (r) => codePoint(r, 0x0300, 0x036f), // combining marks
  (r) => pickFrom(r, ['，', '。', '：', '；', '（', '）', '！', '？', '【', '】', '“', '”', '「', '」', '｜', '％', '、', '＝', '－', '＞']), // full-width punctuation
  (r) => pickFrom(r, ['\u0000', '\u0007', '\b', '\t', '\r', '\u000b', '\f', '\u001b', '\u007f', '\u0085', '\u200b', '\u200d', '\u2028', '\u2029', '\ufeff', '\u00a0', '\u3000']), // control and invisible characters
  (r) => pickFrom(r, ['\ud800', '\udbff', '\udc00', '\udfff']), // lone surrogates
  (r) => pickFrom(r, ['"', '“', '「', '{', '}', '(', ')', '[', ']', '|', '->', '..', '?', '%', '\n']), // structure characters
];

type Mutation = 'delete' | 'duplicate' | 'swap' | 'insert' | 'truncate';
const MUTATIONS: readonly Mutation[] = ['delete', 'duplicate', 'swap', 'insert', 'truncate'];

function mutateOnce(source: string, r: (n: number) => number): { source: string; what: string } {
  const kind = MUTATIONS[r(MUTATIONS.length)] ?? 'delete';
  const ts = tokens(source);
  const t = ts[r(Math.max(1, ts.length))];
  switch (kind) {
    case 'delete':
      if (t === undefined) return { source, what: 'delete (nothing)' };
      return { source: source.slice(0, t.start) + source.slice(t.end), what: `delete ${JSON.stringify(source.slice(t.start, t.end))} at ${t.start}` };
    case 'duplicate':
      if (t === undefined) return { source, what: 'duplicate (nothing)' };
      return { source: source.slice(0, t.end) + ' ' + source.slice(t.start, t.end) + source.slice(t.end), what: `duplicate ${JSON.stringify(source.slice(t.start, t.end))} at ${t.start}` };
    case 'swap': {
      const i = r(Math.max(1, ts.length - 1));
      const a = ts[i];
      const b = ts[i + 1];
      if (a === undefined || b === undefined) return { source, what: 'swap (nothing)' };
      const swapped = source.slice(0, a.start) + source.slice(b.start, b.end) + source.slice(a.end, b.start) + source.slice(a.start, a.end) + source.slice(b.end);
      return { source: swapped, what: `swap ${JSON.stringify(source.slice(a.start, a.end))} and ${JSON.stringify(source.slice(b.start, b.end))} at ${a.start}` };
    }
    case 'insert': {
      const make = UNICODE_KINDS[r(UNICODE_KINDS.length)] ?? UNICODE_KINDS[0];
      const text = Array.from({ length: 1 + r(3) }, () => make?.(r) ?? '').join('');
      // Anywhere, in the middle of a token or of a surrogate pair included.
      const at = r(source.length + 1);
      return { source: source.slice(0, at) + text + source.slice(at), what: `insert ${JSON.stringify(text)} at ${at}` };
    }
    case 'truncate': {
      const at = r(source.length + 1);
      return { source: source.slice(0, at), what: `truncate at ${at}` };
    }
  }
}

interface Case {
  readonly seed: number;
  readonly file: string;
  readonly source: string;
  readonly mutations: readonly string[];
}

function makeCase(seed: number): Case {
  const r = prng(seed);
  const base = SEEDS[r(SEEDS.length)] ?? { file: 'inline.wf', source: '' };
  let source = base.source;
  const mutations: string[] = [];
  const count = 1 + r(3);
  for (let i = 0; i < count; i++) {
    const m = mutateOnce(source, r);
    source = m.source;
    mutations.push(m.what);
  }
  return { seed, file: base.file, source, mutations };
}

// ---- the property --------------------------------------------------------------------------------

/** What is wrong with the outcome of one case (empty when it holds), and whether it gave a model. */
function run(c: Case): { problems: string[]; model: boolean } {
  let result: ReturnType<typeof checkSource>;
  try {
    result = checkSource(c.source, c.file, { load });
  } catch (e) {
    return { problems: [`checkSource threw: ${e instanceof Error ? e.stack ?? e.message : String(e)}`], model: false };
  }
  const problems: string[] = [];
  const at = new Map<string, ReturnType<typeof positions>>();
  for (const d of result.diagnostics) {
    const file = d.file ?? c.file;
    const text = file === c.file ? c.source : load(file, c.file)?.source;
    const where = `${d.code} ${d.span.start.line}:${d.span.start.col} in ${file}`;
    if (d.code === 'WF0901') problems.push(`internal error: ${d.message}`);
    if (d.message.trim() === '') problems.push(`${where}: empty message`);
    if (text === undefined) {
      problems.push(`${where}: names a file that was not read`);
      continue;
    }
    if (!at.has(file)) at.set(file, positions(text));
    for (const p of spanProblems(d.span, text, at.get(file))) problems.push(`${where}: ${p}`);
  }
  const hasError = result.diagnostics.some((d) => d.severity === 'error');
  const isWorkflow = result.document.decls.some((d) => d.kind === 'workflow' || d.kind === 'state' || d.kind === 'start' || d.kind === 'case');
  if (result.model !== undefined) {
    // A model is compiled even when it came with errors (it should not, see codes.test.ts): whoever
    // gets one may deploy it.
    try {
      instantiate(compile(result.model));
    } catch (e) {
      problems.push(`compile/instantiate threw${hasError ? ' (on a model returned with errors)' : ''}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    }
  } else if (!hasError && isWorkflow) {
    problems.push('no error and no model for a workflow');
  }
  return { problems, model: result.model !== undefined };
}

/** A problem without its numbers and quoted details, to group failures of one kind. */
function kindOf(problem: string): string {
  return (problem.split('\n')[0] ?? problem).replace(/ in \S+: /, ': ').replace(/"[^"]*"/g, '"…"').replace(/(?<!WF\d*)\d+/g, 'N').slice(0, 140);
}

function report(c: Case, problems: readonly string[]): string {
  return [
    `seed ${c.seed} (rerun with FUZZ_CASE=${c.seed}), from ${c.file}, mutations: ${c.mutations.join('; ')}`,
    ...problems.map((p) => `  - ${p}`),
    '  source:',
    ...c.source.split('\n').map((l, i) => `  ${String(i + 1).padStart(4)} | ${JSON.stringify(l).slice(1, -1)}`),
  ].join('\n');
}

describe('fuzzing the checker with mutated seed workflows', () => {
  it('mutates the seed workflows in workflows/ (falling back to the golden draft and an inline workflow)', () => {
    expect(SEEDS.length).toBeGreaterThan(0);
    expect(SEEDS.every((s) => checkSource(s.source, s.file, { load }).diagnostics.every((d) => d.code !== 'WF0901'))).toBe(true);
  });

  const seeds = ONE_CASE === undefined ? Array.from({ length: RUNS }, (_, i) => BASE_SEED + i) : [Number(ONE_CASE)];

  it(`${seeds.length} mutated copies: no crash, no WF0901, valid spans, an error or a runnable model`, () => {
    const started = Date.now();
    const failures: string[] = [];
    const kinds = new Map<string, number[]>();
    let failed = 0;
    let models = 0;
    for (const seed of seeds) {
      const c = makeCase(seed);
      const { problems, model } = run(c);
      if (problems.length > 0) {
        failed++;
        for (const k of new Set(problems.map(kindOf))) kinds.set(k, [...(kinds.get(k) ?? []), seed]);
        if (failures.length < 3) failures.push(report(c, problems));
      }
      if (model) models++;
    }
    const seconds = (Date.now() - started) / 1000;
    if (failed > 0) {
      const summary = [...kinds].map(([k, ss]) => `  ${ss.length} × ${k} (e.g. FUZZ_CASE=${ss.slice(0, 3).join(', ')})`).join('\n');
      console.error(`${failed} of ${seeds.length} cases failed (base seed ${BASE_SEED}); by kind:\n${summary}\n\nthe first ${failures.length}:\n\n${failures.join('\n\n')}`);
    }
    expect(failed, failures.join('\n\n')).toBe(0);
    // A fuzz run in which nothing ever compiles would only be testing the error paths.
    if (ONE_CASE === undefined) expect(models).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(60);
  });
});
