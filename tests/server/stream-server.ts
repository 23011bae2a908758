// A server process for the two-process test (tests/server/streams-processes.test.ts): the HTTP app
// on an existing Postgres schema, with its own engine, change feed (listening for the other
// process's announcements) and timer poller, as `npm start` runs them, but on a clock the parent
// moves. It reports `ready` with its URL, reports each batch of timers it fires, moves its clock on
// `clock`, and on `stop` closes the app (with its streams still open), the feed, the poller and the
// pool, reports `stopped`, and exits.
// Run with `node --import tsx tests/server/stream-server.ts <schema> <now ms> <node id>` under
// `child_process.fork`, with DATABASE_URL set.
import { ChangeFeed } from '../../engine/changes.ts';
import { Engine, type EngineLogger } from '../../engine/engine.ts';
import { openDatabase } from '../../engine/store/index.ts';
import { buildApp } from '../../server/app.ts';
import { MeteredTimerPoller } from '../../server/metrics.ts';
import { SECRET } from './support.ts';

const [schema, nowText, nodeId] = process.argv.slice(2);
const databaseUrl = process.env['DATABASE_URL'];
if (schema === undefined || nowText === undefined || nodeId === undefined || databaseUrl === undefined || process.send === undefined) {
  process.stderr.write('usage (under fork, DATABASE_URL set): stream-server <schema> <now ms> <node id>\n');
  process.exit(2);
}
const send = (message: unknown): void => {
  process.send?.(message);
};
const logger: EngineLogger = {
  info: () => {},
  warn: (obj, msg) => process.stderr.write(`${nodeId} warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`${nodeId} error: ${msg ?? ''} ${String((obj as { err?: unknown }).err ?? JSON.stringify(obj))}\n`),
};

let now = Number(nowText);
const store = await openDatabase({ databaseUrl, schema, migrate: false, poolSize: 4 });
const engine = new Engine({ store, clock: { now: () => now }, nodeId, logger, orgMaxAgeMs: 60_000 });
// A long poll interval: what the other process writes must arrive through LISTEN/NOTIFY.
const changes = new ChangeFeed(store, { listen: { databaseUrl }, pollMs: 60_000, logger });
const app = await buildApp({ engine, jwtSecret: SECRET, rateLimit: false, streams: { changes, heartbeatMs: 1_000 } });

// As server/main.ts runs it (the events it fires wake the streams through the engine), and it reports to the parent.
const poller = new MeteredTimerPoller(engine, app.metrics, { logger, limit: 5 }, (fired) => {
  send({ type: 'fired', nodeId, fired });
});

const url = await app.listen({ port: 0, host: '127.0.0.1' });
poller.start(20);

process.on('message', (m: { type?: string; now?: number }) => {
  if (m.type === 'clock' && typeof m.now === 'number') {
    now = m.now;
    send({ type: 'clock', nodeId, now });
  } else if (m.type === 'stop') {
    void (async () => {
      await app.close();
      await changes.close();
      await poller.stop();
      await store.close();
      send({ type: 'stopped', nodeId });
      process.disconnect?.();
    })();
  }
});
send({ type: 'ready', nodeId, url, pid: process.pid });
