/**
 * The 码上办 intake form (`POST /v1/intake/{workflow}`) through `inject`, on whichever backend
 * DATABASE_URL selects: a resident without an account starts a case, follows it and rates it with
 * the case token the form returns, and can do nothing else with that token; workflows not started
 * `by anyone` are refused; the form is limited per client address.
 */
import { sql } from 'kysely';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { DEFAULT_CASE_TOKEN_TTL_SECONDS, signCaseToken } from '../../server/auth.ts';
import { openHarness, ORDER, SECRET, type Harness, expectProblem, toRes, type Res } from './support.ts';

let h: Harness;

type Who = string | { readonly token: string } | null;

type CallOptions = { app?: App; remoteAddress?: string; headers?: Record<string, string> };

async function call(method: 'GET' | 'POST' | 'PUT', url: string, who: Who, payload?: unknown, options: CallOptions = {}): Promise<Res> {
  const auth = who === null ? {} : typeof who === 'string' ? await h.auth(who) : { authorization: `Bearer ${who.token}` };
  const headers = { ...auth, ...options.headers };
  const r = await (options.app ?? h.app).inject({
    method, url, headers, ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return toRes(r);
}

const u = (s: string): string => encodeURIComponent(s);
const WUDAN = `/v1/intake/${u('五单服务')}`;
const FORM = { orgUnit: '永乐社区', data: ORDER };

interface Intake {
  readonly id: string;
  readonly actor: string;
  readonly token: { readonly token: string };
  readonly res: Res;
}

async function intake(body: unknown = FORM, options: CallOptions = {}): Promise<Intake> {
  const res = await call('POST', WUDAN, null, body, options);
  expect(res.status, res.text).toBe(201);
  const c = res.body['case'] as { id: string };
  return { id: c.id, actor: String(res.body['actor']), token: { token: String(res.body['token']) }, res };
}

async function caseCount(): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from cases`.execute(h.store.db);
  return Number(rows[0]?.n);
}

async function send(caseId: string, who: Who, type: string, payload: Record<string, unknown> = {}): Promise<Res> {
  return call('POST', `/v1/cases/${u(caseId)}/events`, who, { type, payload });
}

beforeAll(async () => {
  h = await openHarness();
});

afterAll(async () => {
  await h?.close();
});

describe('the intake form', () => {
  it('starts a case without a token as a new resident, the submitter, and answers with a case token', async () => {
    const before = Date.now();
    const { id, actor, token, res } = await intake();
    expect(actor).toMatch(/^居民:[0-9a-f-]{36}$/);
    expect(res.headers['location']).toBe(`/v1/cases/${u(id)}`);
    // The resident sees what they sent, unmasked.
    expect(res.body['case']).toMatchObject({ workflow: '五单服务', state: '待派单', unit: '永乐社区', submitter: actor, version: 1, data: { 姓名: '王先生', 电话: '13800000000' } });
    const claims = decodeJwt(token.token);
    expect(claims).toMatchObject({ sub: actor, case: id });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(DEFAULT_CASE_TOKEN_TTL_SECONDS);
    expect(Date.parse(String(res.body['tokenExpiresAt']))).toBeGreaterThanOrEqual(before + DEFAULT_CASE_TOKEN_TTL_SECONDS * 1000 - 1000);
    // Two forms are two residents.
    expect((await intake()).actor).not.toBe(actor);
  });

  it('lets the case token read its case and history and withdraw it; the workflow decides which events', async () => {
    const { id, actor, token } = await intake();
    const read = await call('GET', `/v1/cases/${u(id)}`, token);
    expect(read.status, read.text).toBe(200);
    expect((read.body['allowedActions'] as { event: string }[]).map((a) => a.event)).toEqual(['撤单']);
    expect(read.body['data']).toMatchObject({ 电话: '13800000000' });
    const history = await call('GET', `/v1/cases/${u(id)}/history`, token);
    expect((history.body['events'] as { type: string; actor: string }[]).map((e) => [e.type, e.actor])).toEqual([['start', actor]]);
    // Not the secretary's event: the engine refuses it and names who may.
    const dispatch = await send(id, token, '派单', { 单位: '县卫健局' });
    expectProblem(dispatch, 403, 'NOT_ALLOWED');
    expect(dispatch.body['allowed']).toEqual([{ role: '社区书记', unit: '永乐社区' }, { role: '街道书记', unit: '永乐社区' }]);
    const withdrawn = await send(id, token, '撤单', { 原因: '问题已自行解决' });
    expect(withdrawn.status, withdrawn.text).toBe(200);
    expect(withdrawn.body).toMatchObject({ state: '已撤单', status: 'done' });
    expect((await call('GET', `/v1/cases/${u(id)}/history`, '督查员周')).body['events']).toMatchObject([{ type: 'start', actor }, { type: '撤单', actor, role: null }]);
  });

  it('walks the 五单 loop with staff tokens and ends with the resident\'s rating through the case token', async () => {
    const { id, actor, token } = await intake();
    expect((await send(id, '社区书记张', '派单', { 单位: '县卫健局' })).status).toBe(200);
    expect((await send(id, '卫健局书记钱', '接单')).status).toBe(200);
    expect((await send(id, '党员李', '抢单')).status).toBe(200);
    expect((await send(id, '党员李', '完成', { 办理情况: '已清理完毕', 服务小时: 2 })).body['state']).toBe('待评价');
    const rating = { 评分: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 4, 群众是否满意: 5 }, 意见: '很及时' };
    // Another resident's case token is not the submitter of this case.
    const other = await intake();
    expectProblem(await send(id, other.token, '评价', rating), 403, 'NOT_ALLOWED');
    const rated = await send(id, token, '评价', rating);
    expect(rated.status, rated.text).toBe(200);
    expect(rated.body).toMatchObject({ state: '办结', status: 'done', data: { 评价意见: '很及时', 平均分: 4.8 } });
    const last = (await call('GET', `/v1/cases/${u(id)}/history`, token)).body['events'] as { type: string; actor: string }[];
    expect(last[last.length - 1]).toMatchObject({ type: '评价', actor });
  });

  it('refuses a case token anything but its own case\'s read, history and events (403 NOT_ALLOWED naming the case)', async () => {
    const mine = await intake();
    const other = await intake();
    const refused: [method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown][] = [
      ['GET', `/v1/cases/${u(other.id)}`],
      ['GET', `/v1/cases/${u(other.id)}/history`],
      ['POST', `/v1/cases/${u(other.id)}/events`, { type: '撤单', payload: { 原因: '不是我的案件' } }],
      ['GET', '/v1/cases'],
      ['POST', '/v1/cases', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER }],
      ['GET', '/v1/inbox'],
      ['GET', '/v1/me'],
      ['GET', '/v1/definitions'],
      ['GET', '/v1/org-units'],
      ['GET', `/v1/actors/${u('社区书记张')}`],
      ['GET', `/v1/kpis?workflow=${u('五单服务')}`],
      ['GET', `/v1/cases/${u(mine.id)}/state?at=${u(new Date(h.clock.now).toISOString())}`],
      ['GET', `/v1/cases/${u(mine.id)}/links`],
      ['POST', `/v1/cases/${u(mine.id)}/verify`],
      ['POST', `/v1/cases/${u(mine.id)}/suspend`, {}],
      ['GET', `/v1/cases/${u(mine.id)}/personal-data-reads`],
    ];
    for (const [method, url, body] of refused) {
      const r = await call(method, url, mine.token, body);
      expectProblem(r, 403, 'NOT_ALLOWED');
      expect(r.body, `${method} ${url}`).toMatchObject({ caseScope: mine.id, actor: mine.actor });
      expect(String(r.body['detail'])).toContain(mine.id);
    }
    // Acting for someone else is not the resident's own event.
    expectProblem(await call('POST', `/v1/cases/${u(mine.id)}/events`, mine.token, { type: '撤单', payload: { 原因: '代别人撤' }, onBehalfOf: '居民林阿姨' }), 403, 'NOT_ALLOWED');
    expect((await call('GET', `/v1/cases/${u(other.id)}`, '督查员周')).body).toMatchObject({ state: '待派单', version: 1 });
  });

  it('refuses an expired, forged or malformed case token with 401', async () => {
    const { id, actor } = await intake();
    const expired = await signCaseToken(SECRET, actor, id, { now: Date.now() - 3_600_000, ttlSeconds: 60 });
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, { token: expired.token }), 401, 'UNAUTHORIZED');
    const forged = await signCaseToken('another-secret-that-is-long-enough-000', actor, id);
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, { token: forged.token }), 401, 'UNAUTHORIZED');
    const numeric = await new SignJWT({ case: 42 }).setProtectedHeader({ alg: 'HS256' }).setSubject(actor).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, { token: numeric }), 401, 'UNAUTHORIZED');
  });

  it('takes the form into a grid for a workflow started by anyone (网格事件)', async () => {
    const r = await call('POST', `/v1/intake/${u('网格事件')}`, null, {
      orgUnit: '永乐社区第一网格', data: { 网格: '永乐社区第一网格', 来源: '居民上报', 描述: '小区门口路灯不亮', 上报电话: '13912345678' },
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body['case']).toMatchObject({ workflow: '网格事件', unit: '永乐社区第一网格', submitter: r.body['actor'] });
  });

  it('refuses, writing nothing: a workflow not started by anyone, unknown workflows and units, a unit that is not a community or grid, bad data, unknown fields', async () => {
    const n = await caseCount();
    const whistle = await call('POST', `/v1/intake/${u('吹哨报到')}`, null, { orgUnit: '永乐社区', data: { 社区: '永乐社区', 事项: '河道垃圾需要多部门处理' } });
    expectProblem(whistle, 403, 'INTAKE_NOT_OPEN');
    expect(whistle.body).toMatchObject({ workflow: '吹哨报到', startBy: ['社区书记', '街道书记', '网格员'] });
    expectProblem(await call('POST', `/v1/intake/${u('没有这个')}`, null, FORM), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('POST', WUDAN, null, { ...FORM, orgUnit: '火星社区' }), 404, 'ORG_UNIT_NOT_FOUND');
    const street = await call('POST', WUDAN, null, { ...FORM, orgUnit: '龙形街道' });
    expectProblem(street, 422, 'VALIDATION_FAILED');
    expect(street.body['fields']).toEqual([expect.objectContaining({ path: 'orgUnit' })]);
    const phone = await call('POST', WUDAN, null, { ...FORM, data: { ...ORDER, 电话: '123' } });
    expectProblem(phone, 422, 'VALIDATION_FAILED');
    expect(JSON.stringify(phone.body['fields'])).toContain('电话');
    expectProblem(await call('POST', WUDAN, null, { ...FORM, version: 1 }), 400, 'BAD_REQUEST');
    expectProblem(await call('POST', WUDAN, null, { data: ORDER }), 400, 'BAD_REQUEST');
    expect(await caseCount()).toBe(n);
  });

  it('answers a retry of a form sent with an Idempotency-Key with the first answer: the same case and resident, a token for it, no second case', async () => {
    const n = await caseCount();
    const key = { 'idempotency-key': 'form-7f3c9a2e-5b1d-4c8e-9a6f-1e2d3c4b5a69' };
    const first = await intake(FORM, { headers: key });
    const retry = await intake(FORM, { headers: key });
    expect(await caseCount()).toBe(n + 1);
    expect({ id: retry.id, actor: retry.actor }).toEqual({ id: first.id, actor: first.actor });
    expect(first.actor).toMatch(/^居民:[0-9a-f-]{36}$/);
    expect(retry.res.body['case']).toEqual(first.res.body['case']);
    // The retry's token is as good as the first's: the resident may have lost the first answer.
    expect(decodeJwt(retry.token.token)).toMatchObject({ sub: first.actor, case: first.id });
    expect((await call('GET', `/v1/cases/${u(first.id)}`, retry.token)).status).toBe(200);
    // The key names the form: another key is another form and another resident.
    const other = await intake(FORM, { headers: { 'idempotency-key': 'form-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d' } });
    expect(other.id).not.toBe(first.id);
    expect(other.actor).not.toBe(first.actor);
    expect(await caseCount()).toBe(n + 2);
  });

  it('refuses an intake Idempotency-Key reused for a different form (422) or too short to be unguessable (400), writing nothing', async () => {
    const key = { 'idempotency-key': 'form-2b8e6d4c-1a3f-4e5d-b7c9-0f1e2d3c4b5a' };
    await intake(FORM, { headers: key });
    const n = await caseCount();
    const changed = await call('POST', WUDAN, null, { ...FORM, data: { ...ORDER, 心愿: '换一个心愿' } }, { headers: key });
    expectProblem(changed, 422, 'IDEMPOTENCY_KEY_REUSED');
    const short = await call('POST', WUDAN, null, FORM, { headers: { 'idempotency-key': 'retry-1' } });
    expectProblem(short, 400, 'BAD_REQUEST');
    expect(short.text).toContain('idempotency-key');
    expect(await caseCount()).toBe(n);
  });

  it('replays a refusal to a retry of the same form, and stores no case', async () => {
    const n = await caseCount();
    const key = { 'idempotency-key': 'form-9c8b7a6d-5e4f-4321-8abc-def012345678' };
    const body = { ...FORM, data: { ...ORDER, 电话: '123' } };
    expectProblem(await call('POST', WUDAN, null, body, { headers: key }), 422, 'VALIDATION_FAILED');
    const again = await call('POST', WUDAN, null, body, { headers: key });
    expectProblem(again, 422, 'VALIDATION_FAILED');
    expect(again.body['replayed']).toBe(true);
    expect(await caseCount()).toBe(n);
  });

  it('is in the API document as a public route', async () => {
    const doc = (await call('GET', '/openapi.json', null)).body as { paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>> };
    const op = doc.paths['/v1/intake/{workflow}']?.['post'];
    expect(op?.security).toEqual([]);
    expect(op?.responses['201']).toBeDefined();
  });
});

describe('the intake form\'s own rate limit (separate app instances on the same engine)', () => {
  let tight: App;
  let both: App;
  let defaults: App;

  beforeAll(async () => {
    tight = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: false, intakeRateLimit: { max: 2, timeWindowMs: 60_000 }, caseTokenTtlSeconds: 3_600 });
    both = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: { max: 1_000, timeWindowMs: 60_000 }, intakeRateLimit: { max: 1, timeWindowMs: 60_000 } });
    defaults = await buildApp({ engine: h.engine, jwtSecret: SECRET });
  });

  afterAll(async () => {
    await tight?.close();
    await both?.close();
    await defaults?.close();
  });

  it('answers 429 RATE_LIMITED with Retry-After past the limit for one address; another address has its own budget', async () => {
    const first = await intake(FORM, { app: tight, remoteAddress: '10.0.0.1' });
    const claims = decodeJwt(first.token.token);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3_600);
    // A refused form counts too: the limit is checked before the body.
    expectProblem(await call('POST', WUDAN, null, { nonsense: true }, { app: tight, remoteAddress: '10.0.0.1' }), 400, 'BAD_REQUEST');
    const n = await caseCount();
    const over = await call('POST', WUDAN, null, FORM, { app: tight, remoteAddress: '10.0.0.1' });
    expectProblem(over, 429, 'RATE_LIMITED');
    expect(over.body).toMatchObject({ limit: 2, retryAfter: expect.any(Number) });
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    expect(await caseCount()).toBe(n);
    expect((await call('POST', WUDAN, null, FORM, { app: tight, remoteAddress: '10.0.0.2' })).status).toBe(201);
    // Signed-in routes are not limited by it.
    for (let i = 0; i < 3; i++) expect((await call('GET', '/v1/me', '社区书记张', undefined, { app: tight, remoteAddress: '10.0.0.1' })).status).toBe(200);
  });

  it('keeps its own limit beside the app-wide one', async () => {
    await intake(FORM, { app: both, remoteAddress: '10.0.1.1' });
    expectProblem(await call('POST', WUDAN, null, FORM, { app: both, remoteAddress: '10.0.1.1' }), 429, 'RATE_LIMITED');
    expect((await call('GET', '/v1/me', '社区书记张', undefined, { app: both, remoteAddress: '10.0.1.1' })).status).toBe(200);
  });

  it('allows 10 forms an hour from one address by default', async () => {
    for (let i = 0; i < 10; i++) expectProblem(await call('POST', WUDAN, null, { bad: i }, { app: defaults, remoteAddress: '10.0.2.1' }), 400, 'BAD_REQUEST');
    const over = await call('POST', WUDAN, null, FORM, { app: defaults, remoteAddress: '10.0.2.1' });
    expectProblem(over, 429, 'RATE_LIMITED');
    expect(over.body['limit']).toBe(10);
  });
});
