/**
 * 抢单: many party members claim one order at once. Exactly one wins; the others get NOT_POSSIBLE
 * (409) naming the state the case moved to; the log has one claim. On the real Postgres the
 * claims come from two OS processes, each with its own engine and connections.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileLoader } from '../../cli/main.ts';
import { Engine } from '../../engine/engine.ts';
import { loadEvents } from '../../engine/store/cases.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, openTestDatabase } from './support.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');
const MEMBERS = Array.from({ length: 50 }, (_, i) => `党员${String(i + 1).padStart(2, '0')}`);

let store: OpenedDatabase;
let engine: Engine;

beforeAll(async () => {
  store = await openTestDatabase();
  await upsertOrgUnits(store, [
    { id: '县', parent: null, level: 'county', name: '县' },
    { id: '永乐社区', parent: '县', level: 'community', name: '永乐社区' },
    { id: '县卫健局', parent: '县', level: 'department', name: '县卫健局' },
  ]);
  await upsertActor(store, { id: '社区书记张', name: '张', phone: null, roles: [{ role: '社区书记', unit: '永乐社区' }] });
  await upsertActor(store, { id: '卫健局书记', name: '钱', phone: null, roles: [{ role: '单位书记', unit: '县卫健局' }] });
  for (const m of MEMBERS) await upsertActor(store, { id: m, name: m, phone: null, roles: [{ role: '在职党员', unit: '县卫健局' }] });
  engine = new Engine({ store });
  await engine.deploy(readFileSync(WUDAN, 'utf8'), WUDAN, fileLoader);
});

afterAll(async () => {
  await store?.close();
});

async function orderReadyToClaim(): Promise<string> {
  const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王', data: { 社区: '永乐社区', 姓名: '王', 电话: '13800000000', 心愿: '修理路灯', 类别: '维修' } });
  await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
  await engine.sendEvent(c.id, { type: '接单', actor: '卫健局书记' });
  return c.id;
}

interface Outcome { member: string; ok: boolean; code?: string; status?: number; state?: string | null }

function assertOneWinner(outcomes: readonly Outcome[]): void {
  expect(outcomes).toHaveLength(50);
  const winners = outcomes.filter((o) => o.ok);
  const losers = outcomes.filter((o) => !o.ok);
  expect(winners).toHaveLength(1);
  expect(losers).toHaveLength(49);
  for (const l of losers) expect(l).toMatchObject({ code: 'NOT_POSSIBLE', status: 409, state: '办理中' });
}

describe('50 concurrent claims on one order', () => {
  it('from one process: one wins, 49 get 409 naming the new state, one claim in the log', async () => {
    const id = await orderReadyToClaim();
    const engines = [engine, new Engine({ store }), new Engine({ store })];
    await Promise.all(engines.map((e) => e.getCase(id)));
    const outcomes = await Promise.all(MEMBERS.map(async (member, i): Promise<Outcome> => {
      try {
        await engines[i % engines.length]!.sendEvent(id, { type: '抢单', actor: member });
        return { member, ok: true };
      } catch (e) {
        const err = e as { code: string; status: number; details: Record<string, unknown> };
        return { member, ok: false, code: err.code, status: err.status, state: err.details['state'] as string };
      }
    }));
    assertOneWinner(outcomes);
    const claims = (await loadEvents(store, id)).filter((e) => e.type === '抢单');
    expect(claims).toHaveLength(1);
    expect(claims[0]?.actorId).toBe(outcomes.find((o) => o.ok)?.member);
  });

  it.runIf(backend === 'postgres')('(Postgres only) from two OS processes: one wins, 49 get 409, one claim in the log', async () => {
    const id = await orderReadyToClaim();
    const startAt = Date.now() + 4000;
    const halves = [MEMBERS.slice(0, 25), MEMBERS.slice(25)];
    const outputs = await Promise.all(halves.map((members) => run(process.execPath, [
      '--import', 'tsx', path.join(ROOT, 'tests/engine/claim-worker.ts'), store.schema, id, JSON.stringify(members), String(startAt),
    ], { cwd: ROOT, env: process.env, timeout: 60_000 })));
    const reports = outputs.map((o) => JSON.parse(o.stdout.trim().split('\n').at(-1) ?? '{}') as { pid: number; results: Outcome[] });
    expect(new Set(reports.map((r) => r.pid)).size).toBe(2);
    assertOneWinner(reports.flatMap((r) => r.results));
    const claims = (await loadEvents(store, id)).filter((e) => e.type === '抢单');
    expect(claims).toHaveLength(1);
  });
});
