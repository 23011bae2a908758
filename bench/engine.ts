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
import { availableParallelism } from 'node:os';
import { replayCases, ReplayPool } from '../engine/audit.ts';
import { Engine } from '../engine/engine.ts';
import { ACTOR, cpuMeter, log, median, openBench, rawTransaction, seedBench, settings, timed } from './common.ts';

const { json, pool: POOL, concurrency: CONCURRENCY, rounds: ROUNDS, roundMs: ROUND_MS, warmupMs: WARMUP_MS, cases: CASES } = settings;

async function main(): Promise<void> {
  const db = await openBench(`${CONCURRENCY} in flight`);
  const { store, rawPool, synchronousCommit: sc } = db;
  try {
    // Cases, each owned by one worker so workers do not contend for the same row (as a router would arrange).
    const { engine, caseIds: ids } = await seedBench(store, CASES);

    // The raw baseline: the plain transaction the engine is compared with.
    const raw = await rawTransaction(rawPool, { cases: CASES, concurrency: CONCURRENCY });

    const perWorker = Math.floor(CASES / CONCURRENCY);
    const cursor = new Array<number>(CONCURRENCY).fill(0);
    const viaEngine = async (w: number): Promise<void> => {
      const id = ids[w * perWorker + (cursor[w]! % perWorker)]!;
      cursor[w]!++;
      await engine.sendEvent(id, { type: '推进', actor: ACTOR, payload: { 说明: 'x'.repeat(60) } });
    };

    // Warm both paths (JIT, prepared statements, caches), then alternate.
    await timed(WARMUP_MS, CONCURRENCY, raw);
    await timed(WARMUP_MS, CONCURRENCY, viaEngine);
    const rawRates: number[] = [];
    const engineRates: number[] = [];
    const ratios: number[] = [];
    // The share of one core the engine's process used during its rounds: the rest of the machine is Postgres's.
    const nodeCpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await timed(ROUND_MS, CONCURRENCY, raw);
      const cpu = cpuMeter();
      const b = await timed(ROUND_MS, CONCURRENCY, viaEngine);
      nodeCpu.push(cpu());
      rawRates.push(a);
      engineRates.push(b);
      ratios.push(b / a);
      log(`round ${r + 1}: raw pg ${a.toFixed(0)}/s, engine ${b.toFixed(0)}/s, ratio ${(b / a).toFixed(2)}`);
    }
    const eventsPerSec = median(engineRates);
    const rawPgPerSec = median(rawRates);
    const ratio = median(ratios);
    log(`sendEvent: ${eventsPerSec.toFixed(0)} events/s; raw pg transaction: ${rawPgPerSec.toFixed(0)}/s; ratio ${ratio.toFixed(2)} (target ≥ 1.0); engine process CPU ${(median(nodeCpu) * 100).toFixed(0)}% of a core`);

    // Replay every case written above, through the stored machines: on a pool of worker threads
    // (one per core; BENCH_REPLAY_THREADS=1 replays on this thread), started and warmed before the
    // rounds as the paths above are, so the figure is the steady rate of an auditor's long run
    // (a pool's threads stay up between calls: `wf audit` over many cases pays the start-up once).
    // The write rounds leave tens of thousands of dead timer and case row versions, which
    // autovacuum would be cleaning up (on the same two cores) during the replay rounds: vacuum
    // first, so replay is measured on a settled database, as an audit of a replica sees it.
    await rawPool.query('vacuum (analyze) cases, events, timers, outbox');
    // And the dirty pages those writes left are written out now rather than by the checkpointer
    // during the rounds (needs a superuser or pg_checkpoint; without, the rounds run as they are).
    await rawPool.query('checkpoint').catch((e: unknown) => log(`(no checkpoint before replay: ${e instanceof Error ? e.message : String(e)})`));
    const fresh = new Engine({ store });
    const threads = Number(process.env['BENCH_REPLAY_THREADS'] ?? availableParallelism());
    const pool = threads > 1 && store.connectionString !== null ? new ReplayPool({ connectionString: store.connectionString, schema: store.schema, threads }) : undefined;
    const where = pool === undefined ? 'on this thread' : `on ${threads} worker threads`;
    const replayThreads = pool === undefined ? 1 : threads;
    let replayEventsPerSec = 0;
    try {
      const replayOnce = async (): Promise<{ events: number; seconds: number }> => {
        const t0 = performance.now();
        const replayed = await replayCases(fresh, ids, pool === undefined ? {} : { pool });
        if (replayed.mismatches.length > 0) throw new Error(`replay found ${replayed.mismatches.length} mismatches`);
        return { events: replayed.events, seconds: (performance.now() - t0) / 1000 };
      };
      const warmUntil = performance.now() + WARMUP_MS;
      do await replayOnce(); while (performance.now() < warmUntil);
      const replayRates: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const { events, seconds } = await replayOnce();
        replayRates.push(events / seconds);
        log(`replay round ${r + 1}: ${events} events of ${ids.length} cases in ${seconds.toFixed(2)} s ${where} = ${(events / seconds).toFixed(0)} events/s`);
      }
      replayEventsPerSec = median(replayRates);
      log(`replay: ${replayEventsPerSec.toFixed(0)} events/s ${where} (median of ${ROUNDS}, after ${WARMUP_MS} ms of warm-up; target ≥ 50,000); mismatches: 0`);
    } finally {
      await pool?.close();
    }

    if (json) console.log(JSON.stringify({ eventsPerSec, rawPgPerSec, ratio, replayEventsPerSec, replayThreads, synchronousCommit: sc, pool: POOL, concurrency: CONCURRENCY, engineCpuShare: median(nodeCpu) }));
  } finally {
    await db.close();
  }
}

await main();
