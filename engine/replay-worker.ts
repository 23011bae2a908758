/**
 * A worker thread of a `ReplayPool` (audit.ts): opens its own connections to the store's Postgres and,
 * for each batch of cases it is given, reads their rows and logs, replays (and verifies) them with
 * the engine's in-process code and posts the result back. Replay is a pure function of each
 * case's log and stored definitions, so cases split across threads give the same answers as one
 * thread. A batch is read as soon as it arrives and replayed after the one before it, so the
 * database works on the next batch while this thread replays the current one.
 */
import { workerData } from 'node:worker_threads';
import { checkBatch, readBatch, type BulkAuditResult, type ReplayHost, type ReplayTask, type ReplayWorkerSettings } from './audit.ts';
import { definitionLoader } from './definitions.ts';
import { openDatabase } from './store/open.ts';
import { serveTasks } from './thread-pool.ts';

const settings = workerData as ReplayWorkerSettings;
const store = await openDatabase({ databaseUrl: settings.connectionString, schema: settings.schema, migrate: false, poolSize: 2, writers: 1 });
// Not an Engine: replay needs only stored definitions, and the Engine class would load the
// compiler (a large part of a thread's start-up time) to run nothing.
const host: ReplayHost = { store, loadDefinition: definitionLoader(store) };

// Batches are replayed one after another, in the order they came.
let previous: Promise<unknown> = Promise.resolve();
serveTasks<ReplayTask, BulkAuditResult>((task) => {
  const read = readBatch(store, task.caseIds, task.chains);
  // A read that fails is this task's failure, not an unhandled rejection while an earlier batch runs.
  read.catch(() => undefined);
  const mine = previous.then(async () => checkBatch(host, task.caseIds, await read));
  previous = mine.catch(() => undefined);
  return mine;
}, () => store.close());
