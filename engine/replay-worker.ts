/**
 * A worker thread of `replayCases`: opens its own connections to the store's Postgres, replays
 * the cases it is given with the engine's in-process replay, and posts the result back. Replay
 * is a pure function of each case's log and stored definitions, so cases split across threads
 * give the same answers as one thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { replayCases } from './audit.ts';
import { Engine } from './engine.ts';
import { openDatabase } from './store/open.ts';

/** What the parent sends. */
export interface ReplayWorkerInput {
  readonly connectionString: string;
  readonly schema: string;
  readonly caseIds: readonly string[];
  readonly batchSize: number;
}

const input = workerData as ReplayWorkerInput;
const store = await openDatabase({ databaseUrl: input.connectionString, schema: input.schema, migrate: false, poolSize: 2, writers: 1 });
try {
  const result = await replayCases(new Engine({ store }), input.caseIds, { batchSize: input.batchSize, workers: 0 });
  parentPort?.postMessage(result);
} finally {
  await store.close();
}
