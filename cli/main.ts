/**
 * `wf`: the workflow language on the command line.
 *
 *   wf check <files…> [--json]          diagnostics; exit 0 only without errors
 *   wf compile <file>                    the compiled definition (XState config and named implementations) as JSON
 *   wf graph <file> [--format mermaid|svg|dot] [-o out]
 *   wf test [scenario files…]            run `*.test.yaml` scenarios in memory (default: all under workflows/)
 *   wf token --actor ID [--secret S] [--ttl 12h]   a bearer token for the HTTP API
 *   wf audit [--workflow NAME] [--database-url URL] [--schema S] [--data-dir DIR] [--workers N] [--json]
 *                                        verify and replay every case's history (cli/audit.ts)
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { checkSource, type SourceLoader } from '../dsl/check.ts';
import { compile, type CompiledDefinition } from '../dsl/compile.ts';
import type { Diagnostic } from '../dsl/diagnostics.ts';
import { toDot, toMermaid, toSvg } from '../dsl/graph.ts';
import { loadFixtures, runScenario, ScenarioFormatError } from '../engine/scenario.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, MIN_SECRET_LENGTH, signToken } from '../server/auth.ts';
import { readSecretFile, secretFile } from '../server/secret.ts';
import { formatDiagnostic } from './format.ts';

export interface Io {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly cwd: string;
  readonly color: boolean;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  cwd: process.cwd(),
  color: process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined,
};

const USAGE = `Usage:
  wf check <files…> [--json]                    check workflows; exit 0 only without errors
  wf compile <file>                              print the compiled definition as JSON
  wf graph <file> [--format mermaid|svg|dot] [-o <out>]
                                                 draw the workflow as a statechart
  wf test [<scenario files or folders>…]          run scenarios (*.test.yaml); default: workflows/
  wf token --actor <id> [--secret <s>] [--ttl 12h]
                                                 print a bearer token for the HTTP API (secret: --secret,
                                                 else JWT_SECRET, else the data directory's, DATA_DIR=./data)
  wf audit [--workflow <name>] [--workers <n>] [--json]
                                                 verify every case's hash chain and replay its log;
                                                 exit 1 naming each case that fails. The database:
                                                 --database-url (DATABASE_URL) and --schema
                                                 (DATABASE_SCHEMA), else --data-dir (DATA_DIR=./data)
  wf help                                        this text`;

/** Imports are read relative to the importing file. */
export const fileLoader: SourceLoader = (from, importer) => {
  const file = path.resolve(path.dirname(importer), from);
  if (!existsSync(file) || !statSync(file).isFile()) return undefined;
  return { file, source: readFileSync(file, 'utf8') };
};

interface Parsed {
  readonly positional: string[];
  readonly flags: Map<string, string | true>;
}

/** Options that take a value, stored under their name without the dashes. */
const VALUE_FLAGS = new Set(['--actor', '--secret', '--ttl', '--workflow', '--database-url', '--schema', '--data-dir', '--workers']);

function parseArgs(argv: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--json') flags.set('json', true);
    else if (a === '--format' || a === '-o' || a === '--out') {
      const v = argv[i + 1];
      if (v === undefined) throw new UsageError(`${a} needs a value.`);
      flags.set(a === '--format' ? 'format' : 'out', v);
      i++;
    } else if (VALUE_FLAGS.has(a)) {
      const v = argv[i + 1];
      if (v === undefined) throw new UsageError(`${a} needs a value.`);
      flags.set(a.slice(2), v);
      i++;
    } else if (a.startsWith('--format=')) flags.set('format', a.slice(9));
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`Unknown option ${a}.`);
    else positional.push(a);
  }
  return { positional, flags };
}

class UsageError extends Error {}

function readSource(file: string, io: Io): { file: string; source: string } | undefined {
  const abs = path.resolve(io.cwd, file);
  if (!existsSync(abs)) {
    io.err(`wf: cannot read ${file}: no such file.`);
    return undefined;
  }
  if (statSync(abs).isDirectory()) {
    io.err(`wf: ${file} is a folder; name the .wf files in it, e.g. ${path.join(file, '*.wf')}.`);
    return undefined;
  }
  return { file: abs, source: readFileSync(abs, 'utf8') };
}

function relative(io: Io, file: string): string {
  const r = path.relative(io.cwd, file);
  return r.startsWith('..') ? file : r;
}

function compileFile(file: string, io: Io): CompiledDefinition | undefined {
  const src = readSource(file, io);
  if (src === undefined) return undefined;
  const result = checkSource(src.source, src.file, { load: fileLoader });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (result.model === undefined || errors.length > 0) {
    for (const d of result.diagnostics) io.err(formatDiagnostic({ ...d, file: relative(io, d.file ?? src.file) }, sourceOf(d, src), { color: io.color }));
    if (result.model === undefined && errors.length === 0) io.err(`wf: ${file} has no workflow (a library of rule tables cannot be compiled alone).`);
    return undefined;
  }
  return compile(result.model);
}

function sourceOf(d: Diagnostic, main: { file: string; source: string }): string | undefined {
  if (d.file === undefined || d.file === main.file) return main.source;
  return existsSync(d.file) ? readFileSync(d.file, 'utf8') : undefined;
}

function findFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) out.push(...findFiles(p, suffix));
    else if (entry.isFile() && entry.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

/**
 * The .wf files named: folders are searched, and other files (scenarios, fixtures) are passed
 * over with a note, so `wf check workflows/*` checks exactly the workflows.
 */
function workflowFiles(names: readonly string[], io: Io): string[] {
  const out: string[] = [];
  for (const n of names) {
    const abs = path.resolve(io.cwd, n);
    if (existsSync(abs) && statSync(abs).isDirectory()) out.push(...findFiles(abs, '.wf').map((f) => relative(io, f)));
    else if (!n.endsWith('.wf') && existsSync(abs)) io.err(`wf: skipped ${n}: not a .wf file.`);
    else out.push(n);
  }
  return out;
}

async function cmdCheck(args: Parsed, io: Io): Promise<number> {
  if (args.positional.length === 0) throw new UsageError('wf check needs at least one file.');
  const json = args.flags.has('json');
  const all: Diagnostic[] = [];
  let unreadable = false;
  const files = workflowFiles(args.positional, io);
  for (const f of files) {
    const src = readSource(f, io);
    if (src === undefined) {
      unreadable = true;
      continue;
    }
    const result = checkSource(src.source, src.file, { load: fileLoader });
    for (const d of result.diagnostics) {
      const shown = { ...d, file: relative(io, d.file ?? src.file) };
      all.push(shown);
      if (!json) io.out(formatDiagnostic(shown, sourceOf(d, src), { color: io.color }));
    }
  }
  const errors = all.filter((d) => d.severity === 'error').length;
  const warnings = all.length - errors;
  if (json) io.out(JSON.stringify(all, null, 2));
  else io.out(`${files.length} file(s) checked: ${errors} error(s), ${warnings} warning(s).`);
  return errors > 0 || unreadable ? 1 : 0;
}

async function cmdCompile(args: Parsed, io: Io): Promise<number> {
  const [file, ...rest] = args.positional;
  if (file === undefined || rest.length > 0) throw new UsageError('wf compile takes exactly one file.');
  const def = compileFile(file, io);
  if (def === undefined) return 1;
  io.out(JSON.stringify(def, (k, v: unknown) => (k === 'span' ? undefined : v), 2));
  return 0;
}

async function cmdGraph(args: Parsed, io: Io): Promise<number> {
  const [file, ...rest] = args.positional;
  if (file === undefined || rest.length > 0) throw new UsageError('wf graph takes exactly one file.');
  const format = args.flags.get('format') ?? 'mermaid';
  if (format !== 'mermaid' && format !== 'svg' && format !== 'dot') throw new UsageError(`Unknown format ${String(format)}; use mermaid, svg or dot.`);
  const def = compileFile(file, io);
  if (def === undefined) return 1;
  const text = format === 'mermaid' ? toMermaid(def) : format === 'dot' ? toDot(def) : await toSvg(def);
  const out = args.flags.get('out');
  if (typeof out === 'string') {
    writeFileSync(path.resolve(io.cwd, out), text);
    io.err(`wf: wrote ${out}`);
  } else io.out(text);
  return 0;
}

async function cmdTest(args: Parsed, io: Io): Promise<number> {
  const targets = args.positional.length > 0 ? args.positional : ['workflows'];
  const files: string[] = [];
  for (const t of targets) {
    const abs = path.resolve(io.cwd, t);
    if (!existsSync(abs)) {
      io.err(`wf: cannot read ${t}: no such file or folder.`);
      return 1;
    }
    files.push(...(statSync(abs).isDirectory() ? findFiles(abs, '.test.yaml') : [abs]));
  }
  if (files.length === 0) {
    io.err(`wf: no scenario files (*.test.yaml) in ${targets.join(', ')}.`);
    return 1;
  }
  let passed = 0;
  let failed = 0;
  for (const file of files) {
    const rel = relative(io, file);
    try {
      const doc = YAML.parse(readFileSync(file, 'utf8')) as unknown;
      if (typeof doc !== 'object' || doc === null) throw new ScenarioFormatError(rel, 'expected workflow, fixtures and scenarios.');
      const root = doc as Record<string, unknown>;
      if (typeof root['workflow'] !== 'string') throw new ScenarioFormatError(`${rel}.workflow`, 'name the workflow file, e.g. workflow: 五单服务.wf');
      const wfFile = path.resolve(path.dirname(file), root['workflow']);
      const def = compileFile(wfFile, io);
      if (def === undefined) {
        io.out(`✗ ${rel}: the workflow ${root['workflow']} does not compile.`);
        failed++;
        continue;
      }
      const fixtures = loadFixtures(typeof root['fixtures'] === 'string'
        ? YAML.parse(readFileSync(path.resolve(path.dirname(file), root['fixtures']), 'utf8')) as unknown
        : (root['fixtures'] ?? {}), `${rel}.fixtures`);
      const scenarios = root['scenarios'];
      if (!Array.isArray(scenarios) || scenarios.length === 0) throw new ScenarioFormatError(`${rel}.scenarios`, 'list at least one scenario.');
      io.out(`${rel}`);
      scenarios.forEach((s: unknown, i: number) => {
        const r = runScenario(def, fixtures, s, `${rel}.scenarios[${i}]`);
        if (r.passed) {
          passed++;
          io.out(`  ✓ ${r.name}`);
        } else {
          failed++;
          io.out(`  ✗ ${r.name}`);
          for (const f of r.failures) io.out(`      ${f.code} step ${f.step}: ${f.message}`);
        }
      });
    } catch (e) {
      if (e instanceof ScenarioFormatError || e instanceof YAML.YAMLParseError || (e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('CALENDAR'))) {
        io.out(`✗ ${rel}: ${e.message}`);
        failed++;
        continue;
      }
      throw e;
    }
  }
  io.out(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

/** `90`, `90s`, `30m`, `12h`, `7d` → seconds. */
function ttlSeconds(text: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  const n = m === null ? NaN : Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86_400 } as const)[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--ttl ${text} is not a duration; write e.g. 3600, 30m, 12h or 7d.`);
  return n;
}

async function cmdToken(args: Parsed, io: Io): Promise<number> {
  if (args.positional.length > 0) throw new UsageError('wf token takes no file names; name the actor with --actor ID.');
  const actor = args.flags.get('actor');
  if (typeof actor !== 'string' || actor.trim() === '') throw new UsageError('wf token needs --actor ID.');
  const given = args.flags.get('secret');
  const dataDir = path.resolve(io.cwd, process.env['DATA_DIR'] || 'data');
  const secret = typeof given === 'string' ? given : process.env['JWT_SECRET'] || readSecretFile(dataDir);
  if (secret === undefined) {
    io.err(`wf: no secret to sign with: pass --secret, set JWT_SECRET, or start the server once (npm start) so it creates ${relative(io, secretFile(dataDir))}.`);
    return 1;
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    io.err(`wf: the secret must be at least ${MIN_SECRET_LENGTH} characters.`);
    return 1;
  }
  const ttl = args.flags.get('ttl');
  io.out(await signToken(secret, actor, { ttlSeconds: typeof ttl === 'string' ? ttlSeconds(ttl) : DEFAULT_TOKEN_TTL_SECONDS }));
  return 0;
}

async function cmdAudit(args: Parsed, io: Io): Promise<number> {
  if (args.positional.length > 0) throw new UsageError(`wf audit takes no file names (got ${args.positional[0]}); choose cases with --workflow.`);
  const text = (name: string): string | undefined => {
    const v = args.flags.get(name);
    return typeof v === 'string' && v.trim() !== '' ? v : undefined;
  };
  const env = (name: string): string | undefined => {
    const v = process.env[name];
    return v === undefined || v.trim() === '' ? undefined : v;
  };
  const workersText = text('workers');
  if (workersText !== undefined && !/^\d+$/.test(workersText)) throw new UsageError(`--workers must be a whole number, got ${workersText}.`);
  if (text('database-url') !== undefined && text('data-dir') !== undefined) throw new UsageError('Give --database-url or --data-dir, not both.');
  // An explicit --data-dir means the embedded database even when DATABASE_URL is set.
  const databaseUrl = text('database-url') ?? (text('data-dir') === undefined ? env('DATABASE_URL') : undefined);
  const schema = text('schema') ?? env('DATABASE_SCHEMA');
  const dataDir = text('data-dir') ?? env('DATA_DIR');
  const workflow = text('workflow');
  const { audit, AuditSetupError } = await import('./audit.ts');
  try {
    return await audit({
      json: args.flags.get('json') === true,
      ...(workflow === undefined ? {} : { workflow }),
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
      ...(schema === undefined ? {} : { schema }),
      ...(dataDir === undefined ? {} : { dataDir }),
      ...(workersText === undefined ? {} : { workers: Number(workersText) }),
    }, io);
  } catch (e) {
    if (e instanceof AuditSetupError) {
      io.err(`wf audit: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

/**
 * Runs the CLI and returns its exit code: 0 success, 1 problems found, 2 usage error.
 * @example process.exitCode = await main(['check', 'workflows/五单服务.wf']);
 */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    const args = parseArgs(rest);
    switch (cmd) {
      case 'check': return await cmdCheck(args, io);
      case 'compile': return await cmdCompile(args, io);
      case 'graph': return await cmdGraph(args, io);
      case 'test': return await cmdTest(args, io);
      case 'token': return await cmdToken(args, io);
      case 'audit': return await cmdAudit(args, io);
      case undefined: case 'help': case '--help': case '-h':
        io.out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command "${cmd}".`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`wf: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
