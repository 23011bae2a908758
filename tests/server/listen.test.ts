/**
 * The API on a real listening port (not `inject`): the 五单 loop walked by the people who do it in
 * life, each with their own token — the resident orders, the community secretary dispatches, the
 * unit secretary accepts, ten party members race to claim (one wins, the rest get 409), the winner
 * completes, the resident rates, and the auditor reads the history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHarness, ORDER, type Harness } from './support.ts';

let h: Harness;
let base: string;

async function api(method: string, path: string, actor: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(await h.auth(actor)), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

beforeAll(async () => {
  h = await openHarness();
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await h?.close();
});

describe('the 五单 loop over HTTP', () => {
  it('start → 派单 → 接单 → 抢单 (ten at once, one wins) → 完成 → 评价, then the auditor reads the history', async () => {
    const members = ['党员李', '党员杨'];
    for (let i = 1; i <= 8; i++) {
      const id = `卫健局党员${i}`;
      const r = await api('PUT', `/v1/actors/${encodeURIComponent(id)}`, '管理员钟', { name: `党员${i}`, roles: [{ role: '在职党员', unit: '县卫健局' }] });
      expect(r.status).toBe(201);
      members.push(id);
    }

    const started = await api('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER });
    expect(started.status).toBe(201);
    const id = encodeURIComponent(String(started.body['id']));

    expect((await api('POST', `/v1/cases/${id}/events`, '社区书记张', { type: '派单', payload: { 单位: '县卫健局' } })).body['state']).toBe('待接单');
    expect((await api('POST', `/v1/cases/${id}/events`, '卫健局书记钱', { type: '接单' })).body['state']).toBe('待抢单');

    const claims = await Promise.all(members.map((m) => api('POST', `/v1/cases/${id}/events`, m, { type: '抢单' })));
    const won = claims.filter((c) => c.status === 200);
    const lost = claims.filter((c) => c.status !== 200);
    expect(won).toHaveLength(1);
    expect(lost.map((c) => [c.status, c.body['code'], c.body['state']])).toEqual(lost.map(() => [409, 'NOT_POSSIBLE', '办理中']));
    const winner = String((won[0]?.body['data'] as Record<string, unknown>)['党员']);
    expect(members).toContain(winner);

    // Only the winner may complete it.
    const other = members.find((m) => m !== winner) ?? '';
    expect((await api('POST', `/v1/cases/${id}/events`, other, { type: '完成', payload: { 办理情况: '已清理完毕', 服务小时: 2 } })).status).toBe(403);
    expect((await api('POST', `/v1/cases/${id}/events`, winner, { type: '完成', payload: { 办理情况: '已清理完毕', 服务小时: 2 } })).body['state']).toBe('待评价');

    const rated = await api('POST', `/v1/cases/${id}/events`, '居民王先生', { type: '评价', payload: { 评分: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 4, 群众是否满意: 5 } } });
    expect(rated.status).toBe(200);
    expect(rated.body).toMatchObject({ state: '办结', status: 'done', version: 6, data: { 平均分: 4.8 } });

    const history = await api('GET', `/v1/cases/${id}/history`, '督查员周');
    expect((history.body['events'] as { type: string; actor: string }[]).map((e) => [e.type, e.actor])).toEqual([
      ['start', '居民王先生'], ['派单', '社区书记张'], ['接单', '卫健局书记钱'], ['抢单', winner], ['完成', winner], ['评价', '居民王先生'],
    ]);
    const ledger = await api('GET', `/v1/cases?orgUnit=${encodeURIComponent('龙形街道')}&status=done`, '督查员周');
    expect((ledger.body['items'] as { id: string }[]).map((c) => encodeURIComponent(c.id))).toContain(id);
  });
});
