/**
 * The HTTP API through `inject`, on whichever backend DATABASE_URL selects: each route's happy
 * path and its refusals (401, 403, 404, 409, 422, 400 for unknown fields, 413, 415), every error
 * as a problem body with a code from the one table.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { Engine } from '../../engine/engine.ts';
import { buildApp, type App } from '../../server/app.ts';
import { signToken } from '../../server/auth.ts';
import { openHarness, ORDER, SECRET, WORKFLOWS, type Harness, expectProblem, toRes, type Res } from './support.ts';

let h: Harness;

async function call(method: 'GET' | 'POST' | 'PUT', url: string, actor?: string | null, payload?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const auth = actor === undefined || actor === null ? {} : await h.auth(actor);
  const r = await h.app.inject({
    method, url, headers: { ...auth, ...headers },
    ...(payload === undefined ? {} : typeof payload === 'string' ? { payload } : { payload: payload as Record<string, unknown> }),
  });
  return toRes(r);
}

const u = (s: string): string => encodeURIComponent(s);

async function startOrder(actor = '居民王先生', data: Record<string, unknown> = ORDER): Promise<string> {
  const r = await call('POST', '/v1/cases', actor, { workflow: '五单服务', orgUnit: '永乐社区', data });
  expect(r.status, r.text).toBe(201);
  return String(r.body['id']);
}

async function send(caseId: string, actor: string, type: string, payload: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Res> {
  return call('POST', `/v1/cases/${u(caseId)}/events`, actor, { type, payload }, headers);
}

beforeAll(async () => {
  h = await openHarness();
});

afterAll(async () => {
  await h?.close();
});

describe('operations', () => {
  it('answers /healthz and /readyz without a token', async () => {
    expect((await call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', database: { ok: true } });
  });

  it('echoes a sane X-Request-Id and makes one otherwise', async () => {
    expect((await call('GET', '/healthz', null, undefined, { 'x-request-id': 'abc-123' })).headers['x-request-id']).toBe('abc-123');
    const made = (await call('GET', '/healthz', null, undefined, { 'x-request-id': 'bad id with spaces' })).headers['x-request-id'];
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves an OpenAPI 3.1 document of every route, with bearer auth and problem responses', async () => {
    const r = await call('GET', '/openapi.json');
    expect(r.status).toBe(200);
    const doc = r.body as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown }>>; components: { securitySchemes: Record<string, unknown> } };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes['bearerAuth']).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const p of ['/v1/cases', '/v1/cases/{id}', '/v1/cases/{id}/events', '/v1/cases/{id}/history', '/v1/definitions', '/v1/definitions/check',
      '/v1/definitions/{name}/versions/{version}', '/v1/definitions/{name}/versions/{version}/graph', '/v1/org-units/{id}', '/v1/actors/{id}', '/healthz', '/readyz', '/metrics']) {
      expect(doc.paths[p], p).toBeDefined();
    }
    expect(doc.paths['/v1/cases/{id}/events']?.['post']?.responses['4XX']).toMatchObject({ content: { 'application/problem+json': { schema: { properties: { code: expect.any(Object) } } } } });
    expect(doc.paths['/healthz']?.['get']?.security).toEqual([]);
    expect(doc.paths['/openapi.json']).toBeUndefined();
  });

  it('serves a page to browse the document', async () => {
    const r = await call('GET', '/docs');
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/text\/html/);
    expect(r.text).toContain('swagger-ui');
  });

  it('sets security headers', async () => {
    const r = await call('GET', '/healthz');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['content-security-policy']).toContain("default-src 'none'");
  });

  it('exports Prometheus metrics: requests and latency by route template and status, events applied', async () => {
    const id = await startOrder();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    await call('GET', `/v1/cases/${u(id)}`, '社区书记张');
    const r = await call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/^text\/plain/);
    expect(r.text).toMatch(/wf_http_requests_total\{method="GET",route="\/v1\/cases\/:id",status="200"\} \d+/);
    expect(r.text).toMatch(/wf_http_request_duration_seconds_bucket\{le="0\.1",method="POST",route="\/v1\/cases\/:id\/events",status="200"\} \d+/);
    expect(r.text).toMatch(/wf_events_applied_total\{workflow="五单服务",kind="start"\} \d+/);
    expect(r.text).toMatch(/wf_events_applied_total\{workflow="五单服务",kind="event"\} \d+/);
    // Raw case ids never become labels.
    expect(r.text).not.toContain(id);
  });

  it('counts an event answered again for its Idempotency-Key once in events applied', async () => {
    const applied = async (): Promise<number> => {
      const m = /wf_events_applied_total\{workflow="五单服务",kind="event"\} (\d+)/.exec((await call('GET', '/metrics')).text);
      return Number(m?.[1] ?? 0);
    };
    const id = await startOrder();
    const before = await applied();
    const key = { 'idempotency-key': 'dispatch-counted-once' };
    expect((await send(id, '社区书记张', '派单', { 单位: '县卫健局' }, key)).status).toBe(200);
    expect((await send(id, '社区书记张', '派单', { 单位: '县卫健局' }, key)).status).toBe(200);
    expect(await applied()).toBe(before + 1);
  });

  it('answers an unknown route with 404 ROUTE_NOT_FOUND, token or not', async () => {
    expectProblem(await call('GET', '/v1/nothing-here'), 404, 'ROUTE_NOT_FOUND');
    expectProblem(await call('DELETE' as 'GET', '/v1/cases', '督查员周'), 404, 'ROUTE_NOT_FOUND');
  });
});

describe('when the database is down', () => {
  it('answers /readyz with 503 and other routes with 503 UNAVAILABLE, never 500', async () => {
    const lost = Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });
    const store = { ...h.store, query: async () => { throw lost; } };
    const app = await buildApp({ engine: new Engine({ store, calendar: h.engine.workCalendar }), jwtSecret: SECRET, rateLimit: false });
    try {
      const ready = await app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({ status: 'unavailable', database: { ok: false } });
      const read = await app.inject({ url: '/v1/cases/any', headers: await h.auth('督查员周') });
      expect(read.statusCode).toBe(503);
      expect(JSON.parse(read.body)).toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await app.close();
    }
  });
});

describe('an unexpected failure', () => {
  it('is a 500 INTERNAL problem that names the request but not the cause', async () => {
    const store = { ...h.store, query: async () => { throw new Error('secret internal detail'); } };
    const app = await buildApp({ engine: new Engine({ store, calendar: h.engine.workCalendar }), jwtSecret: SECRET, rateLimit: false });
    try {
      const r = await app.inject({ url: '/v1/cases/any', headers: { ...(await h.auth('督查员周')), 'x-request-id': 'req-500' } });
      expect(r.statusCode).toBe(500);
      expect(JSON.parse(r.body)).toMatchObject({ code: 'INTERNAL', requestId: 'req-500' });
      expect(r.body).not.toContain('secret internal detail');
    } finally {
      await app.close();
    }
  });
});

describe('authentication', () => {
  const bad = async (authorization: string | undefined): Promise<Res> => call('GET', '/v1/me', null, undefined, authorization === undefined ? {} : { authorization });

  it('refuses a request without a valid bearer token (401 UNAUTHORIZED, WWW-Authenticate)', async () => {
    const none = await bad(undefined);
    expectProblem(none, 401, 'UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expectProblem(await bad('Basic dXNlcjpwYXNz'), 401, 'UNAUTHORIZED');
    expectProblem(await bad('Bearer not.a.token'), 401, 'UNAUTHORIZED');
    expectProblem(await bad(`Bearer ${await signToken('another-secret-that-is-long-enough-000', '社区书记张')}`), 401, 'UNAUTHORIZED');
    const expired = await bad(`Bearer ${await signToken(SECRET, '社区书记张', { now: Date.now() - 3_600_000, ttlSeconds: 60 })}`);
    expectProblem(expired, 401, 'UNAUTHORIZED');
    expect(expired.body['reason']).toBe('expired');
    // alg "none" and a token without `sub`
    const none64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    expectProblem(await bad(`Bearer ${none64({ alg: 'none' })}.${none64({ sub: '管理员钟', exp: 9e9 })}.`), 401, 'UNAUTHORIZED');
    const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    expectProblem(await bad(`Bearer ${noSub}`), 401, 'UNAUTHORIZED');
  });

  it('names the caller and their roles from the database', async () => {
    const r = await call('GET', '/v1/me', '卫健局书记钱');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ actor: '卫健局书记钱', name: '钱书记' });
    expect(r.body['roles']).toEqual(expect.arrayContaining([{ role: '单位书记', unit: '县卫健局' }, { role: '部门负责人', unit: '县卫健局' }]));
  });
});

describe('definitions', () => {
  const wudan = readFileSync(path.join(WORKFLOWS, '五单服务.wf'), 'utf8');

  it('checks a draft: ok with the workflow name, or every diagnostic in the one shape', async () => {
    const good = await call('POST', '/v1/definitions/check', '社区书记张', { source: wudan, file: '五单服务.wf' });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ ok: true, workflow: '五单服务', diagnostics: [] });
    const bad = await call('POST', '/v1/definitions/check', '社区书记张', { source: 'workflow 坏\nstate 甲\n' });
    expect(bad.status).toBe(200);
    expect(bad.body['ok']).toBe(false);
    const ds = bad.body['diagnostics'] as { code: string; severity: string; message: string; file: string; span: { start: { line: number; col: number } } }[];
    expect(ds.map((d) => d.code)).toContain('WF0218');
    expect(ds[0]).toMatchObject({ severity: 'error', file: 'draft.wf', span: { start: { line: 1, col: 1 } } });
  });

  it('resolves imports of a draft inside workflows/ only', async () => {
    const wubu = readFileSync(path.join(WORKFLOWS, '五步闭环.wf'), 'utf8');
    expect((await call('POST', '/v1/definitions/check', '社区书记张', { source: wubu, file: '五步闭环.wf' })).body).toMatchObject({ ok: true, workflow: '五步闭环' });
    const escape = wubu.replaceAll('"shared/分类.wf"', '"../../../etc/passwd"');
    const r = await call('POST', '/v1/definitions/check', '社区书记张', { source: escape, file: '五步闭环.wf' });
    expect(r.body['ok']).toBe(false);
    expect(JSON.stringify(r.body)).not.toContain('root:');
  });

  it.each([
    ['empty', ''],
    ['only garbage', '\u0000\u0001###@@@$$$'],
    ['deep nesting', `workflow 深\ncase { a: number }\nstart 甲 by anyone\nstate 甲\n  on 乙 by anyone require ${'('.repeat(2_000)}1${')'.repeat(2_000)} > 0 -> 甲\nfinal 丙\n`],
    ['unterminated', 'workflow 未完 "标题'],
  ])('never answers a draft with a 500 (%s)', async (_name, source) => {
    const r = await call('POST', '/v1/definitions/check', '社区书记张', { source });
    expect(r.status, r.text).toBe(200);
    expect(Array.isArray(r.body['diagnostics'])).toBe(true);
  });

  it('deploys as policy staff (201, then 200 for the same source), and refuses everyone else with 403 naming the role', async () => {
    const source = `${wudan}\n-- 修订 1\n`;
    const first = await call('POST', '/v1/definitions', '政策员高', { source, file: '五单服务.wf' });
    expect(first.status, first.text).toBe(201);
    expect(first.body).toMatchObject({ name: '五单服务', version: 2, created: true });
    expect(first.headers['location']).toBe(`/v1/definitions/${u('五单服务')}/versions/2`);
    const again = await call('POST', '/v1/definitions', '政策员高', { source, file: '五单服务.wf' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ version: 2, created: false });
    for (const actor of ['社区书记张', '督查员周', '管理员钟']) {
      const r = await call('POST', '/v1/definitions', actor, { source: `${wudan}\n-- ${actor}\n` });
      expectProblem(r, 403, 'NOT_ALLOWED');
      expect(r.body['allowed']).toEqual([{ role: '政策员', unit: null }]);
    }
  });

  it('refuses a draft that does not compile with 422 DEFINITION_INVALID and its diagnostics', async () => {
    const r = await call('POST', '/v1/definitions', '政策员高', { source: 'workflow 坏\nstate 甲\n' });
    expectProblem(r, 422, 'DEFINITION_INVALID');
    expect((r.body['diagnostics'] as { code: string }[]).map((d) => d.code)).toContain('WF0218');
  });

  it('lists versions and reads one with a summary: states, events, who may send them, forms', async () => {
    const list = await call('GET', '/v1/definitions', '督查员周');
    const items = list.body['items'] as { name: string; version: number; label: string | null }[];
    expect(items.map((d) => d.name)).toEqual(expect.arrayContaining(['五单服务', '五步闭环', '吹哨报到', '网格事件']));
    expect(items.find((d) => d.name === '五单服务' && d.version === 1)?.label).toBe('五单服务：点单、派单、接单、抢单、评单');
    const one = await call('GET', `/v1/definitions/${u('五单服务')}/versions/1`, '督查员周');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ name: '五单服务', version: 1, id: '五单服务@1', source: wudan, start: { state: '待派单', who: ['anyone'] } });
    const states = one.body['states'] as { name: string; final: boolean; events: { type: string; who: string[]; payloadSchema: { properties?: Record<string, unknown> } }[] }[];
    const waiting = states.find((s) => s.name === '待派单');
    expect(waiting?.events.find((e) => e.type === '派单')).toMatchObject({ who: ['社区书记 of case.社区', '街道书记'], payloadSchema: { properties: { 单位: expect.any(Object) } } });
    expect(states.find((s) => s.name === '办结')?.final).toBe(true);
    expect(one.body['events']).toEqual(expect.arrayContaining(['派单', '接单', '抢单', '完成', '评价', '退单']));
    expect((one.body['dataSchema'] as { properties: Record<string, unknown> }).properties['电话']).toMatchObject({ type: 'string', pattern: '^1[0-9]{10}$' });
  });

  it('answers 404 for an unknown workflow or version and 400 for a version that is not a number', async () => {
    expectProblem(await call('GET', `/v1/definitions/${u('没有')}/versions/1`, '督查员周'), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('GET', `/v1/definitions/${u('五单服务')}/versions/99`, '督查员周'), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('GET', `/v1/definitions/${u('五单服务')}/versions/abc`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/definitions/${u('五单服务')}/versions/0`, '督查员周'), 400, 'BAD_REQUEST');
  });

  it('draws the diagram: SVG by default, Mermaid text on Accept: text/plain', async () => {
    const svg = await call('GET', `/v1/definitions/${u('五单服务')}/versions/1/graph`, '督查员周');
    expect(svg.status).toBe(200);
    expect(String(svg.headers['content-type'])).toMatch(/^image\/svg\+xml/);
    expect(svg.text).toContain('<svg');
    expect(svg.text).toContain('待派单');
    const mmd = await call('GET', `/v1/definitions/${u('五单服务')}/versions/1/graph`, '督查员周', undefined, { accept: 'text/plain' });
    expect(String(mmd.headers['content-type'])).toMatch(/^text\/plain/);
    expect(mmd.text.startsWith('stateDiagram-v2')).toBe(true);
    expectProblem(await call('GET', `/v1/definitions/${u('五单服务')}/versions/42/graph`, '督查员周'), 404, 'DEFINITION_NOT_FOUND');
  });
});

describe('cases', () => {
  it('starts a case as the caller: 201 with Location, the case on version 1', async () => {
    const r = await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER });
    expect(r.status, r.text).toBe(201);
    expect(r.body).toMatchObject({ workflow: '五单服务', state: '待派单', status: 'active', version: 1, unit: '永乐社区', submitter: '居民王先生', data: { 电话: '13800000000' } });
    expect(r.headers['location']).toBe(`/v1/cases/${u(String(r.body['id']))}`);
    expect(r.body['allowedActions']).toBeUndefined();
  });

  it('starts on a named version, and refuses unknown workflows, versions and org units with 404', async () => {
    const v1 = await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', version: 1, orgUnit: '永乐社区', data: ORDER });
    expect(v1.body['definitionVersion']).toBe(1);
    expectProblem(await call('POST', '/v1/cases', '居民王先生', { workflow: '没有', orgUnit: '永乐社区', data: ORDER }), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', version: 77, orgUnit: '永乐社区', data: ORDER }), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '火星社区', data: ORDER }), 404, 'ORG_UNIT_NOT_FOUND');
  });

  it('refuses bad case data with 422 VALIDATION_FAILED naming the fields', async () => {
    const r = await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: { ...ORDER, 电话: '123' } });
    expectProblem(r, 422, 'VALIDATION_FAILED');
    expect(JSON.stringify(r.body['fields'])).toContain('电话');
  });

  it.each([
    ['an unknown field', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER, 优先级: '高' }, '/优先级'],
    ['a missing field', { workflow: '五单服务', data: ORDER }, '/orgUnit'],
    ['a wrong type', { workflow: '五单服务', orgUnit: '永乐社区', data: 'not an object' }, '/data'],
    ['a version that is not a number', { workflow: '五单服务', version: '1', orgUnit: '永乐社区', data: ORDER }, '/version'],
  ])('refuses a start body with %s: 400 BAD_REQUEST naming the path', async (_name, body, where) => {
    const r = await call('POST', '/v1/cases', '居民王先生', body);
    expectProblem(r, 400, 'BAD_REQUEST');
    expect((r.body['errors'] as { in: string; path: string }[]).some((e) => e.in === 'body' && e.path === where), r.text).toBe(true);
  });

  it('returns the first answer for a retried start with the same Idempotency-Key, and 422 for the key on another request', async () => {
    const key = { 'idempotency-key': `start-${Date.now()}` };
    const a = await call('POST', '/v1/cases', '居民林阿姨', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER }, key);
    const b = await call('POST', '/v1/cases', '居民林阿姨', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER }, key);
    expect(a.status).toBe(201);
    expect(b.body['id']).toBe(a.body['id']);
    expect(b.body['version']).toBe(1);
    expectProblem(await call('POST', '/v1/cases', '居民林阿姨', { workflow: '五单服务', orgUnit: '永乐社区', data: { ...ORDER, 心愿: '别的心愿' } }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    expectProblem(await call('POST', '/v1/cases', '居民林阿姨', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER }, { 'idempotency-key': 'has spaces in it' }), 400, 'BAD_REQUEST');
  });

  it('reads a case with what the caller may send now, each with its payload form', async () => {
    const id = await startOrder();
    const secretary = await call('GET', `/v1/cases/${u(id)}`, '社区书记张');
    expect(secretary.status).toBe(200);
    const actions = secretary.body['allowedActions'] as { event: string; as: { role: string | null }; payloadSchema: { properties: Record<string, unknown>; required: string[] } }[];
    const dispatch = actions.find((a) => a.event === '派单');
    expect(dispatch?.as.role).toBe('社区书记');
    expect(dispatch?.payloadSchema.required).toContain('单位');
    expect((await call('GET', `/v1/cases/${u(id)}`, '督查员周')).body['allowedActions']).toEqual([]);
    // 党员李's unit (县卫健局) has no part in the case yet: out of his jurisdiction, so not found.
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, '党员李'), 404, 'CASE_NOT_FOUND');
    expect(((await call('GET', `/v1/cases/${u(id)}`, '居民王先生')).body['allowedActions'] as { event: string }[]).map((a) => a.event)).toEqual(['撤单']);
    expectProblem(await call('GET', '/v1/cases/no-such-case', '社区书记张'), 404, 'CASE_NOT_FOUND');
  });

  it('applies an event as the caller (200 with the case), and answers refusals as the engine says', async () => {
    const id = await startOrder();
    const wrongRole = await send(id, '党员李', '派单', { 单位: '县卫健局' });
    expectProblem(wrongRole, 403, 'NOT_ALLOWED');
    expect(wrongRole.body['allowed']).toEqual([{ role: '社区书记', unit: '永乐社区' }, { role: '街道书记', unit: '永乐社区' }]);
    const wrongState = await send(id, '卫健局书记钱', '接单');
    expectProblem(wrongState, 409, 'NOT_POSSIBLE');
    expect(wrongState.body['state']).toBe('待派单');
    expect([...(wrongState.body['allowedEvents'] as string[])].sort()).toEqual(['撤单', '派单'].sort());
    const badPayload = await send(id, '社区书记张', '派单', { 单位: 42 });
    expectProblem(badPayload, 422, 'VALIDATION_FAILED');
    const ok = await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ state: '待接单', version: 2, data: { 单位: '县卫健局' } });
    expectProblem(await send('no-such-case', '社区书记张', '派单', { 单位: '县卫健局' }), 404, 'CASE_NOT_FOUND');
  });

  it.each([
    ['an unknown field', { type: '派单', payload: {}, urgent: true }],
    ['no type', { payload: {} }],
    ['a payload that is not an object', { type: '派单', payload: [1, 2] }],
    ['a timer event (only the engine fires timers)', { type: 'xstate.after.2workdays.五单服务.待派单', payload: {} }],
  ])('refuses an event body with %s: 400 BAD_REQUEST, nothing written', async (_name, body) => {
    const id = await startOrder();
    expectProblem(await call('POST', `/v1/cases/${u(id)}/events`, '社区书记张', body), 400, 'BAD_REQUEST');
    expect((await call('GET', `/v1/cases/${u(id)}`, '社区书记张')).body).toMatchObject({ state: '待派单', version: 1 });
  });

  it('returns the first answer for a retried event with the same Idempotency-Key', async () => {
    const id = await startOrder();
    const key = { 'idempotency-key': `dispatch-${id}` };
    const a = await send(id, '社区书记张', '派单', { 单位: '县卫健局' }, key);
    const b = await send(id, '社区书记张', '派单', { 单位: '县卫健局' }, key);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ version: 2, state: '待接单' });
    expect((await call('GET', `/v1/cases/${u(id)}`, '社区书记张')).body['version']).toBe(2);
  });

  it('reads the history: every event with actor, role, time, resulting state, trace and an unbroken hash chain', async () => {
    const id = await startOrder();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(id, '卫健局书记钱', '接单');
    const r = await call('GET', `/v1/cases/${u(id)}/history`, '督查员周');
    expect(r.status, r.text).toBe(200);
    const events = r.body['events'] as { seq: number; type: string; actor: string; role: string | null; at: string; state: string; trace: unknown[]; hash: string; prevHash: string | null; facts: unknown }[];
    expect(events.map((e) => [e.seq, e.type, e.actor, e.role, e.state])).toEqual([
      [1, 'start', '居民王先生', null, '待派单'],
      [2, '派单', '社区书记张', '社区书记', '待接单'],
      [3, '接单', '卫健局书记钱', '单位书记', '待抢单'],
    ]);
    expect(events[0]?.prevHash).toBeNull();
    expect(events[1]?.prevHash).toBe(events[0]?.hash);
    expect(events[2]?.prevHash).toBe(events[1]?.hash);
    expect(events[1]?.at).toBe(new Date(h.clock.now).toISOString());
    expect(r.body['nextAfter']).toBeNull();
    const page1 = await call('GET', `/v1/cases/${u(id)}/history?limit=2`, '督查员周');
    expect((page1.body['events'] as unknown[]).length).toBe(2);
    expect(page1.body['nextAfter']).toBe(2);
    const page2 = await call('GET', `/v1/cases/${u(id)}/history?after=2`, '督查员周');
    expect((page2.body['events'] as { seq: number }[]).map((e) => e.seq)).toEqual([3]);
    expectProblem(await call('GET', '/v1/cases/no-such-case/history', '督查员周'), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/history?limit=0`, '督查员周'), 400, 'BAD_REQUEST');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/history?sort=desc`, '督查员周'), 400, 'BAD_REQUEST');
  });
});

describe('the case ledger', () => {
  let ids: string[] = [];
  let nanquan: string;

  beforeAll(async () => {
    ids = [];
    for (let i = 0; i < 5; i++) ids.push(await startOrder('居民林阿姨', { ...ORDER, 心愿: `台账测试心愿 ${i}` }));
    await send(ids[0] ?? '', '社区书记张', '派单', { 单位: '县卫健局' });
    const r = await call('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '南泉社区', data: { ...ORDER, 社区: '南泉社区' } });
    nanquan = String(r.body['id']);
  });

  it('filters by org unit including the units below it', async () => {
    const street = await call('GET', `/v1/cases?orgUnit=${u('龙形街道')}&limit=500`, '督查员周');
    const inStreet = (street.body['items'] as { id: string; unit: string }[]).map((c) => c.id);
    expect(inStreet).toEqual(expect.arrayContaining(ids));
    expect(inStreet).not.toContain(nanquan);
    const other = await call('GET', `/v1/cases?orgUnit=${u('德凤街道')}&limit=500`, '督查员周');
    expect((other.body['items'] as { id: string }[]).map((c) => c.id)).toContain(nanquan);
    expectProblem(await call('GET', `/v1/cases?orgUnit=${u('火星')}`, '督查员周'), 404, 'ORG_UNIT_NOT_FOUND');
  });

  it('filters by workflow, state and status, and leaves case data out of lists', async () => {
    const r = await call('GET', `/v1/cases?workflow=${u('五单服务')}&state=${u('待接单')}&status=active&limit=500`, '督查员周');
    const items = r.body['items'] as Record<string, unknown>[];
    expect(items.map((c) => c['id'])).toContain(ids[0]);
    expect(items.every((c) => c['state'] === '待接单' && c['status'] === 'active' && c['workflow'] === '五单服务')).toBe(true);
    expect(items[0]?.['data']).toBeUndefined();
    expect((await call('GET', `/v1/cases?workflow=${u('五单服务')}&status=done`, '督查员周')).body['items']).toEqual([]);
    expectProblem(await call('GET', `/v1/cases?workflow=${u('没有这个')}`, '督查员周'), 404, 'DEFINITION_NOT_FOUND');
    expectProblem(await call('GET', '/v1/cases?status=closed', '督查员周'), 400, 'BAD_REQUEST');
  });

  it('filters by creation time', async () => {
    const future = await call('GET', `/v1/cases?createdFrom=${u('2999-01-01T00:00:00Z')}`, '督查员周');
    expect(future.body['items']).toEqual([]);
    const past = await call('GET', `/v1/cases?createdTo=${u('2000-01-01T00:00:00Z')}`, '督查员周');
    expect(past.body['items']).toEqual([]);
    const all = await call('GET', `/v1/cases?createdFrom=${u('2000-01-01T00:00:00+08:00')}&limit=500`, '督查员周');
    expect((all.body['items'] as { id: string }[]).map((c) => c.id)).toEqual(expect.arrayContaining(ids));
    expectProblem(await call('GET', '/v1/cases?createdFrom=yesterday', '督查员周'), 400, 'BAD_REQUEST');
  });

  it('pages newest first with a cursor, without repeats or gaps', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Res = await call('GET', `/v1/cases?orgUnit=${u('永乐社区')}&limit=2${cursor === null ? '' : `&cursor=${u(cursor)}`}`, '督查员周');
      expect(r.status, r.text).toBe(200);
      const items = r.body['items'] as { id: string; createdAt: string }[];
      expect(items.length).toBeLessThanOrEqual(2);
      seen.push(...items.map((c) => c.id));
      cursor = r.body['nextCursor'] as string | null;
      pages++;
    } while (cursor !== null && pages < 100);
    expect(new Set(seen).size).toBe(seen.length);
    const whole = await call('GET', `/v1/cases?orgUnit=${u('永乐社区')}&limit=500`, '督查员周');
    expect(seen).toEqual((whole.body['items'] as { id: string }[]).map((c) => c.id));
    // Newest first: the last five started are the ledger's first five, in reverse.
    expect(seen.indexOf(ids[4] ?? '')).toBeLessThan(seen.indexOf(ids[0] ?? ''));
    expectProblem(await call('GET', '/v1/cases?cursor=garbage', '督查员周'), 422, 'VALIDATION_FAILED');
  });
});

describe('request bodies', () => {
  it('refuses a body over the limit with 413 PAYLOAD_TOO_LARGE', async () => {
    const r = await call('POST', '/v1/definitions/check', '社区书记张', { source: 'x'.repeat(1_200_000) });
    expectProblem(r, 413, 'PAYLOAD_TOO_LARGE');
    expect(r.body['limit']).toBe(1024 * 1024);
  });

  it('refuses JSON that does not parse (400 INVALID_JSON) and bodies that are not JSON (415)', async () => {
    expectProblem(await call('POST', '/v1/cases', '居民王先生', '{"workflow": ', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', '', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', '{"__proto__": {"x": 1}}', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', 'workflow=五单服务', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectProblem(await call('POST', '/v1/cases', '居民王先生', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('org units and actors', () => {
  it('lists the tree and reads a unit with its children', async () => {
    const all = await call('GET', '/v1/org-units', '社区书记张');
    expect((all.body['items'] as { id: string }[]).length).toBeGreaterThanOrEqual(25);
    const street = await call('GET', `/v1/org-units/${u('龙形街道')}`, '社区书记张');
    expect(street.body).toMatchObject({ id: '龙形街道', parent: '黎平县', level: 'street', children: expect.arrayContaining(['永乐社区', '滨江社区']) });
    expectProblem(await call('GET', `/v1/org-units/${u('火星')}`, '社区书记张'), 404, 'ORG_UNIT_NOT_FOUND');
  });

  it('lets only 管理员 change units: 201 new, 200 changed; a missing parent or a cycle is 422', async () => {
    const body = { parent: '永乐社区', level: 'grid', name: '永乐社区第三网格' };
    expectProblem(await call('PUT', `/v1/org-units/${u('永乐社区第三网格')}`, '社区书记张', body), 403, 'NOT_ALLOWED');
    expectProblem(await call('PUT', `/v1/org-units/${u('永乐社区第三网格')}`, '督查员周', body), 403, 'NOT_ALLOWED');
    const created = await call('PUT', `/v1/org-units/${u('永乐社区第三网格')}`, '管理员钟', body);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ id: '永乐社区第三网格', parent: '永乐社区', level: 'grid', children: [] });
    const renamed = await call('PUT', `/v1/org-units/${u('永乐社区第三网格')}`, '管理员钟', { ...body, name: '第三网格（新）' });
    expect(renamed.status).toBe(200);
    expect(renamed.body['name']).toBe('第三网格（新）');
    expectProblem(await call('PUT', `/v1/org-units/${u('孤儿网格')}`, '管理员钟', { ...body, parent: '不存在' }), 422, 'VALIDATION_FAILED');
    expectProblem(await call('PUT', `/v1/org-units/${u('龙形街道')}`, '管理员钟', { parent: '永乐社区', level: 'street', name: '龙形街道' }), 422, 'VALIDATION_FAILED');
    expectProblem(await call('PUT', `/v1/org-units/${u('x')}`, '管理员钟', { ...body, level: 'planet' }), 400, 'BAD_REQUEST');
  });

  it('lets only 管理员 change people; a new grant takes effect at once', async () => {
    const id = `党员新${Date.now()}`;
    const body = { name: '新党员', phone: '13912345678', roles: [{ role: '在职党员', unit: '县卫健局' }] };
    expectProblem(await call('PUT', `/v1/actors/${u(id)}`, '社区书记张', body), 403, 'NOT_ALLOWED');
    expectProblem(await call('GET', `/v1/actors/${u(id)}`, '管理员钟'), 404, 'ACTOR_NOT_FOUND');
    const created = await call('PUT', `/v1/actors/${u(id)}`, '管理员钟', body);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ id, name: '新党员', roles: [{ role: '在职党员', unit: '县卫健局' }] });
    expectProblem(await call('PUT', `/v1/actors/${u(id)}`, '管理员钟', { ...body, roles: [{ role: '在职党员', unit: '火星' }] }), 422, 'VALIDATION_FAILED');

    // The new member can claim an order of their unit straight away.
    const caseId = await startOrder();
    await send(caseId, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(caseId, '卫健局书记钱', '接单');
    const claim = await send(caseId, id, '抢单');
    expect(claim.status, claim.text).toBe(200);
    expect(claim.body['data']).toMatchObject({ 党员: id });
  });

  it('masks a phone number unless the caller is the person, 管理员 or 督查员', async () => {
    const id = `居民测${Date.now()}`;
    await call('PUT', `/v1/actors/${u(id)}`, '管理员钟', { name: '测居民', phone: '13912345678', roles: [] });
    expect((await call('GET', `/v1/actors/${u(id)}`, '社区书记张')).body['phone']).toBe('139****5678');
    expect((await call('GET', `/v1/actors/${u(id)}`, id)).body['phone']).toBe('13912345678');
    expect((await call('GET', `/v1/actors/${u(id)}`, '管理员钟')).body['phone']).toBe('13912345678');
    expect((await call('GET', `/v1/actors/${u(id)}`, '督查员周')).body['phone']).toBe('13912345678');
  });
});

describe('read-only roles and rate limits (separate app instances on the same engine)', () => {
  let strict: App;
  let limited: App;

  beforeAll(async () => {
    strict = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: false, readOnlyRoles: ['督查员'] });
    limited = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: { max: 3, timeWindowMs: 60_000 } });
  });

  afterAll(async () => {
    await strict?.close();
    await limited?.close();
  });

  it('with readOnlyRoles, a caller holding only those roles reads but changes nothing', async () => {
    const headers = await h.auth('督查员周');
    expect((await strict.inject({ url: '/v1/cases?limit=1', headers })).statusCode).toBe(200);
    expect((await strict.inject({ method: 'POST', url: '/v1/definitions/check', headers, payload: { source: 'workflow 甲' } })).statusCode).toBe(200);
    const start = await strict.inject({ method: 'POST', url: '/v1/cases', headers, payload: { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER } });
    expect(start.statusCode).toBe(403);
    expect(JSON.parse(start.body)).toMatchObject({ code: 'NOT_ALLOWED', readOnly: true });
    // Auditor checks are POSTs that change nothing: read-only roles may run them.
    const some = await strict.inject({ method: 'POST', url: '/v1/cases', headers: await h.auth('居民王先生'), payload: { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER } });
    const caseId = (JSON.parse(some.body) as { id: string }).id;
    for (const check of ['verify', 'replay']) {
      const r = await strict.inject({ method: 'POST', url: `/v1/cases/${caseId}/${check}`, headers });
      expect(r.statusCode, check).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ ok: true });
    }
    // Others are unaffected.
    const resident = await strict.inject({ method: 'POST', url: '/v1/cases', headers: await h.auth('居民王先生'), payload: { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER } });
    expect(resident.statusCode).toBe(201);
  });

  it('limits requests per actor: over the limit is 429 RATE_LIMITED with Retry-After', async () => {
    const zhang = await h.auth('社区书记张');
    for (let i = 0; i < 3; i++) expect((await limited.inject({ url: '/v1/me', headers: zhang })).statusCode).toBe(200);
    const over = await limited.inject({ url: '/v1/me', headers: zhang });
    expect(over.statusCode).toBe(429);
    expect(JSON.parse(over.body)).toMatchObject({ code: 'RATE_LIMITED', status: 429, limit: 3 });
    expect(over.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(over.headers['retry-after']).toBeDefined();
    // Another actor has a budget of their own; health checks are never limited.
    expect((await limited.inject({ url: '/v1/me', headers: await h.auth('社区书记刘') })).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await limited.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});
