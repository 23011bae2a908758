/**
 * What the engine and HTTP benchmarks share: their settings, the benchmark workflow and its cases,
 * the timing loop, and the raw `pg` baseline they are compared with: the plain transaction an event
 * needs at the least (BEGIN; INSERT a ~300-byte event row; UPDATE the case row; COMMIT), with
 * prepared statements, and nothing else. Both benchmarks measure it in the same run, on the same
 * database, with the same pool size and concurrency as the path they measure.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Engine, type EngineOptions } from '../engine/engine.ts';
import { openDatabase, type OpenedDatabase } from '../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../engine/store/registry.ts';

/** The settings both benchmarks take from the environment. */
export const settings = {
  json: process.argv.includes('--json'),
  databaseUrl: process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  pool: Number(process.env['BENCH_POOL'] ?? 16),
  concurrency: Number(process.env['BENCH_CONCURRENCY'] ?? 16),
  rounds: Number(process.env['BENCH_ROUNDS'] ?? 3),
  roundMs: Number(process.env['BENCH_ROUND_MS'] ?? 4000),
  /**
   * How long each path runs before the rounds (JIT, prepared statements, caches, connections). One
   * second left the HTTP path short of its steady state: its first round came out 10-25% below the
   * next two in every run.
   */
  warmupMs: Number(process.env['BENCH_WARMUP_MS'] ?? 3000),
  cases: Number(process.env['BENCH_CASES'] ?? 1000),
} as const;

/** Two states that hand a case back and forth; each step cancels and schedules a timer and enqueues a notification. */
export const WORKFLOW = `
workflow 压测 "benchmark"
roles 办理人
case { 标题: text, 次数: number = 0 }
start 甲 by anyone
state 甲
  on 推进 by 办理人 with { 说明: text? } set case.次数 = case.次数 + 1 notify 办理人 "轮到乙" -> 乙
  after 2 workdays escalate -> 甲
state 乙
  on 推进 by 办理人 with { 说明: text? } set case.次数 = case.次数 + 1 notify 办理人 "轮到甲" -> 甲
  on 完成 by 办理人 -> 完结
  after 2 workdays escalate -> 乙
final 完结
`;

/** The actor that sends every benchmark event. */
export const ACTOR = '办理人甲';

/**
 * Loads the benchmark's one unit and actor, deploys {@link WORKFLOW} and starts `cases` cases, on
 * an engine with `options`.
 * @example const { engine, caseIds } = await seedBench(store, 1000);
 */
export async function seedBench(store: OpenedDatabase, cases: number, options: Partial<Omit<EngineOptions, 'store'>> = {}): Promise<{ engine: Engine; caseIds: string[] }> {
  await upsertOrgUnits(store, [{ id: '压测社区', parent: null, level: 'community', name: '压测社区' }]);
  await upsertActor(store, { id: ACTOR, name: ACTOR, phone: null, roles: [{ role: '办理人', unit: '压测社区' }] });
  const engine = new Engine({ ...options, store });
  await engine.deploy(WORKFLOW, 'bench.wf');
  const caseIds: string[] = [];
  for (let i = 0; i < cases; i++) {
    caseIds.push((await engine.startCase({ workflow: '压测', orgUnit: '压测社区', actor: ACTOR, data: { 标题: `case ${i}` } })).id);
  }
  return { engine, caseIds };
}

/** Progress lines: on stdout, or on stderr when `--json` keeps stdout for the figures. */
export function log(s: string): void {
  if (settings.json) console.error(s);
  else console.log(s);
}

/** One unit of benchmark work done by worker `w` (0 ≤ w < concurrency). */
export type Work = (w: number) => Promise<void>;

/**
 * Creates the baseline's two tables in the pool's `search_path` schema, with `cases` case rows,
 * and returns the transaction as {@link Work}. Worker `w` only touches cases `≡ w (mod
 * concurrency)`, so workers do not contend for a row, as with the engine's cases.
 * @example
 * const raw = await rawTransaction(pool, { cases: 1000, concurrency: 16 });
 * const perSec = await timed(4000, 16, raw);
 */
export async function rawTransaction(pool: pg.Pool, options: { readonly cases: number; readonly concurrency: number }): Promise<Work> {
  const { cases, concurrency } = options;
  await pool.query('create table raw_cases (id text primary key, version int not null, updated_at timestamptz)');
  await pool.query('create table raw_events (case_id text, seq int, type text, actor text, payload jsonb, recorded_at timestamptz, hash text, primary key (case_id, seq))');
  await pool.query(`insert into raw_cases select 'r' || g, 0, now() from generate_series(0, ${cases - 1}) g`);
  const rawVersion = new Array<number>(cases).fill(0);
  const payload = JSON.stringify({ 说明: 'x'.repeat(120), 次数: 1 });
  return async (w: number): Promise<void> => {
    const i = (w + concurrency * Math.floor(Math.random() * (cases / concurrency))) % cases;
    const client = await pool.connect();
    try {
      await client.query('begin');
      const seq = ++rawVersion[i]!;
      await client.query({ name: 'raw_ins', text: 'insert into raw_events values ($1, $2, $3, $4, $5, now(), $6)', values: [`r${i}`, seq, '推进', ACTOR, payload, randomBytes(32).toString('hex')] });
      await client.query({ name: 'raw_upd', text: 'update raw_cases set version = $2, updated_at = now() where id = $1', values: [`r${i}`, seq] });
      await client.query('commit');
    } finally {
      client.release();
    }
  };
}

/**
 * Runs `workers` loops of `work` for `ms` milliseconds and returns completed units per second.
 * @example const perSec = await timed(4000, 16, raw);
 */
export async function timed(ms: number, workers: number, work: Work): Promise<number> {
  let done = 0;
  const until = Date.now() + ms;
  const start = Date.now();
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    while (Date.now() < until) {
      await work(w);
      done++;
    }
  }));
  return done / ((Date.now() - start) / 1000);
}

/**
 * The median (the upper one of an even count); NaN for none.
 * @example median([3, 1, 2]) // 2
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Where a benchmark runs: a store and a raw `pg` pool on a schema of its own, dropped by `close`. */
export interface BenchDatabase {
  readonly store: OpenedDatabase;
  readonly rawPool: pg.Pool;
  /** The server's `synchronous_commit`, which the figures depend on. */
  readonly synchronousCommit: string | undefined;
  close(): Promise<void>;
}

/**
 * Opens the store and the raw pool (both with the settings' pool size) on a fresh schema and
 * prints the Postgres version and `synchronous_commit` with `what` (the run's shape).
 * @example const db = await openBench('16 in flight'); try { … } finally { await db.close(); }
 */
export async function openBench(what: string): Promise<BenchDatabase> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const store = await openDatabase({ databaseUrl: settings.databaseUrl, schema, poolSize: settings.pool });
  const rawPool = new pg.Pool({ connectionString: settings.databaseUrl, max: settings.pool, options: `-c search_path=${schema}` });
  const close = async (): Promise<void> => {
    await rawPool.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
    await rawPool.end();
    await store.close();
  };
  try {
    const synchronousCommit = (await rawPool.query<{ setting: string }>("select setting from pg_settings where name = 'synchronous_commit'")).rows[0]?.setting;
    const version = (await rawPool.query<{ server_version: string }>('show server_version')).rows[0]?.server_version;
    log(`Postgres ${version}, synchronous_commit = ${synchronousCommit}, pool ${settings.pool}, ${what}, ${settings.rounds} rounds of ${settings.roundMs} ms each`);
    return { store, rawPool, synchronousCommit, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Measures this process's CPU from now: the share of one core it used since.
 * @example const share = cpuMeter(); await work(); share() // 0.58
 */
export function cpuMeter(): () => number {
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  return () => {
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / 1000 / (performance.now() - wall0);
  };
}
