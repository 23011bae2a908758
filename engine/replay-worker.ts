/**
 * A worker thread of `replayCases` and `auditCases`: opens its own connections to the store's
 * Postgres, replays (and verifies) the cases it is given with the engine's in-process code, and
 * posts the result back. Replay
 * is a pure function of each case's log and stored definitions, so cases split across threads
 * give the same answers as one thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { checkCases, type CheckWorkerSettings, type ReplayHost, type ReplayWorkerMessage } from './audit.ts';
import { definitionLoader } from './definitions.ts';
import { openDatabase } from './store/open.ts';

/** What the parent sends. */
export interface ReplayWorkerInput extends CheckWorkerSettings {
  readonly caseIds: readonly string[];
  /** Whether to post progress after each batch. */
  readonly progress: boolean;
}

const input = workerData as ReplayWorkerInput;
const store = await openDatabase({ databaseUrl: input.connectionString, schema: input.schema, migrate: false, poolSize: 2, writers: 1 });
// Not an Engine: replay needs only stored definitions, and the Engine class would load the
// compiler (a large part of a thread's start-up time) to run nothing.
const host: ReplayHost = { store, loadDefinition: definitionLoader(store) };
try {
  const post = (m: ReplayWorkerMessage): void => parentPort?.postMessage(m);
  const result = await checkCases(host, input.caseIds, {
    batchSize: input.batchSize, workers: 0, ...(input.progress ? { onProgress: (progress) => post({ kind: 'progress', progress }) } : {}),
  }, input.chains);
  post({ kind: 'done', result });
} finally {
  await store.close();
}
