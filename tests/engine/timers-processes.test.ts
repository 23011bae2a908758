/**
 * Two engine processes polling one database with 1,000 due timers: every timer fires exactly
 * once. Each process (tests/engine/timer-worker.ts) has its own engine, connections and node id,
 * and a clock past the timers' due time; both start at the parent's signal. Postgres only: PGlite
 * is one connection inside one process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKER = path.join(ROOT, 'tests/engine/timer-worker.ts');
const CASES = 1_000;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-06-01T09:00:00+08:00');
/** Kills the children and fails the test if the race has not finished by then. */
const DEADLINE_MS = 120_000;

const TINY = `workflow 计时竞争 "计时竞争"

case {
  说明: text?,
}

start 等待 by anyone

state 等待 "等待计时"
  after 1 hours -> 完成

final 完成 "完成"
`;

interface Report {
  readonly type: 'done';
  readonly pid: number;
  readonly nodeId: string;
  readonly fired: number;
  readonly rounds: number;
}

let store: OpenedDatabase;

beforeAll(async () => {
  if (backend !== 'postgres') return;
  store = await openTestDatabase();
  await upsertOrgUnits(store, [{ id: '永乐社区', parent: null, level: 'community', name: '永乐社区' }]);
  const engine = new Engine({ store, clock: { now: () => T0 } });
  await engine.deploy(TINY, 'race.wf');
  const ids = Array.from({ length: CASES }, (_, i) => `race-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(ids.slice(i, i + 100).map((caseId) => engine.startCase({ workflow: '计时竞争', orgUnit: '永乐社区', actor: null, data: {}, caseId })));
  }
}, 120_000);

afterAll(async () => {
  await store?.close();
});

/** Starts both workers, lets them go together once both are ready, and collects their reports. */
async function race(nodeIds: readonly string[], nowMs: number, limit: number): Promise<Report[]> {
  const children: ChildProcess[] = [];
  const stderr: string[] = [];
  let timeout: NodeJS.Timeout | undefined;
  try {
    const ready: Promise<void>[] = [];
    const done: Promise<Report>[] = [];
    for (const nodeId of nodeIds) {
      const child = fork(WORKER, [store.schema, String(nowMs), nodeId, String(limit)], {
        cwd: ROOT, env: process.env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      });
      children.push(child);
      child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
      const exited = new Promise<never>((_, reject) => {
        child.once('exit', (code, signal) => reject(new Error(`${nodeId} exited (${code ?? signal}) before reporting: ${stderr.join('')}`)));
      });
      ready.push(Promise.race([exited, new Promise<void>((resolve) => child.once('message', () => resolve()))]));
      done.push(Promise.race([exited, new Promise<Report>((resolve) => {
        child.on('message', (m: { type?: string }) => {
          if (m.type === 'done') resolve(m as Report);
        });
      })]));
    }
    const killed = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => {
        for (const c of children) c.kill('SIGKILL');
        reject(new Error(`the timer race did not finish within ${DEADLINE_MS} ms: ${stderr.join('')}`));
      }, DEADLINE_MS);
    });
    await Promise.race([Promise.all(ready), killed]);
    for (const c of children) c.send({ type: 'go' });
    const reports = await Promise.race([Promise.all(done), killed]);
    expect(stderr.join(''), 'worker errors').toBe('');
    return reports;
  } finally {
    clearTimeout(timeout);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

describe('two engine processes polling one database', () => {
  it.runIf(backend === 'postgres')('(Postgres only) 1,000 due timers: every timer fires exactly once, and both processes fire some', async () => {
    const reports = await race(['node-a', 'node-b'], T0 + 2 * HOUR, 20);
    console.log(`timers fired per process: ${reports.map((r) => `${r.nodeId} (pid ${r.pid}) ${r.fired} in ${r.rounds} runs`).join(', ')}`);
    expect(new Set(reports.map((r) => r.pid)).size).toBe(2);
    expect(reports.reduce((sum, r) => sum + r.fired, 0)).toBe(CASES);
    for (const r of reports) expect(r.fired, `${r.nodeId} fired none`).toBeGreaterThan(0);

    // Exactly one timer event per case, and each case moved once.
    const perCase = await store.db.selectFrom('events').select(['case_id', store.db.fn.countAll<string>().as('n')])
      .where('type', 'like', 'xstate.after.%').groupBy('case_id').execute();
    expect(perCase).toHaveLength(CASES);
    expect(perCase.every((r) => Number(r.n) === 1)).toBe(true);
    const cases = await store.db.selectFrom('cases').select(['id', 'state', 'version', 'status']).where('id', 'like', 'race-%').execute();
    expect(cases).toHaveLength(CASES);
    expect(cases.filter((c) => c.state !== '完成' || Number(c.version) !== 2 || c.status !== 'done')).toEqual([]);

    // Each timer was claimed once (no lease ran out) and fired by the node that reported it.
    const timers = await store.db.selectFrom('timers').select(['state', 'attempts', 'claimed_by']).execute();
    expect(timers).toHaveLength(CASES);
    expect(timers.filter((t) => t.state !== 'fired' || Number(t.attempts) !== 1)).toEqual([]);
    const byNode = new Map<string, number>();
    for (const t of timers) byNode.set(t.claimed_by ?? '', (byNode.get(t.claimed_by ?? '') ?? 0) + 1);
    expect(Object.fromEntries(byNode)).toEqual(Object.fromEntries(reports.map((r) => [r.nodeId, r.fired])));
  }, DEADLINE_MS + 30_000);
});
