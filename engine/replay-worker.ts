/**
 * A worker thread of `replayCases`: opens its own connections to the store's Postgres, replays
 * the cases it is given with the engine's in-process replay, and posts the result back. Replay
 * is a pure function of each case's log and stored definitions, so cases split across threads
 * give the same answers as one thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CompiledDefinition } from '../dsl/compile.ts';
import { instantiate } from '../dsl/runtime.ts';
import { replayCases, type ReplayHost, type ReplayWorkerMessage } from './audit.ts';
import type { LoadedDefinition } from './engine.ts';
import { EngineError } from './errors.ts';
import { openDatabase } from './store/open.ts';
import { definitionById } from './store/registry.ts';

/** What the parent sends. */
export interface ReplayWorkerInput {
  readonly connectionString: string;
  readonly schema: string;
  readonly caseIds: readonly string[];
  readonly batchSize: number;
  /** Whether to post progress after each batch. */
  readonly progress: boolean;
}

const input = workerData as ReplayWorkerInput;
const store = await openDatabase({ databaseUrl: input.connectionString, schema: input.schema, migrate: false, poolSize: 2, writers: 1 });
// Not an Engine: replay needs only stored definitions, and the Engine class would load the
// compiler (a large part of a thread's start-up time) to run nothing.
const definitions = new Map<string, Promise<LoadedDefinition>>();
const host: ReplayHost = {
  store,
  loadDefinition(id) {
    let p = definitions.get(id);
    if (p === undefined) {
      p = definitionById(store, id).then((row) => {
        if (row === undefined) throw new EngineError('DEFINITION_NOT_FOUND', `No definition ${id}.`, { definitionId: id });
        return { row, runtime: instantiate(row.compiled as CompiledDefinition) };
      });
      definitions.set(id, p);
    }
    return p;
  },
};
try {
  const post = (m: ReplayWorkerMessage): void => parentPort?.postMessage(m);
  const result = await replayCases(host, input.caseIds, {
    batchSize: input.batchSize, workers: 0, ...(input.progress ? { onProgress: (progress) => post({ kind: 'progress', progress }) } : {}),
  });
  post({ kind: 'done', result });
} finally {
  await store.close();
}
