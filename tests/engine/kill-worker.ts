// A separate OS process for the kill test (tests/engine/kill.test.ts): opens its own engine on the
// given schema with a clock fixed at the given instant, says it is ready, and at the parent's go
// sends events to the `kill-a*` cases from eight loops while it fires due timers (of all `kill-*`
// cases, a hundred claimed at a time), reporting each acknowledged event over IPC, until the
// parent kills it.
// Run with `node --import tsx tests/engine/kill-worker.ts <schema> <now ms> <node id>` under
// `child_process.fork`, with DATABASE_URL set.
import { Engine, type EngineLogger } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { openDatabase } from '../../engine/store/index.ts';
import { runDueTimers } from '../../engine/timers.ts';

const [schema, nowText, nodeId] = process.argv.slice(2);
const databaseUrl = process.env['DATABASE_URL'];
if (schema === undefined || nowText === undefined || nodeId === undefined || databaseUrl === undefined || process.send === undefined) {
  process.stderr.write('usage (under fork, DATABASE_URL set): kill-worker <schema> <now ms> <node id>\n');
  process.exit(2);
}
const send = (message: unknown): void => {
  process.send?.(message);
};
const nowMs = Number(nowText);
const logger: EngineLogger = {
  info: () => {},
  warn: () => {},
  error: (obj, msg) => process.stderr.write(`${nodeId} error: ${msg ?? ''} ${String((obj as { err?: unknown }).err ?? JSON.stringify(obj))}\n`),
};

const store = await openDatabase({ databaseUrl, schema, migrate: false, poolSize: 8 });
const engine = new Engine({ store, clock: { now: () => nowMs }, nodeId, logger });
const ids = (await store.query<{ id: string }>("select id from cases where id like 'kill-a%' order by id", [])).map((r) => r.id);
await engine.org();
await new Promise<void>((resolve) => {
  process.once('message', () => resolve());
  send({ type: 'ready', pid: process.pid, cases: ids.length });
});

const LOOPS = 8;
const events = Array.from({ length: LOOPS }, async (_, w) => {
  for (let i = 0; ; i++) {
    const caseId = ids[(w + LOOPS * i) % ids.length] as string;
    try {
      const view = await engine.sendEvent(caseId, { type: '推进', actor: '办理人甲' });
      send({ type: 'ack', caseId, seq: view.version });
    } catch (e) {
      // The case's timer fired first and closed it: expected in this race.
      if (!(e instanceof EngineError && e.code === 'NOT_POSSIBLE')) throw e;
      send({ type: 'refused', caseId });
    }
  }
});
const timers = (async () => {
  for (;;) await runDueTimers(engine, { limit: 100, logger });
})();
// Runs until killed; a failure ends it with the error on stderr and a non-zero exit.
await Promise.race([...events, timers]);
