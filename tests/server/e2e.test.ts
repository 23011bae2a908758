/**
 * The 五单 loop end to end on a real listening port, each step sent by the person who does it in
 * life with their own token: the resident orders; the community secretary dispatches; the unit
 * returns the order (退单) and the community dispatches it again; nobody accepts within 24 hours,
 * so the deadline timer escalates the case to the street; the unit secretary accepts; twenty party
 * members claim at once (exactly one wins, nineteen get 409 NOT_POSSIBLE); the winner completes;
 * the resident rates; and the auditor reads the history, replays and verifies the case, and looks
 * at it as it stood at a time in the middle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDueTimers } from '../../engine/timers.ts';
import { openHarness, ORDER, type Harness } from './support.ts';

let h: Harness;
let base: string;

interface Res {
  readonly status: number;
  readonly contentType: string;
  readonly body: Record<string, unknown>;
}

async function api(method: 'GET' | 'POST' | 'PUT', path: string, actor: string, body?: unknown): Promise<Res> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(await h.auth(actor)), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.json() as Record<string, unknown> };
}

/** Sends an event and expects it applied; returns the case. */
async function send(caseId: string, actor: string, type: string, payload: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const r = await api('POST', `/v1/cases/${u(caseId)}/events`, actor, { type, payload });
  expect(r.status, `${actor} ${type}: ${JSON.stringify(r.body)}`).toBe(200);
  return r.body;
}

const u = (s: string): string => encodeURIComponent(s);
/** Moves the harness clock to a local (+08:00) time. */
const at = (local: string): void => {
  h.clock.now = Date.parse(`${local}+08:00`);
};

interface HistoryEvent {
  readonly seq: number;
  readonly type: string;
  readonly actor: string | null;
  readonly role: string | null;
  readonly at: string;
  readonly state: string;
  readonly orgUnit: string | null;
  readonly effects: readonly Record<string, unknown>[];
  readonly hash: string;
  readonly prevHash: string | null;
}

beforeAll(async () => {
  h = await openHarness();
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  await h?.close();
});

describe('the 五单 loop over a listening port', () => {
  const members = Array.from({ length: 20 }, (_, i) => `卫健局报到党员${String(i + 1).padStart(2, '0')}`);
  let id = '';

  it('管理员钟 registers twenty party members of 县卫健局', async () => {
    for (const [i, m] of members.entries()) {
      const r = await api('PUT', `/v1/actors/${u(m)}`, '管理员钟', { name: `报到党员${i + 1}`, roles: [{ role: '在职党员', unit: '县卫健局' }] });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body).toMatchObject({ id: m, roles: [{ role: '在职党员', unit: '县卫健局' }] });
    }
  });

  it('the resident orders, the community dispatches, the unit returns the order, the community dispatches again', async () => {
    at('2026-03-02T09:00:00');
    const started = await api('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect(started.body).toMatchObject({ workflow: '五单服务', state: '待派单', status: 'active', version: 1, unit: '永乐社区', submitter: '居民王先生' });
    id = String(started.body['id']);

    at('2026-03-02T09:30:00');
    expect(await send(id, '社区书记张', '派单', { 单位: '县城管局' })).toMatchObject({ state: '待接单', data: { 单位: '县城管局' } });

    // The unit secretary of 县城管局 returns it: the order goes back to the community.
    at('2026-03-02T10:00:00');
    const tooShort = await api('POST', `/v1/cases/${u(id)}/events`, '城管局局长冯', { type: '退单', payload: { 原因: '不管' } });
    expect([tooShort.status, tooShort.body['code']]).toEqual([422, 'VALIDATION_FAILED']);
    expect(await send(id, '城管局局长冯', '退单', { 原因: '楼道绿化不属于本单位职责' })).toMatchObject({ state: '待派单', data: { 退单次数: 1, 单位: null } });

    // Only the community (or street) may dispatch again; the unit that returned it may not.
    const byUnit = await api('POST', `/v1/cases/${u(id)}/events`, '城管局局长冯', { type: '派单', payload: { 单位: '县卫健局' } });
    expect([byUnit.status, byUnit.body['code']]).toEqual([403, 'NOT_ALLOWED']);
    at('2026-03-02T10:30:00');
    expect(await send(id, '社区书记张', '派单', { 单位: '县卫健局' })).toMatchObject({ state: '待接单', version: 4, data: { 单位: '县卫健局', 退单次数: 1 } });

    // The community secretary of the case reads it, with what they may do now (改派, the re-dispatch).
    const read = await api('GET', `/v1/cases/${u(id)}`, '社区书记张');
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ state: '待接单', unit: '永乐社区', version: 4 });
    expect((read.body['allowedActions'] as { event: string }[]).map((a) => a.event)).toContain('改派');
  });

  it('24 hours without 接单: the deadline timer fires through the engine and the case escalates to the street', async () => {
    // Monday 10:30 + 24 h = Tuesday 10:30; the 80 % reminder falls due before it.
    at('2026-03-03T10:29:00');
    expect(await runDueTimers(h.engine)).toBe(1); // the reminder only
    expect((await api('GET', `/v1/cases/${u(id)}`, '督查员周')).body).toMatchObject({ state: '待接单', unit: '永乐社区', version: 5 });

    at('2026-03-03T11:00:00');
    expect(await runDueTimers(h.engine)).toBe(1); // the deadline
    expect(await runDueTimers(h.engine)).toBe(0); // fired once

    const now = await api('GET', `/v1/cases/${u(id)}`, '督查员周');
    expect(now.status).toBe(200);
    expect(now.body).toMatchObject({ state: '待接单', status: 'active', unit: '龙形街道', version: 6 });
    // Re-entering 待接单 armed a fresh 24-hour deadline from the escalation.
    expect(Object.values(now.body['due'] as Record<string, string>)).toContain(new Date(Date.parse('2026-03-04T11:00:00+08:00')).toISOString());

    const history = await api('GET', `/v1/cases/${u(id)}/history`, '督查员周');
    const events = history.body['events'] as HistoryEvent[];
    const [reminder, deadline] = events.slice(-2);
    expect(reminder).toMatchObject({ seq: 5, actor: null, state: '待接单' });
    expect(deadline).toMatchObject({ seq: 6, actor: null, state: '待接单', at: new Date(h.clock.now).toISOString() });
    expect(reminder?.type).toMatch(/^xstate\.after\./);
    expect(deadline?.type).toMatch(/^xstate\.after\./);
    expect(deadline?.effects).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'escalated', from: '永乐社区', to: '龙形街道' }), expect.objectContaining({ kind: 'notify', reason: 'timeout' })]));
    expect(reminder?.effects).toEqual([expect.objectContaining({ kind: 'notify', reason: 'reminder', unit: '县卫健局' })]);
  });

  it('the unit secretary accepts, twenty members claim at once: exactly one wins, nineteen get 409 NOT_POSSIBLE', async () => {
    at('2026-03-03T11:30:00');
    expect(await send(id, '卫健局书记钱', '接单')).toMatchObject({ state: '待抢单' });

    at('2026-03-03T12:00:00');
    const claims = await Promise.all(members.map(async (m) => ({ member: m, ...(await api('POST', `/v1/cases/${u(id)}/events`, m, { type: '抢单' })) })));
    const won = claims.filter((c) => c.status >= 200 && c.status < 300);
    const lost = claims.filter((c) => !(c.status >= 200 && c.status < 300));
    expect(won.map((c) => c.status)).toEqual([200]);
    expect(lost).toHaveLength(19);
    for (const c of lost) {
      expect({ status: c.status, code: c.body['code'], state: c.body['state'] }, c.member).toEqual({ status: 409, code: 'NOT_POSSIBLE', state: '办理中' });
      expect(c.contentType).toMatch(/^application\/problem\+json/);
    }
    const winner = won[0]?.member ?? '';

    // The case records the winner; the others cannot complete it.
    const read = await api('GET', `/v1/cases/${u(id)}`, '督查员周');
    expect(read.body).toMatchObject({ state: '办理中', version: 8, data: { 党员: winner } });
    const loser = lost[0]?.member ?? '';
    const notYours = await api('POST', `/v1/cases/${u(id)}/events`, loser, { type: '完成', payload: { 办理情况: '已清理完毕', 服务小时: 2 } });
    expect([notYours.status, notYours.body['code']]).toEqual([403, 'NOT_ALLOWED']);

    at('2026-03-03T15:00:00');
    expect(await send(id, winner, '完成', { 办理情况: '已组织清理绿化带杂物', 服务小时: 2 })).toMatchObject({ state: '待评价' });
  });

  it('the resident rates the service and the case closes', async () => {
    at('2026-03-03T18:00:00');
    const rated = await send(id, '居民王先生', '评价', { 评分: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 4, 群众是否满意: 5 }, 意见: '很及时' });
    expect(rated).toMatchObject({ state: '办结', status: 'done', version: 10, data: { 平均分: 4.8 } });
    const again = await api('POST', `/v1/cases/${u(id)}/events`, '居民王先生', { type: '评价', payload: { 评分: { 完成是否到位: 1, 推进是否有力: 1, 成效是否明显: 1, 群众是否满意: 1 } } });
    expect([again.status, again.body['code']]).toEqual([409, 'NOT_POSSIBLE']);
  });

  it('the auditor reads the history, replays and verifies the case, and looks at it as it stood in the middle', async () => {
    const history = await api('GET', `/v1/cases/${u(id)}/history`, '督查员周');
    expect(history.status).toBe(200);
    const events = history.body['events'] as HistoryEvent[];
    const winner = events.find((e) => e.type === '抢单')?.actor ?? '';
    expect(members).toContain(winner);
    expect(events.map((e) => [e.seq, e.type.startsWith('xstate.after.') ? 'timer' : e.type, e.actor, e.state])).toEqual([
      [1, 'start', '居民王先生', '待派单'],
      [2, '派单', '社区书记张', '待接单'],
      [3, '退单', '城管局局长冯', '待派单'],
      [4, '派单', '社区书记张', '待接单'],
      [5, 'timer', null, '待接单'],
      [6, 'timer', null, '待接单'],
      [7, '接单', '卫健局书记钱', '待抢单'],
      [8, '抢单', winner, '办理中'],
      [9, '完成', winner, '待评价'],
      [10, '评价', '居民王先生', '办结'],
    ]);
    // Roles as the workflow's `by` clauses admitted each sender (a person clause or the submitter has none; timers neither).
    expect(events.map((e) => e.role)).toEqual([null, '社区书记', '单位书记', '社区书记', null, null, '单位书记', '在职党员', null, null]);
    // An unbroken hash chain.
    expect(events[0]?.prevHash).toBeNull();
    for (let i = 1; i < events.length; i++) expect(events[i]?.prevHash).toBe(events[i - 1]?.hash);

    const replay = await api('POST', `/v1/cases/${u(id)}/replay`, '督查员周');
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body).toMatchObject({ caseId: id, ok: true, events: 10, state: '办结', status: 'done', firstBadSeq: null });

    const verify = await api('POST', `/v1/cases/${u(id)}/verify`, '督查员周');
    expect(verify.status, JSON.stringify(verify.body)).toBe(200);
    expect(verify.body).toMatchObject({ caseId: id, ok: true, events: 10, headHash: events[9]?.hash, firstBadSeq: null, problem: null });

    // Monday 10:15: after the unit returned the order, before the community dispatched it again.
    const returned = await api('GET', `/v1/cases/${u(id)}/state?at=${u('2026-03-02T10:15:00+08:00')}`, '督查员周');
    expect(returned.status, JSON.stringify(returned.body)).toBe(200);
    expect(returned.body).toMatchObject({ caseId: id, seq: 3, state: '待派单', status: 'active', unit: '永乐社区', lastEvent: { type: '退单' }, data: { 退单次数: 1, 单位: null } });
    // Tuesday 11:15: escalated to the street, not yet accepted.
    const escalated = await api('GET', `/v1/cases/${u(id)}/state?at=${u('2026-03-03T11:15:00+08:00')}`, '督查员周');
    expect(escalated.body).toMatchObject({ seq: 6, state: '待接单', unit: '龙形街道', data: { 单位: '县卫健局' } });
    expect(String((escalated.body['lastEvent'] as { type: string }).type)).toMatch(/^xstate\.after\./);

    // The auditor only reads: the checks changed nothing.
    expect((await api('GET', `/v1/cases/${u(id)}`, '督查员周')).body).toMatchObject({ version: 10, state: '办结', headHash: events[9]?.hash });
  });
});
