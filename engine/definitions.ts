/**
 * Stored definitions as running machines, loaded once per id. Without the compiler: a stored
 * definition runs as it was compiled, whatever the compiler has become since, so replay worker
 * threads and `wf audit` load this cheaply.
 */
import type { CompiledDefinition } from '../dsl/compile.ts';
import { instantiate, type Runtime } from '../dsl/runtime.ts';
import { EngineError } from './errors.ts';
import type { OpenedDatabase } from './store/open.ts';
import { definitionById, type DefinitionRow } from './store/registry.ts';

export interface LoadedDefinition {
  readonly row: DefinitionRow;
  readonly runtime: Runtime;
}

/**
 * A loader of stored definitions by id, each read and instantiated once (a failed load is tried
 * again next time). Throws DEFINITION_NOT_FOUND for an id with no row.
 * @example const load = definitionLoader(store); const { runtime } = await load(row.definitionId);
 */
export function definitionLoader(store: OpenedDatabase): (id: string) => Promise<LoadedDefinition> {
  const loaded = new Map<string, Promise<LoadedDefinition>>();
  return (id) => {
    let p = loaded.get(id);
    if (p === undefined) {
      p = definitionById(store, id).then((row) => {
        if (row === undefined) throw new EngineError('DEFINITION_NOT_FOUND', `No definition ${id}.`, { definitionId: id });
        return { row, runtime: instantiate(row.compiled as CompiledDefinition) };
      });
      p.catch(() => loaded.delete(id));
      loaded.set(id, p);
    }
    return p;
  };
}
