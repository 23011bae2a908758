// A separate OS process for the timer race (tests/engine/timers-processes.test.ts): opens its own
// engine on the given schema with a clock fixed at the given instant, says it is ready, waits for
// the parent's go, runs `runDueTimers` until no timer is left for it, and reports how many it fired.
// Run with `node --import tsx tests/engine/timer-worker.ts <schema> <now ms> <node id> <limit>`
// under `child_process.fork` (it talks to its parent over IPC), with DATABASE_URL set.
import { Engine, type EngineLogger } from '../../engine/engine.ts';
import { openDatabase } from '../../engine/store/index.ts';
import { runDueTimers } from '../../engine/timers.ts';

const [schema, nowText, nodeId, limitText] = process.argv.slice(2);
const databaseUrl = process.env['DATABASE_URL'];
if (schema === undefined || nowText === undefined || nodeId === undefined || limitText === undefined || databaseUrl === undefined || process.send === undefined) {
  process.stderr.write('usage (under fork, DATABASE_URL set): timer-worker <schema> <now ms> <node id> <limit>\n');
  process.exit(2);
}
const send = (message: unknown): void => {
  process.send?.(message);
};
const nowMs = Number(nowText);
const limit = Number(limitText);
const logger: EngineLogger = {
  info: () => {},
  warn: (obj, msg) => process.stderr.write(`${nodeId} warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`${nodeId} error: ${msg ?? ''} ${String((obj as { err?: unknown }).err ?? JSON.stringify(obj))}\n`),
};

const store = await openDatabase({ databaseUrl, schema, migrate: false, poolSize: 8 });
const engine = new Engine({ store, clock: { now: () => nowMs }, nodeId, logger });
await engine.org(); // warm the org cache and a connection before the start
await new Promise<void>((resolve) => {
  process.once('message', () => resolve());
  send({ type: 'ready', pid: process.pid });
});

let fired = 0;
let rounds = 0;
for (;;) {
  const n = await runDueTimers(engine, { limit, logger });
  fired += n;
  rounds++;
  // Nothing claimable is left: the rest, if any, are claimed by the other process.
  if (n === 0) break;
}
send({ type: 'done', pid: process.pid, nodeId, fired, rounds });
await store.close();
process.disconnect?.();
