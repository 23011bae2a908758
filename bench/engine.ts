/**
 * `npm run bench:engine [-- --json]`: events per second through `Engine.sendEvent` on a real
 * Postgres, against the raw `pg` rate measured in the same run on the same database with the same
 * pool size and concurrency (BEGIN; INSERT a ~300-byte event row; UPDATE the case row; COMMIT).
 * The two are measured alternately, several rounds, and the median ratio is reported, because this
 * machine's speed wanders by ±10%. Then replay speed over the cases written.
 *
 * Needs DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test). Works in its own schema,
 * dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Engine } from '../engine/engine.ts';
import { replayCases } from '../engine/audit.ts';
import { openDatabase } from '../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../engine/store/registry.ts';

const json = process.argv.includes('--json');
const databaseUrl = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const POOL = Number(process.env['BENCH_POOL'] ?? 16);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const ROUND_MS = Number(process.env['BENCH_ROUND_MS'] ?? 4000);
const CASES = Number(process.env['BENCH_CASES'] ?? 1000);

/** Two states that hand a case back and forth; each step cancels and schedules a timer and enqueues a notification. */
const WORKFLOW = `
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

function log(s: string): void {
  if (!json) console.log(s);
  else console.error(s);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function timed(ms: number, workers: number, work: (w: number) => Promise<void>): Promise<number> {
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

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const store = await openDatabase({ databaseUrl, schema, poolSize: POOL });
  const rawPool = new pg.Pool({ connectionString: databaseUrl, max: POOL, options: `-c search_path=${schema}` });
  try {
    const sc = (await rawPool.query<{ setting: string }>("select setting from pg_settings where name = 'synchronous_commit'")).rows[0]?.setting;
    log(`Postgres ${(await rawPool.query<{ server_version: string }>('show server_version')).rows[0]?.server_version}, synchronous_commit = ${sc}, pool ${POOL}, ${CONCURRENCY} in flight, ${ROUNDS} rounds of ${ROUND_MS} ms each`);

    await upsertOrgUnits(store, [{ id: '压测社区', parent: null, level: 'community', name: '压测社区' }]);
    await upsertActor(store, { id: '办理人甲', name: '办理人甲', phone: null, roles: [{ role: '办理人', unit: '压测社区' }] });
    const engine = new Engine({ store });
    await engine.deploy(WORKFLOW, 'bench.wf');

    // Cases, each owned by one worker so workers do not contend for the same row (as a router would arrange).
    const ids: string[] = [];
    for (let i = 0; i < CASES; i++) {
      ids.push((await engine.startCase({ workflow: '压测', orgUnit: '压测社区', actor: '办理人甲', data: { 标题: `case ${i}` } })).id);
    }

    // The raw baseline: the plain transaction the engine is compared with.
    await rawPool.query('create table raw_cases (id text primary key, version int not null, updated_at timestamptz)');
    await rawPool.query('create table raw_events (case_id text, seq int, type text, actor text, payload jsonb, recorded_at timestamptz, hash text, primary key (case_id, seq))');
    await rawPool.query(`insert into raw_cases select 'r' || g, 0, now() from generate_series(0, ${CASES - 1}) g`);
    const rawVersion = new Array<number>(CASES).fill(0);
    const payload = JSON.stringify({ 说明: 'x'.repeat(120), 次数: 1 });
    const raw = async (w: number): Promise<void> => {
      const i = (w + CONCURRENCY * Math.floor(Math.random() * (CASES / CONCURRENCY))) % CASES;
      const client = await rawPool.connect();
      try {
        await client.query('begin');
        const seq = ++rawVersion[i]!;
        await client.query({ name: 'raw_ins', text: 'insert into raw_events values ($1, $2, $3, $4, $5, now(), $6)', values: [`r${i}`, seq, '推进', '办理人甲', payload, randomBytes(32).toString('hex')] });
        await client.query({ name: 'raw_upd', text: 'update raw_cases set version = $2, updated_at = now() where id = $1', values: [`r${i}`, seq] });
        await client.query('commit');
      } finally {
        client.release();
      }
    };

    const perWorker = Math.floor(CASES / CONCURRENCY);
    const cursor = new Array<number>(CONCURRENCY).fill(0);
    const viaEngine = async (w: number): Promise<void> => {
      const id = ids[w * perWorker + (cursor[w]! % perWorker)]!;
      cursor[w]!++;
      await engine.sendEvent(id, { type: '推进', actor: '办理人甲', payload: { 说明: 'x'.repeat(60) } });
    };

    // Warm both paths (JIT, prepared statements, caches), then alternate.
    await timed(1000, CONCURRENCY, raw);
    await timed(1000, CONCURRENCY, viaEngine);
    const rawRates: number[] = [];
    const engineRates: number[] = [];
    const ratios: number[] = [];
    // The share of one core the engine's process used during its rounds: the rest of the machine is Postgres's.
    const nodeCpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await timed(ROUND_MS, CONCURRENCY, raw);
      const cpu0 = process.cpuUsage();
      const wall0 = Date.now();
      const b = await timed(ROUND_MS, CONCURRENCY, viaEngine);
      const cpu = process.cpuUsage(cpu0);
      nodeCpu.push((cpu.user + cpu.system) / 1000 / (Date.now() - wall0));
      rawRates.push(a);
      engineRates.push(b);
      ratios.push(b / a);
      log(`round ${r + 1}: raw pg ${a.toFixed(0)}/s, engine ${b.toFixed(0)}/s, ratio ${(b / a).toFixed(2)}`);
    }
    const eventsPerSec = median(engineRates);
    const rawPgPerSec = median(rawRates);
    const ratio = median(ratios);
    log(`sendEvent: ${eventsPerSec.toFixed(0)} events/s; raw pg transaction: ${rawPgPerSec.toFixed(0)}/s; ratio ${ratio.toFixed(2)} (target ≥ 1.0); engine process CPU ${(median(nodeCpu) * 100).toFixed(0)}% of a core`);

    // Replay every case written above, through the stored machine.
    const fresh = new Engine({ store });
    const t0 = performance.now();
    const replayed = await replayCases(fresh, ids);
    const seconds = (performance.now() - t0) / 1000;
    const replayEventsPerSec = replayed.events / seconds;
    log(`replay: ${replayed.events} events of ${ids.length} cases in ${seconds.toFixed(2)} s = ${replayEventsPerSec.toFixed(0)} events/s (target ≥ 50,000); mismatches: ${replayed.mismatches.length}`);
    if (replayed.mismatches.length > 0) throw new Error(`replay found ${replayed.mismatches.length} mismatches`);

    if (json) console.log(JSON.stringify({ eventsPerSec, rawPgPerSec, ratio, replayEventsPerSec, synchronousCommit: sc, pool: POOL, concurrency: CONCURRENCY, engineCpuShare: median(nodeCpu) }));
  } finally {
    await rawPool.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
    await rawPool.end();
    await store.close();
  }
}

await main();
