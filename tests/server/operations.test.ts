/**
 * The operations routes (server/routes/operations.ts) through `inject`, on whichever backend
 * DATABASE_URL selects: time travel, verify and replay (with a tampered log), migration of one
 * case and of many, suspend / resume / reassign / links with who may, the inbox and KPIs — each
 * route's happy path and its main refusals as problem bodies.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHarness, ORDER, WORKFLOWS, type Harness, expectProblem, toRes, type Res } from './support.ts';

let h: Harness;

async function call(method: 'GET' | 'POST', url: string, actor?: string | null, payload?: Record<string, unknown>): Promise<Res> {
  const auth = actor === undefined || actor === null ? {} : await h.auth(actor);
  const r = await h.app.inject({ method, url, headers: auth, ...(payload === undefined ? {} : { payload }) });
  return toRes(r);
}

const u = (s: string): string => encodeURIComponent(s);
const HOUR = 3_600_000;

async function start(workflow = '五单服务', orgUnit = '永乐社区'): Promise<string> {
  const r = await call('POST', '/v1/cases', '居民王先生', { workflow, orgUnit, data: { ...ORDER, 社区: orgUnit } });
  expect(r.status, r.text).toBe(201);
  return String(r.body['id']);
}

async function send(caseId: string, actor: string, type: string, payload: Record<string, unknown> = {}): Promise<Res> {
  const r = await call('POST', `/v1/cases/${u(caseId)}/events`, actor, { type, payload });
  expect(r.status, r.text).toBe(200);
  return r;
}

beforeAll(async () => {
  h = await openHarness();
});

afterAll(async () => {
  await h?.close();
});

describe('the API document', () => {
  it('lists every operations route', async () => {
    const doc = (await call('GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const expected: [string, string][] = [
      ['/v1/cases/{id}/state', 'get'], ['/v1/cases/{id}/verify', 'post'], ['/v1/cases/{id}/replay', 'post'], ['/v1/cases/{id}/migrate', 'post'],
      ['/v1/definitions/{name}/migrate', 'post'], ['/v1/cases/{id}/suspend', 'post'], ['/v1/cases/{id}/resume', 'post'], ['/v1/cases/{id}/reassign', 'post'],
      ['/v1/cases/{id}/links', 'post'], ['/v1/cases/{id}/links', 'get'], ['/v1/inbox', 'get'], ['/v1/kpis', 'get'],
    ];
    for (const [p, m] of expected) expect(doc.paths[p]?.[m], `${m} ${p}`).toBeDefined();
  });
});

describe('time travel', () => {
  it('shows the case as it stood at a past time; before it began, a 404 saying so; bad times are 400', async () => {
    const t0 = h.clock.now;
    const id = await start();
    h.clock.now += HOUR;
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    const iso = (ms: number): string => u(new Date(ms).toISOString());

    const before = await call('GET', `/v1/cases/${u(id)}/state?at=${iso(t0 + HOUR / 2)}`, '督查员周');
    expect(before.status, before.text).toBe(200);
    expect(before.body).toMatchObject({ caseId: id, seq: 1, state: '待派单', status: 'active', unit: '永乐社区', lastEvent: { type: 'start' }, data: { 心愿: ORDER.心愿 } });
    const after = await call('GET', `/v1/cases/${u(id)}/state?at=${iso(h.clock.now)}`, '督查员周');
    expect(after.body).toMatchObject({ seq: 2, state: '待接单', lastEvent: { type: '派单' } });
    // Any offset is accepted and answered in UTC.
    const local = await call('GET', `/v1/cases/${u(id)}/state?at=${u('2026-03-02T09:30:00+08:00')}`, '督查员周');
    expect(local.body).toMatchObject({ at: '2026-03-02T01:30:00.000Z', state: '待派单' });

    const early = await call('GET', `/v1/cases/${u(id)}/state?at=${iso(t0 - 1000)}`, '督查员周');
    expectProblem(early, 404, 'CASE_NOT_FOUND');
    expect(early.body).toMatchObject({ caseId: id, notYetStarted: true, startedAt: new Date(t0).toISOString() });
    expectProblem(await call('GET', `/v1/cases/no-such-case/state?at=${iso(t0)}`, '督查员周'), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/state?at=yesterday`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/state`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/state?at=${iso(t0)}&seq=1`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/state?at=${iso(t0)}`), 401, 'UNAUTHORIZED');
  });
});

describe('verify and replay', () => {
  it('pass on an untouched case and name the first bad event of a tampered one, changing nothing', async () => {
    const id = await start();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(id, '卫健局书记钱', '接单');
    const ok = await call('POST', `/v1/cases/${u(id)}/verify`, '督查员周');
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ caseId: id, ok: true, events: 3, headHash: expect.any(String), firstBadSeq: null, problem: null });
    const replayed = await call('POST', `/v1/cases/${u(id)}/replay`, '社区书记张');
    expect(replayed.body).toMatchObject({ caseId: id, ok: true, events: 3, state: '待抢单', status: 'active', firstBadSeq: null });
    expectProblem(await call('POST', '/v1/cases/no-such-case/verify', '督查员周'), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('POST', '/v1/cases/no-such-case/replay', '督查员周'), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('POST', `/v1/cases/${u(id)}/verify`), 401, 'UNAUTHORIZED');

    // A forger rewrites the resulting state of event 2 (as the owner, with the append-only guard off).
    await h.store.db.transaction().execute(async (trx) => {
      await sql`alter table events disable trigger events_append_only`.execute(trx);
      await sql`update events set resulting_state = jsonb_set(resulting_state, '{state}', '"办结"') where case_id = ${id} and seq = 2`.execute(trx);
      await sql`alter table events enable always trigger events_append_only`.execute(trx);
    });
    const bad = await call('POST', `/v1/cases/${u(id)}/verify`, '督查员周');
    expect(bad.status).toBe(200);
    expect(bad.body).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'altered', message: expect.any(String), events: null });
    const badReplay = await call('POST', `/v1/cases/${u(id)}/replay`, '督查员周');
    expect(badReplay.body).toMatchObject({ ok: false, firstBadSeq: 2, message: expect.any(String) });
    expect(JSON.stringify(badReplay.body['expected'])).toContain('办结');
    expect(JSON.stringify(badReplay.body['got'])).toContain('待接单');
    // The checks wrote nothing.
    expect((await call('GET', `/v1/cases/${u(id)}`, '督查员周')).body['version']).toBe(3);
  });
});

describe('suspend, resume, reassign, links', () => {
  it('lets 管理员, 政策员 and roles of the case\'s unit or above suspend and resume; refuses others with 403', async () => {
    const id = await start();
    for (const actor of ['社区书记刘', '督查员周', '居民王先生', '卫健局书记钱']) {
      const r = await call('POST', `/v1/cases/${u(id)}/suspend`, actor, { reason: '暂缓' });
      expectProblem(r, 403, 'NOT_ALLOWED');
      expect(r.body['allowed']).toEqual([{ role: '管理员', unit: null }, { role: '政策员', unit: null }, { role: null, unit: '永乐社区' }]);
    }
    const suspended = await call('POST', `/v1/cases/${u(id)}/suspend`, '街道书记赵', { reason: '群众外出，暂缓办理' });
    expect(suspended.status, suspended.text).toBe(200);
    expect(suspended.body).toMatchObject({ id, status: 'suspended', state: '待派单' });
    expectProblem(await call('POST', `/v1/cases/${u(id)}/suspend`, '街道书记赵', {}), 409, 'NOT_POSSIBLE');
    expectProblem(await call('POST', `/v1/cases/${u(id)}/events`, '社区书记张', { type: '派单', payload: { 单位: '县卫健局' } }), 409, 'CASE_SUSPENDED');
    const resumed = await call('POST', `/v1/cases/${u(id)}/resume`, '社区书记张', {});
    expect(resumed.body).toMatchObject({ id, status: 'active' });
    expectProblem(await call('POST', `/v1/cases/${u(id)}/resume`, '管理员钟', {}), 409, 'NOT_POSSIBLE');
    expect((await call('POST', `/v1/cases/${u(id)}/suspend`, '政策员高', {})).status).toBe(200);
    expect((await call('POST', `/v1/cases/${u(id)}/resume`, '管理员钟', { reason: '恢复' })).status).toBe(200);
    expectProblem(await call('POST', `/v1/cases/${u(id)}/suspend`, '管理员钟', { reason: '', extra: 1 }), 400, 'BAD_REQUEST');
    expectProblem(await call('POST', '/v1/cases/no-such-case/suspend', '管理员钟', {}), 404, 'CASE_NOT_FOUND');
    const history = await call('GET', `/v1/cases/${u(id)}/history`, '督查员周');
    expect((history.body['events'] as { type: string; actor: string; role: string | null }[]).slice(1).map((e) => [e.type, e.actor, e.role])).toEqual([
      ['case.suspended', '街道书记赵', '街道书记'], ['case.resumed', '社区书记张', '社区书记'],
      ['case.suspended', '政策员高', '政策员'], ['case.resumed', '管理员钟', '管理员'],
    ]);
    // Still a sound log.
    expect((await call('POST', `/v1/cases/${u(id)}/replay`, '督查员周')).body['ok']).toBe(true);
  });

  it('reassigns to another unit; who may then follows the new unit', async () => {
    const id = await start();
    expectProblem(await call('POST', `/v1/cases/${u(id)}/reassign`, '社区书记刘', { to: '滨江社区', reason: '属地调整' }), 403, 'NOT_ALLOWED');
    expectProblem(await call('POST', `/v1/cases/${u(id)}/reassign`, '社区书记张', { to: '滨江社区' }), 400, 'BAD_REQUEST');
    expectProblem(await call('POST', `/v1/cases/${u(id)}/reassign`, '社区书记张', { to: '火星', reason: '属地调整' }), 404, 'ORG_UNIT_NOT_FOUND');
    const moved = await call('POST', `/v1/cases/${u(id)}/reassign`, '社区书记张', { to: '滨江社区', reason: '属地调整' });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({ id, unit: '滨江社区' });
    expectProblem(await call('POST', `/v1/cases/${u(id)}/reassign`, '社区书记刘', { to: '滨江社区', reason: '再次' }), 409, 'NOT_POSSIBLE');
    expectProblem(await call('POST', `/v1/cases/${u(id)}/suspend`, '社区书记张', {}), 403, 'NOT_ALLOWED');
    expect((await call('POST', `/v1/cases/${u(id)}/suspend`, '社区书记刘', {})).status).toBe(200);
  });

  it('links cases and lists the links from both sides', async () => {
    const older = await start();
    const newer = await start();
    expectProblem(await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记刘', { linkedCaseId: older, kind: 'related' }), 403, 'NOT_ALLOWED');
    const linked = await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: older, kind: 'related' });
    expect(linked.status, linked.text).toBe(200);
    expect(linked.body).toMatchObject({ id: newer });
    // Linking again is a no-op.
    expect((await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: older, kind: 'related' })).body['version']).toBe(linked.body['version']);
    const from = await call('GET', `/v1/cases/${u(older)}/links`, '督查员周');
    expect(from.body).toMatchObject({ caseId: older, items: [{ caseId: newer, linkedCaseId: older, kind: 'related', direction: 'from' }] });
    const to = await call('GET', `/v1/cases/${u(newer)}/links`, '居民王先生');
    expect(to.body).toMatchObject({ items: [{ caseId: newer, linkedCaseId: older, direction: 'to' }] });
    expectProblem(await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: newer, kind: 'related' }), 409, 'NOT_POSSIBLE');
    expectProblem(await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: 'no-such-case', kind: 'related' }), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: older, kind: '   ' }), 400, 'BAD_REQUEST');
    expectProblem(await call('POST', `/v1/cases/${u(newer)}/links`, '社区书记张', { linkedCaseId: older }), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', '/v1/cases/no-such-case/links', '督查员周'), 404, 'CASE_NOT_FOUND');
  });
});

describe('the inbox', () => {
  it('lists the cases the caller can act on now, with the actions, paged by cursor', async () => {
    const a = await start('五单服务', '南泉社区');
    const b = await start('五单服务', '南泉社区');
    const all = await call('GET', '/v1/inbox?limit=200', '社区书记陈');
    expect(all.status, all.text).toBe(200);
    const items = all.body['items'] as { caseId: string; state: string; actions: { event: string }[] }[];
    expect(items.map((i) => i.caseId)).toEqual(expect.arrayContaining([a, b]));
    expect(items.find((i) => i.caseId === a)).toMatchObject({ state: '待派单', workflow: '五单服务', unit: '南泉社区' });
    expect(items.find((i) => i.caseId === a)?.actions.map((x) => x.event)).toContain('派单');
    // 张 (永乐社区) does not see 南泉社区's orders.
    const zhang = (await call('GET', '/v1/inbox?limit=200', '社区书记张')).body['items'] as { caseId: string }[];
    expect(zhang.map((i) => i.caseId)).not.toContain(a);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Res = await call('GET', `/v1/inbox?limit=1${cursor === null ? '' : `&cursor=${u(cursor)}`}`, '社区书记陈');
      seen.push(...(r.body['items'] as { caseId: string }[]).map((i) => i.caseId));
      cursor = r.body['nextCursor'] as string | null;
      pages++;
    } while (cursor !== null && pages < 50);
    expect(seen).toEqual(items.map((i) => i.caseId));

    expectProblem(await call('GET', '/v1/inbox?cursor=garbage', '社区书记陈'), 422, 'VALIDATION_FAILED');
    expectProblem(await call('GET', '/v1/inbox?limit=0', '社区书记陈'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', '/v1/inbox?limit=201', '社区书记陈'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', '/v1/inbox?mine=1', '社区书记陈'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', '/v1/inbox'), 401, 'UNAUTHORIZED');
  });
});

describe('KPIs', () => {
  it('answers the figures of a workflow with a spec, grouped as asked', async () => {
    const id = await start();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(id, '卫健局书记钱', '接单');
    const all = await call('GET', `/v1/kpis?workflow=${u('五单服务')}`, '督查员周');
    expect(all.status, all.text).toBe(200);
    const rows = all.body['items'] as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ cases: expect.any(Number), responded: expect.any(Number), meanRatings: { 群众是否满意: null } });
    expect(rows[0]?.['responded']).toBeGreaterThanOrEqual(1);

    const byUnit = await call('GET', `/v1/kpis?workflow=${u('五单服务')}&groupBy=unit,period&unit=${u('龙形街道')}&period=week`, '社区书记张');
    expect(byUnit.status, byUnit.text).toBe(200);
    const unitRows = byUnit.body['items'] as { unit: string; period: string; cases: number }[];
    expect(unitRows.find((r) => r.unit === '永乐社区')).toMatchObject({ period: '2026-03-02', cases: expect.any(Number) });
    expect(unitRows.every((r) => r.unit !== '南泉社区')).toBe(true);
    const byCategory = await call('GET', `/v1/kpis?workflow=${u('五单服务')}&groupBy=category&from=${u('2026-03-01T00:00:00+08:00')}&to=${u('2026-04-01T00:00:00+08:00')}`, '社区书记张');
    expect((byCategory.body['items'] as { category: string | null }[]).map((r) => r.category)).toContain('环境');
    const empty = await call('GET', `/v1/kpis?workflow=${u('五单服务')}&from=${u('2999-01-01T00:00:00Z')}`, '社区书记张');
    expect(empty.status).toBe(200);

    const none = await call('GET', `/v1/kpis?workflow=${u('没有这个')}`, '督查员周');
    expectProblem(none, 404, 'DEFINITION_NOT_FOUND');
    expect(none.body).toMatchObject({ kpiSpec: false, available: expect.arrayContaining(['五单服务']) });
    expectProblem(await call('GET', `/v1/kpis?workflow=${u('五单服务')}&unit=${u('火星')}`, '督查员周'), 404, 'ORG_UNIT_NOT_FOUND');
    expectProblem(await call('GET', `/v1/kpis?workflow=${u('五单服务')}&groupBy=street`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/kpis?workflow=${u('五单服务')}&period=year`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/kpis?workflow=${u('五单服务')}&from=yesterday`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', '/v1/kpis', '督查员周'), 400, 'BAD_REQUEST');
  });
});

describe('migration', () => {
  // A copy of 五单服务 under its own name, so the other tests keep the seed version; version 2
  // renames 待抢单 to 待认领.
  const v1 = readFileSync(path.join(WORKFLOWS, '五单服务.wf'), 'utf8').replace('workflow 五单服务 "', 'workflow 五单迁移 "');
  const v2 = v1.replaceAll('待抢单', '待认领');
  let toClaim: string;
  let waiting: string[];

  beforeAll(async () => {
    expect(v1).toContain('workflow 五单迁移 "');
    const d1 = await call('POST', '/v1/definitions', '政策员高', { source: v1, file: '五单服务.wf' });
    expect(d1.status, d1.text).toBe(201);
    toClaim = await start('五单迁移');
    await send(toClaim, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(toClaim, '卫健局书记钱', '接单');
    waiting = [await start('五单迁移'), await start('五单迁移')];
    const d2 = await call('POST', '/v1/definitions', '政策员高', { source: v2, file: '五单服务.wf' });
    expect(d2.body).toMatchObject({ name: '五单迁移', version: 2 });
  });

  it('moves one case as 政策员: a dry run reports, a refused move is 422, a mapped one moves', async () => {
    const url = `/v1/cases/${u(toClaim)}/migrate`;
    for (const actor of ['社区书记张', '督查员周', '管理员钟']) expectProblem(await call('POST', url, actor, { toVersion: 2, stateMapping: {} }), 403, 'NOT_ALLOWED');
    const dry = await call('POST', url, '政策员高', { toVersion: 2, stateMapping: {}, dryRun: true });
    expect(dry.status, dry.text).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, moved: [], refused: [{ caseId: toClaim, code: 'state_unmapped' }] });
    const refused = await call('POST', url, '政策员高', { toVersion: 2, stateMapping: {} });
    expectProblem(refused, 422, 'MIGRATION_REFUSED');
    expect(refused.body).toMatchObject({ caseId: toClaim, refusal: 'state_unmapped' });
    expect((await call('GET', `/v1/cases/${u(toClaim)}`, '督查员周')).body).toMatchObject({ definitionVersion: 1, state: '待抢单' });

    const moved = await call('POST', url, '政策员高', { toVersion: 2, stateMapping: { 待抢单: '待认领' } });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toEqual({ dryRun: false, moved: [{ caseId: toClaim, fromVersion: 1, toVersion: 2, fromState: '待抢单', toState: '待认领' }], refused: [] });
    expect((await call('GET', `/v1/cases/${u(toClaim)}`, '督查员周')).body).toMatchObject({ definitionVersion: 2, state: '待认领' });
    expect((await call('POST', `/v1/cases/${u(toClaim)}/replay`, '督查员周')).body['ok']).toBe(true);

    expectProblem(await call('POST', url, '政策员高', { toVersion: 9, stateMapping: {} }), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('POST', '/v1/cases/no-such-case/migrate', '政策员高', { toVersion: 2, stateMapping: {} }), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('POST', url, '政策员高', { toVersion: 2 }), 400, 'BAD_REQUEST');
    expectProblem(await call('POST', url, '政策员高', { toVersion: 2, stateMapping: {}, force: true }), 400, 'BAD_REQUEST');
  });

  it('moves many cases of a workflow as 政策员, dry run first', async () => {
    const url = `/v1/definitions/${u('五单迁移')}/migrate`;
    expectProblem(await call('POST', url, '社区书记张', { fromVersion: 1, toVersion: 2, stateMapping: {}, dryRun: true }), 403, 'NOT_ALLOWED');
    expectProblem(await call('POST', url, '政策员高', { fromVersion: 1, toVersion: 2, stateMapping: {} }), 400, 'BAD_REQUEST');
    const dry = await call('POST', url, '政策员高', { fromVersion: 1, toVersion: 2, stateMapping: {}, dryRun: true });
    expect(dry.status, dry.text).toBe(200);
    expect((dry.body['moved'] as { caseId: string }[]).map((m) => m.caseId).sort()).toEqual([...waiting].sort());
    for (const id of waiting) expect((await call('GET', `/v1/cases/${u(id)}`, '督查员周')).body['definitionVersion']).toBe(1);
    const inState = await call('POST', url, '政策员高', { state: '待接单', toVersion: 2, stateMapping: {}, dryRun: true });
    expect(inState.body).toMatchObject({ moved: [], refused: [] });
    const real = await call('POST', url, '政策员高', { fromVersion: 1, toVersion: 2, stateMapping: {}, dryRun: false });
    expect(real.body).toMatchObject({ dryRun: false, refused: [] });
    expect((real.body['moved'] as { caseId: string; toState: string }[]).map((m) => [m.caseId, m.toState]).sort()).toEqual(waiting.map((id) => [id, '待派单']).sort());
    for (const id of waiting) expect((await call('GET', `/v1/cases/${u(id)}`, '督查员周')).body['definitionVersion']).toBe(2);
    expectProblem(await call('POST', `/v1/definitions/${u('没有这个')}/migrate`, '政策员高', { toVersion: 2, stateMapping: {}, dryRun: true }), 404, 'DEFINITION_NOT_FOUND');
  });
});
