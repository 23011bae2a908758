/**
 * The diagnostic codes, pinned: one bad-input fixture per code in `tests/dsl/fixtures/codes/`
 * (named after the code), each marking inline every diagnostic it must produce — the scheme is
 * described in `./markers.ts`; in short, a comment line under the offending line:
 *
 * ```
 *   on 提交 by 未知角色 -> 办结
 * --           ^^^^^^^^ WF0203
 * ```
 *
 * The carets give the span (aligned as the text looks: CJK characters are two columns wide), and
 * the set of markers must equal the set of diagnostics, so a fixture also pins that nothing else
 * is reported. `-- expect WF0212 at 5:1-6:25` and `-- expect WF0106 at eof` give positions a
 * caret cannot reach. Imports resolve relative to the importing fixture, inside the fixture
 * folder; helper files live in `lib/`, and markers in a helper file count when a fixture loads it.
 *
 * Also here: the code table's own consistency, scenario-file errors (WF07xx, which come from the
 * scenario loader rather than from `.wf` sources), and docs/diagnostics.md covering every code.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSource, type SourceLoader } from '../../dsl/check.ts';
import { CODES } from '../../dsl/codes.ts';
import { compile } from '../../dsl/compile.ts';
import type { Diagnostic } from '../../dsl/diagnostics.ts';
import { ScenarioFormatError, loadFixtures, runScenario } from '../../engine/scenario.ts';
import { matchesMarker, positions, readMarkers, spanProblems, type Expected } from './markers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = fileURLToPath(new URL('./fixtures/codes/', import.meta.url));

/** Codes pinned by a test other than a `.wf` fixture, with where. */
const COVERED_ELSEWHERE: Readonly<Record<string, string>> = {
  WF0701: 'the scenario test below (a step that does not go as written)',
  WF0702: 'the scenario-file test below (engine/scenario.ts throws ScenarioFormatError)',
};

const ALL_CODES = Object.keys(CODES) as (keyof typeof CODES)[];
const FIXTURES = readdirSync(DIR).filter((f) => f.endsWith('.wf')).sort();

interface Checked {
  readonly diagnostics: readonly Diagnostic[];
  readonly hasModel: boolean;
  /** Every file the check read, by fixture-relative path: the fixture and whatever it imported. */
  readonly sources: ReadonlyMap<string, string>;
}

function checkFixture(name: string): Checked {
  const sources = new Map<string, string>([[name, readFileSync(posix.join(DIR, name), 'utf8')]]);
  const load: SourceLoader = (from, importer) => {
    const path = posix.normalize(posix.join(posix.dirname(importer), from));
    if (path.startsWith('../') || !existsSync(posix.join(DIR, path)) || !statSync(posix.join(DIR, path)).isFile()) return undefined;
    const source = readFileSync(posix.join(DIR, path), 'utf8');
    sources.set(path, source);
    return { file: path, source };
  };
  const r = checkSource(sources.get(name) ?? '', name, { load });
  return { diagnostics: r.diagnostics, hasModel: r.model !== undefined, sources };
}

const show = (file: string, d: Diagnostic): string =>
  `${file} ${d.span.start.line}:${d.span.start.col}-${d.span.end.line}:${d.span.end.col} ${d.code} ${d.message}`;
const showExpected = (file: string, e: Expected): string =>
  `${file} ${e.line}:${e.col} ${e.code} (marker on line ${e.markerLine})`;

describe('the code table', () => {
  it('has well-formed, unique codes and titles', () => {
    for (const code of ALL_CODES) {
      expect(code).toMatch(/^WF\d{4}$/);
      expect(['error', 'warning']).toContain(CODES[code].severity);
      expect(CODES[code].title.trim()).not.toBe('');
    }
    // An object literal keeps the last of two equal keys, so count them in the source too.
    const written = [...readFileSync(posix.join(ROOT, 'dsl/codes.ts'), 'utf8').matchAll(/^\s*(WF\d{4})\s*:/gm)].map((m) => m[1]);
    expect(written).toEqual(ALL_CODES);
    const titles = ALL_CODES.map((c) => CODES[c].title);
    expect(titles.filter((t, i) => titles.indexOf(t) !== i)).toEqual([]);
  });

  it('has a fixture for every code that a .wf source can produce, and no fixture for any other', () => {
    const want = ALL_CODES.filter((c) => !c.startsWith('WF09') && !(c in COVERED_ELSEWHERE));
    const have = FIXTURES.map((f) => f.replace(/\.wf$/, ''));
    expect({ missing: want.filter((c) => !have.includes(c)), unknown: have.filter((c) => !(want as string[]).includes(c)) })
      .toEqual({ missing: [], unknown: [] });
  });

});

describe('each fixture reports exactly its marked diagnostics', () => {
  it.each(FIXTURES)('%s', (name) => {
    const code = name.replace(/\.wf$/, '');
    const { diagnostics, sources } = checkFixture(name);

    const problems: string[] = [];
    for (const d of diagnostics) {
      const file = d.file ?? name;
      const source = sources.get(file);
      if (source === undefined) {
        problems.push(`${show(file, d)}: names a file the check did not read`);
        continue;
      }
      if (d.code === 'WF0901') problems.push(`${show(file, d)}: internal error`);
      if (!(d.code in CODES)) problems.push(`${show(file, d)}: code not in CODES`);
      else if (CODES[d.code as keyof typeof CODES].severity !== d.severity) problems.push(`${show(file, d)}: severity ${d.severity}, CODES says otherwise`);
      if (d.message.trim() === '') problems.push(`${show(file, d)}: empty message`);
      if ((d.hint ?? '').trim() === '') problems.push(`${show(file, d)}: no hint`);
      for (const p of spanProblems(d.span, source, positions(source))) problems.push(`${show(file, d)}: ${p}`);
    }
    expect(problems).toEqual([]);

    const expected = [...sources].flatMap(([file, source]) => readMarkers(source).map((e) => ({ file, e })));
    expect(expected.map(({ e }) => e.code), `${name} marks no ${code}`).toContain(code);

    const unmatched = [...diagnostics];
    const missing: string[] = [];
    for (const { file, e } of expected) {
      const i = unmatched.findIndex((d) => (d.file ?? name) === file && matchesMarker(d, e));
      if (i < 0) missing.push(showExpected(file, e));
      else unmatched.splice(i, 1);
    }
    expect({ missing, unexpected: unmatched.map((d) => show(d.file ?? name, d)) }).toEqual({ missing: [], unexpected: [] });
  });
});

describe('checkSource', () => {
  it('gives no model for a draft with an error, syntax errors included', () => {
    const wrong = FIXTURES.map((f) => ({ f, r: checkFixture(f) }))
      .filter(({ r }) => r.hasModel && r.diagnostics.some((d) => d.severity === 'error'))
      .map(({ f, r }) => `${f}: ${r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code).join(', ')}`);
    expect(wrong).toEqual([]);
  });
});

describe('scenario files (WF07xx)', () => {
  const def = (() => {
    const r = checkSource('workflow 示例\nroles 居民\nstart 受理 by anyone\nstate 受理\n  on 完成 by anyone -> 办结\n  after 2 workdays -> 办结\nfinal 办结\n', '示例.wf');
    if (r.model === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
    return compile(r.model);
  })();
  const fixtures = loadFixtures({ units: [{ id: '社区1', level: 'community' }], actors: [] });
  const start = { at: '2026-03-02T09:00:00+08:00', unit: '社区1', data: {} };

  const thrown = (f: () => unknown): unknown => {
    try {
      f();
    } catch (e) {
      return e;
    }
    return undefined;
  };

  it.each([
    ['a fixture whose units are not a list', () => loadFixtures({ units: '社区1' }), 'fixtures.units'],
    ['a unit with an unknown level', () => loadFixtures({ units: [{ id: 'x', level: '乡' }] }), 'fixtures.units[0].level'],
    ['a unit whose parent is unknown', () => loadFixtures({ units: [{ id: 'x', level: 'grid', parent: 'y' }] }), 'fixtures.units[0].parent'],
    ['a scenario without a name', () => runScenario(def, fixtures, { start }), 'scenario.name'],
    ['a step that is none of send, wait, until, expect', () => runScenario(def, fixtures, { name: 't', start, steps: [{ sned: '完成' }] }), 'scenario.steps[0]'],
    ['a wait that is not a duration', () => runScenario(def, fixtures, { name: 't', start, steps: [{ wait: '明天' }] }), 'scenario.steps[0].wait'],
  ] as const)('WF0702 for %s, naming the path', (_what, run, path) => {
    const e = thrown(run);
    expect(e).toBeInstanceOf(ScenarioFormatError);
    const err = e as ScenarioFormatError;
    expect(err.code).toBe('WF0702');
    expect(err.code in CODES).toBe(true);
    expect(err.path).toBe(path);
    expect(err.message.startsWith(`${path}: `)).toBe(true);
  });

  it('WF0701 for a step that does not go as written', () => {
    const r = runScenario(def, fixtures, { name: 't', start, steps: [{ send: '完成' }, { expect: { state: '不存在' } }] });
    expect(r.passed).toBe(false);
    expect(r.failures).toEqual([{ code: 'WF0701', step: 2, message: 'expected state 不存在, but the case is in 办结.' }]);
  });

  it('a well-formed scenario throws nothing', () => {
    const r = runScenario(def, fixtures, { name: 't', start, steps: [{ send: '完成' }, { expect: { state: '办结' } }] });
    expect(r.failures).toEqual([]);
  });
});

describe('docs/diagnostics.md', () => {
  const path = posix.join(ROOT, 'docs/diagnostics.md');
  const doc = existsSync(path) ? readFileSync(path, 'utf8') : '';
  /** Table rows `| WF0101 | title | explanation | hint |`, by code. */
  const rows = new Map<string, string[]>();
  const duplicates: string[] = [];
  for (const line of doc.split('\n')) {
    const cells = line.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
    const code = /^`?(WF\d{4})`?$/.exec(cells[0] ?? '')?.[1];
    if (code === undefined) continue;
    if (rows.has(code)) duplicates.push(code);
    rows.set(code, cells.slice(1));
  }

  it.each(ALL_CODES)('lists %s with its title, an explanation and a hint', (code) => {
    const cells = rows.get(code);
    expect(cells, `${code} has no row`).toBeDefined();
    const [title = '', explanation = '', hint = ''] = cells ?? [];
    expect(title).toBe(CODES[code].title);
    expect(explanation).not.toBe('');
    expect(hint).not.toBe('');
  });

  it('lists no code twice and none that CODES lacks', () => {
    expect(duplicates).toEqual([]);
    expect([...rows.keys()].filter((c) => !(c in CODES))).toEqual([]);
  });
});
