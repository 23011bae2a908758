/** The folders' public entry points export what their modules define (STYLE §13). */
import { describe, expect, it } from 'vitest';
import * as dsl from '../../dsl/index.ts';
import * as engine from '../../engine/index.ts';

describe('entry points', () => {
  it('dsl/index.ts takes a workflow from text to a running machine', () => {
    const r = dsl.checkSource('workflow 示例\nroles 甲\nstart 待办 by anyone\nstate 待办\n  on 办 by 甲 -> 完\n  after 1 days -> 完\nfinal 完\n', '示例.wf');
    expect(r.diagnostics).toEqual([]);
    if (r.model === undefined) throw new Error('no model');
    const rt = dsl.instantiate(dsl.compile(r.model));
    expect(rt.machine.id).toBe('示例');
  });

  it('engine/index.ts exposes the engine and its operations', () => {
    for (const name of ['Engine', 'EngineError', 'MemoryEngine', 'runDueTimers', 'OutboxWorker', 'verify', 'replay', 'stateAt', 'availableActions', 'inbox', 'migrateCases', 'kpis'] as const) {
      expect(typeof engine[name], name).toBe('function');
    }
  });
});
