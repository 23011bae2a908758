/**
 * Malformed and refused requests, one table row each: every row gets its 4xx status and problem
 * `code` as application/problem+json, and leaves the database exactly as it was — every table of
 * the store's schema, row counts and a hash of every row, compared before and after the request.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../server/auth.ts';
import { ERRORS } from '../../server/errors.ts';
import { openHarness, ORDER, SECRET, WORKFLOWS, type Harness } from './support.ts';

let h: Harness;

/** The cases the rows point at, made once before the table runs. */
interface Fixtures {
  /** 待派单. */
  readonly open: string;
  /** 待接单, dispatched to 县城管局. */
  readonly waiting: string;
  /** 已撤单 (closed). */
  readonly withdrawn: string;
  /** Suspended by 管理员钟. */
  readonly suspended: string;
  /** Dispatched with Idempotency-Key `dispatch-once`. */
  readonly keyed: string;
  /** The source of workflows/五单服务.wf. */
  readonly wudan: string;
}

let f: Fixtures;

interface Res {
  readonly status: number;
  readonly contentType: string;
  readonly requestId: string;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

const u = (s: string): string => encodeURIComponent(s);
const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const key = new TextEncoder().encode(SECRET);
const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600;

interface Row {
  readonly name: string;
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  readonly url: (f: Fixtures) => string;
  /** The caller; null sends no token. Ignored when `authorization` is given. */
  readonly actor?: string | null;
  /** A raw Authorization header (bad tokens). */
  readonly authorization?: () => Promise<string>;
  readonly headers?: Readonly<Record<string, string>>;
  /** An object is sent as JSON; a string is sent as is; a function makes the body from the fixtures. */
  readonly body?: unknown;
  readonly status: number;
  readonly code: keyof typeof ERRORS;
  /** More about the problem body (which field, which state, who may act). */
  readonly expect?: Readonly<Record<string, unknown>>;
  /** A `fields` (422) or `errors` (400) entry's path that must be named. */
  readonly names?: string;
}

const START = { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER };
const DISPATCH = { type: '派单', payload: { 单位: '县卫健局' } };
const events = (id: string): string => `/v1/cases/${u(id)}/events`;

const ROWS: readonly Row[] = [
  // ---- tokens: 401 UNAUTHORIZED ----
  { name: 'no Authorization header', url: (x) => `/v1/cases/${u(x.open)}`, actor: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'Basic instead of Bearer', url: (x) => `/v1/cases/${u(x.open)}`, authorization: async () => 'Basic dXNlcjpwYXNz', status: 401, code: 'UNAUTHORIZED' },
  { name: 'Bearer with no token', url: () => '/v1/me', authorization: async () => 'Bearer ', status: 401, code: 'UNAUTHORIZED' },
  { name: 'a token that is not a JWT', url: () => '/v1/me', authorization: async () => 'Bearer not.a.token', status: 401, code: 'UNAUTHORIZED' },
  {
    name: 'an expired token', method: 'POST', url: () => '/v1/cases', body: START, status: 401, code: 'UNAUTHORIZED', expect: { reason: 'expired' },
    authorization: async () => `Bearer ${await signToken(SECRET, '居民王先生', { now: Date.now() - 7_200_000, ttlSeconds: 60 })}`,
  },
  {
    name: 'a token signed with another secret', method: 'POST', url: (x) => events(x.open), body: DISPATCH, status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${await signToken('another-secret-that-is-also-long-enough!', '社区书记张')}`,
  },
  {
    name: 'an unsigned token (alg none)', method: 'POST', url: (x) => events(x.open), body: DISPATCH, status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: '社区书记张', exp: inAnHour() })}.`,
  },
  {
    name: 'a token signed with HS512 (only HS256 is accepted)', url: () => '/v1/me', status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('管理员钟').setExpirationTime('1h').sign(key)}`,
  },
  {
    name: 'a token that names no actor (no sub)', url: () => '/v1/me', status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key)}`,
  },
  {
    name: 'a token that never expires (no exp)', url: () => '/v1/me', status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('管理员钟').sign(key)}`,
  },
  {
    name: 'a token not valid yet (nbf in a day)', url: () => '/v1/me', status: 401, code: 'UNAUTHORIZED',
    authorization: async () => `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('管理员钟').setNotBefore('1d').setExpirationTime('2d').sign(key)}`,
  },
  {
    name: 'a token whose signature was tampered with', url: () => '/v1/me', status: 401, code: 'UNAUTHORIZED',
    authorization: async () => {
      const [head, , sig] = (await signToken(SECRET, '督查员周')).split('.');
      return `Bearer ${head ?? ''}.${b64({ sub: '管理员钟', exp: inAnHour() })}.${sig ?? ''}`;
    },
  },

  // ---- bodies that are not JSON objects ----
  { name: 'JSON that does not parse', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: '{"workflow": "五单服务", ', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'an empty JSON body', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: '', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'a __proto__ key (prototype poisoning)', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: '{"workflow":"五单服务","orgUnit":"永乐社区","data":{},"__proto__":{"admin":true}}', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'a constructor.prototype key (prototype poisoning)', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: '{"workflow":"五单服务","orgUnit":"永乐社区","data":{"constructor":{"prototype":{"admin":true}}}}', headers: { 'content-type': 'application/json' }, status: 400, code: 'INVALID_JSON' },
  { name: 'a JSON array instead of an object', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: '[{"workflow":"五单服务"}]', headers: { 'content-type': 'application/json' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'a JSON string instead of an object', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: '"派单"', headers: { 'content-type': 'application/json' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'text/plain', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: JSON.stringify(START), headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'a form (application/x-www-form-urlencoded)', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: 'type=%E6%B4%BE%E5%8D%95', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'multipart/form-data', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n新人\r\n--x--\r\n', headers: { 'content-type': 'multipart/form-data; boundary=x' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  {
    name: 'a body over the 1 MiB limit', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', status: 413, code: 'PAYLOAD_TOO_LARGE', expect: { limit: 1024 * 1024 },
    body: { type: '派单', payload: { 单位: '县卫健局', 派单说明: '长'.repeat(400_000) } },
  },

  // ---- bodies that do not match the schema: 400 BAD_REQUEST naming the path ----
  { name: 'start without orgUnit', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { workflow: '五单服务', data: ORDER }, status: 400, code: 'BAD_REQUEST', names: '/orgUnit' },
  { name: 'start with an unknown field', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, 优先级: '高' }, status: 400, code: 'BAD_REQUEST', names: '/优先级' },
  { name: 'start with data that is a string', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: '清理绿化带' }, status: 400, code: 'BAD_REQUEST', names: '/data' },
  { name: 'start with a version that is a string', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, version: '1' }, status: 400, code: 'BAD_REQUEST', names: '/version' },
  { name: 'start with version 0', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, version: 0 }, status: 400, code: 'BAD_REQUEST', names: '/version' },
  { name: 'start with a fractional version', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, version: 1.5 }, status: 400, code: 'BAD_REQUEST', names: '/version' },
  { name: 'start with an empty workflow name', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, workflow: '' }, status: 400, code: 'BAD_REQUEST', names: '/workflow' },
  { name: 'an event without a type', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { payload: { 单位: '县卫健局' } }, status: 400, code: 'BAD_REQUEST', names: '/type' },
  { name: 'an event whose payload is an array', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '派单', payload: ['县卫健局'] }, status: 400, code: 'BAD_REQUEST', names: '/payload' },
  { name: 'an event with an unknown field', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { ...DISPATCH, urgent: true }, status: 400, code: 'BAD_REQUEST', names: '/urgent' },
  { name: 'a timer event sent by a person', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: 'xstate.after.2workdays.五单服务.待派单' }, status: 400, code: 'BAD_REQUEST', names: '/type' },
  { name: 'an event type over 200 characters', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '派'.repeat(201) }, status: 400, code: 'BAD_REQUEST', names: '/type' },
  { name: 'an actor whose phone has letters', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: { name: '新人', phone: 'call me', roles: [] }, status: 400, code: 'BAD_REQUEST', names: '/phone' },
  { name: 'an actor whose roles are not a list', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: { name: '新人', roles: { role: '在职党员', unit: '县卫健局' } }, status: 400, code: 'BAD_REQUEST', names: '/roles' },
  { name: 'an org unit of an unknown level', method: 'PUT', url: () => `/v1/org-units/${u('火星社区')}`, actor: '管理员钟', body: { parent: '龙形街道', level: 'planet', name: '火星社区' }, status: 400, code: 'BAD_REQUEST', names: '/level' },
  { name: 'a draft whose source is a number', method: 'POST', url: () => '/v1/definitions/check', actor: '社区书记张', body: { source: 42 }, status: 400, code: 'BAD_REQUEST', names: '/source' },
  { name: 'a migration without toVersion', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/migrate`, actor: '政策员高', body: { stateMapping: {} }, status: 400, code: 'BAD_REQUEST', names: '/toVersion' },
  { name: 'a bulk migration without dryRun', method: 'POST', url: () => `/v1/definitions/${u('五单服务')}/migrate`, actor: '政策员高', body: { toVersion: 1, stateMapping: {} }, status: 400, code: 'BAD_REQUEST', names: '/dryRun' },
  { name: 'a reassignment without a reason', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/reassign`, actor: '管理员钟', body: { to: '滨江社区' }, status: 400, code: 'BAD_REQUEST', names: '/reason' },

  // ---- query strings and path parameters: 400 BAD_REQUEST ----
  { name: 'a ledger limit of 0', url: () => '/v1/cases?limit=0', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/limit' },
  { name: 'a ledger limit that is not a number', url: () => '/v1/cases?limit=ten', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/limit' },
  { name: 'a ledger status that does not exist', url: () => '/v1/cases?status=closed', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/status' },
  { name: 'a ledger time that is not a date-time', url: () => '/v1/cases?createdFrom=yesterday', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/createdFrom' },
  { name: 'an unknown ledger filter', url: () => '/v1/cases?sort=desc', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/sort' },
  { name: 'a history position below 0', url: (x) => `/v1/cases/${u(x.open)}/history?after=-1`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/after' },
  { name: 'a history page over 1000', url: (x) => `/v1/cases/${u(x.open)}/history?limit=1001`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/limit' },
  { name: 'time travel without at', url: (x) => `/v1/cases/${u(x.open)}/state`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/at' },
  { name: 'time travel to a time that is not one', url: (x) => `/v1/cases/${u(x.open)}/state?at=last%20monday`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/at' },
  { name: 'an inbox page of 1000', url: () => '/v1/inbox?limit=1000', actor: '社区书记张', status: 400, code: 'BAD_REQUEST', names: '/limit' },
  { name: 'KPIs without a workflow', url: () => '/v1/kpis', actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/workflow' },
  { name: 'KPIs grouped by something unknown', url: () => `/v1/kpis?workflow=${u('五单服务')}&groupBy=planet`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/groupBy' },
  { name: 'a definition version that is not a number', url: () => `/v1/definitions/${u('五单服务')}/versions/latest`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/version' },
  { name: 'a case id over 200 characters', url: () => `/v1/cases/${'c'.repeat(300)}`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/id' },

  // ---- paging cursors: 422 VALIDATION_FAILED ----
  { name: 'a ledger cursor the API never handed out', url: () => '/v1/cases?cursor=garbage', actor: '督查员周', status: 422, code: 'VALIDATION_FAILED', names: 'cursor' },
  { name: 'an inbox cursor the API never handed out', url: () => `/v1/inbox?cursor=${u('eyJub3QiOiJvdXJzIn0')}`, actor: '社区书记张', status: 422, code: 'VALIDATION_FAILED', names: 'cursor' },

  // ---- Idempotency-Key ----
  { name: 'an Idempotency-Key with spaces', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: START, headers: { 'idempotency-key': 'has spaces in it' }, status: 400, code: 'BAD_REQUEST', names: '/idempotency-key' },
  { name: 'an Idempotency-Key over 200 characters', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: DISPATCH, headers: { 'idempotency-key': 'k'.repeat(201) }, status: 400, code: 'BAD_REQUEST', names: '/idempotency-key' },
  { name: 'an Idempotency-Key reused for a different start', method: 'POST', url: () => '/v1/cases', actor: '居民林阿姨', body: { ...START, data: { ...ORDER, 心愿: '另一个心愿' } }, headers: { 'idempotency-key': 'start-once' }, status: 422, code: 'IDEMPOTENCY_KEY_REUSED' },
  { name: 'an Idempotency-Key reused for a different event', method: 'POST', url: (x) => events(x.keyed), actor: '社区书记张', body: { type: '派单', payload: { 单位: '县城管局' } }, headers: { 'idempotency-key': 'dispatch-once' }, status: 422, code: 'IDEMPOTENCY_KEY_REUSED' },

  // ---- what does not exist: 404 ----
  { name: 'an unknown case', url: () => '/v1/cases/no-such-case', actor: '督查员周', status: 404, code: 'CASE_NOT_FOUND', expect: { caseId: 'no-such-case' } },
  { name: 'an event to an unknown case', method: 'POST', url: () => events('no-such-case'), actor: '社区书记张', body: DISPATCH, status: 404, code: 'CASE_NOT_FOUND' },
  { name: 'replaying an unknown case', method: 'POST', url: () => '/v1/cases/no-such-case/replay', actor: '督查员周', status: 404, code: 'CASE_NOT_FOUND' },
  { name: 'time travel to before the case began', url: (x) => `/v1/cases/${u(x.open)}/state?at=${u('2020-01-01T00:00:00Z')}`, actor: '督查员周', status: 404, code: 'CASE_NOT_FOUND', expect: { notYetStarted: true } },
  { name: 'a start of an unknown workflow', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, workflow: '没有这个流程' }, status: 404, code: 'DEFINITION_NOT_FOUND' },
  { name: 'a start of an unknown version', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, version: 99 }, status: 404, code: 'DEFINITION_NOT_FOUND' },
  { name: 'a start in an unknown org unit', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, orgUnit: '火星社区' }, status: 404, code: 'ORG_UNIT_NOT_FOUND' },
  { name: 'a ledger of an unknown workflow', url: () => `/v1/cases?workflow=${u('没有这个流程')}`, actor: '督查员周', status: 404, code: 'DEFINITION_NOT_FOUND' },
  { name: 'the graph of an unknown version', url: () => `/v1/definitions/${u('五单服务')}/versions/42/graph`, actor: '督查员周', status: 404, code: 'DEFINITION_NOT_FOUND' },
  { name: 'KPIs of a workflow without a KPI spec', url: () => `/v1/kpis?workflow=${u('没有这个流程')}`, actor: '督查员周', status: 404, code: 'DEFINITION_NOT_FOUND', expect: { kpiSpec: false } },
  { name: 'KPIs of an unknown org unit', url: () => `/v1/kpis?workflow=${u('五单服务')}&unit=${u('火星社区')}`, actor: '督查员周', status: 404, code: 'ORG_UNIT_NOT_FOUND' },
  { name: 'a migration to a version that does not exist', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/migrate`, actor: '政策员高', body: { toVersion: 99, stateMapping: {} }, status: 404, code: 'DEFINITION_NOT_FOUND' },
  { name: 'a reassignment to an unknown unit', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/reassign`, actor: '管理员钟', body: { to: '火星社区', reason: '属地调整' }, status: 404, code: 'ORG_UNIT_NOT_FOUND' },
  { name: 'a link to an unknown case', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/links`, actor: '管理员钟', body: { linkedCaseId: 'no-such-case', kind: 'related' }, status: 404, code: 'CASE_NOT_FOUND' },
  { name: 'an unknown actor', url: () => `/v1/actors/${u('查无此人')}`, actor: '管理员钟', status: 404, code: 'ACTOR_NOT_FOUND' },
  { name: 'an unknown route', url: () => '/v1/nothing-here', actor: '督查员周', status: 404, code: 'ROUTE_NOT_FOUND' },
  { name: 'a method the route does not have', method: 'DELETE', url: (x) => `/v1/cases/${u(x.open)}`, actor: '管理员钟', status: 404, code: 'ROUTE_NOT_FOUND' },

  // ---- wrong state: 409 ----
  { name: '接单 before the order is dispatched', method: 'POST', url: (x) => events(x.open), actor: '卫健局书记钱', body: { type: '接单' }, status: 409, code: 'NOT_POSSIBLE', expect: { state: '待派单' } },
  { name: '派单 to a withdrawn (closed) order', method: 'POST', url: (x) => events(x.withdrawn), actor: '社区书记张', body: DISPATCH, status: 409, code: 'NOT_POSSIBLE', expect: { state: '已撤单' } },
  { name: 'an event the workflow does not know', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '飞单' }, status: 409, code: 'NOT_POSSIBLE' },
  { name: 'an event to a suspended case', method: 'POST', url: (x) => events(x.suspended), actor: '社区书记张', body: DISPATCH, status: 409, code: 'CASE_SUSPENDED' },
  { name: 'resuming a case that is not suspended', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/resume`, actor: '管理员钟', body: {}, status: 409, code: 'NOT_POSSIBLE' },
  { name: 'linking a case to itself', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/links`, actor: '管理员钟', body: (x: Fixtures) => ({ linkedCaseId: x.open, kind: 'related' }), status: 409, code: 'NOT_POSSIBLE' },

  // ---- wrong role: 403 NOT_ALLOWED naming who may ----
  { name: 'a party member dispatching', method: 'POST', url: (x) => events(x.open), actor: '党员李', body: DISPATCH, status: 403, code: 'NOT_ALLOWED', expect: { allowed: [{ role: '社区书记', unit: '永乐社区' }, { role: '街道书记', unit: '永乐社区' }] } },
  { name: 'another community\'s secretary dispatching', method: 'POST', url: (x) => events(x.open), actor: '社区书记刘', body: DISPATCH, status: 403, code: 'NOT_ALLOWED' },
  { name: 'another unit\'s secretary accepting', method: 'POST', url: (x) => events(x.waiting), actor: '卫健局书记钱', body: { type: '接单' }, status: 403, code: 'NOT_ALLOWED' },
  { name: 'a community secretary deploying a workflow', method: 'POST', url: () => '/v1/definitions', actor: '社区书记张', body: { source: 'workflow 甲' }, status: 403, code: 'NOT_ALLOWED', expect: { allowed: [{ role: '政策员', unit: null }] } },
  { name: 'a community secretary changing people', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '社区书记张', body: { name: '新人', roles: [{ role: '管理员', unit: '黎平县' }] }, status: 403, code: 'NOT_ALLOWED' },
  { name: 'an auditor changing org units', method: 'PUT', url: () => `/v1/org-units/${u('永乐社区第三网格')}`, actor: '督查员周', body: { parent: '永乐社区', level: 'grid', name: '第三网格' }, status: 403, code: 'NOT_ALLOWED' },
  { name: 'a community secretary migrating a case', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/migrate`, actor: '社区书记张', body: { toVersion: 1, stateMapping: {} }, status: 403, code: 'NOT_ALLOWED' },
  { name: 'a party member of another unit suspending a case', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/suspend`, actor: '党员马', body: { reason: '暂缓' }, status: 403, code: 'NOT_ALLOWED' },

  // ---- payloads and references the workflow refuses: 422 naming the fields ----
  { name: 'case data with a phone number that is not one', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: { ...ORDER, 电话: '123' } }, status: 422, code: 'VALIDATION_FAILED', names: '电话' },
  { name: 'case data without the wish', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000' } }, status: 422, code: 'VALIDATION_FAILED', names: '心愿' },
  { name: 'case data with a category not in the list', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: { ...ORDER, 类别: '娱乐' } }, status: 422, code: 'VALIDATION_FAILED', names: '类别' },
  { name: 'a dispatch to a unit that is a number', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '派单', payload: { 单位: 42 } }, status: 422, code: 'VALIDATION_FAILED', names: '单位' },
  { name: 'a dispatch without the unit', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '派单', payload: { 派单说明: '尽快' } }, status: 422, code: 'VALIDATION_FAILED', names: '单位' },
  { name: 'a return whose reason is too short', method: 'POST', url: (x) => events(x.waiting), actor: '城管局局长冯', body: { type: '退单', payload: { 原因: '不管' } }, status: 422, code: 'VALIDATION_FAILED', names: '原因' },
  { name: 'a draft that does not compile', method: 'POST', url: () => '/v1/definitions', actor: '政策员高', body: { source: 'workflow 坏\nstate 甲\n' }, status: 422, code: 'DEFINITION_INVALID' },
  { name: 'a role in an unknown org unit', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: { name: '新人', roles: [{ role: '在职党员', unit: '火星社区' }] }, status: 422, code: 'VALIDATION_FAILED', names: 'roles/0/unit' },
  { name: 'an org unit under a parent that does not exist', method: 'PUT', url: () => `/v1/org-units/${u('孤儿网格')}`, actor: '管理员钟', body: { parent: '不存在的社区', level: 'grid', name: '孤儿网格' }, status: 422, code: 'VALIDATION_FAILED', names: 'parent' },
  { name: 'an org unit moved below itself', method: 'PUT', url: () => `/v1/org-units/${u('龙形街道')}`, actor: '管理员钟', body: { parent: '永乐社区', level: 'street', name: '龙形街道' }, status: 422, code: 'VALIDATION_FAILED', names: 'parent' },

  // ---- NUL characters, which Postgres cannot store: refused by the schema (regressions: each was a 500) ----
  { name: 'a person\'s name with a NUL', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: { name: '新\u0000人', roles: [] }, status: 400, code: 'BAD_REQUEST', names: '/name' },
  { name: 'a role name with a NUL', method: 'PUT', url: () => `/v1/actors/${u('新人')}`, actor: '管理员钟', body: { name: '新人', roles: [{ role: '在职\u0000党员', unit: '县卫健局' }] }, status: 400, code: 'BAD_REQUEST', names: '/roles/0/role' },
  { name: 'an org unit name with a NUL', method: 'PUT', url: () => `/v1/org-units/${u('新网格')}`, actor: '管理员钟', body: { parent: '永乐社区', level: 'grid', name: '新\u0000网格' }, status: 400, code: 'BAD_REQUEST', names: '/name' },
  { name: 'a deployed source with a NUL in a comment', method: 'POST', url: () => '/v1/definitions', actor: '政策员高', body: (x: Fixtures) => ({ source: `${x.wudan}\n-- 修订\u0000\n` }), status: 400, code: 'BAD_REQUEST', names: '/source' },
  { name: 'a workflow name with a NUL in the path', url: () => `/v1/definitions/${u('五单\u0000服务')}/versions/1`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/name' },
  { name: 'verifying a case id with a NUL', method: 'POST', url: () => `/v1/cases/${u('c\u0000')}/verify`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/id' },
  { name: 'time travel in a case id with a NUL', url: () => `/v1/cases/${u('c\u0000')}/state?at=${u('2026-03-02T09:00:00+08:00')}`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/id' },
  { name: 'a suspension reason with a NUL', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/suspend`, actor: '管理员钟', body: { reason: '居民\u0000外出' }, status: 400, code: 'BAD_REQUEST', names: '/reason' },
  { name: 'a reassignment reason with a NUL', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/reassign`, actor: '管理员钟', body: { to: '滨江社区', reason: '属地\u0000调整' }, status: 400, code: 'BAD_REQUEST', names: '/reason' },
  { name: 'a link to a case id with a NUL', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/links`, actor: '管理员钟', body: { linkedCaseId: 'c\u0000', kind: 'related' }, status: 400, code: 'BAD_REQUEST', names: '/linkedCaseId' },
  { name: 'a link kind with a NUL', method: 'POST', url: (x) => `/v1/cases/${u(x.open)}/links`, actor: '管理员钟', body: (x: Fixtures) => ({ linkedCaseId: x.waiting, kind: 'rel\u0000ated' }), status: 400, code: 'BAD_REQUEST', names: '/kind' },
  { name: 'a bulk migration of a state with a NUL', method: 'POST', url: () => `/v1/definitions/${u('五单服务')}/migrate`, actor: '政策员高', body: { state: '待\u0000派单', toVersion: 1, stateMapping: {}, dryRun: true }, status: 400, code: 'BAD_REQUEST', names: '/state' },
  // Regressions, each a 500 before: ids and names in cases.ts and intake.ts take no control characters.
  { name: 'a start of a workflow whose name holds a NUL', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, workflow: '五单\u0000服务' }, status: 400, code: 'BAD_REQUEST', names: '/workflow' },
  { name: 'a start in an org unit whose id holds a NUL', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, orgUnit: '永乐\u0000社区' }, status: 400, code: 'BAD_REQUEST', names: '/orgUnit' },
  { name: 'reading a case id with a NUL', url: () => `/v1/cases/${u('c\u0000')}`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/id' },
  { name: 'the history of a case id with a NUL', url: () => `/v1/cases/${u('c\u0000')}/history`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/id' },
  { name: 'an event to a case id with a NUL', method: 'POST', url: () => events('c\u0000'), actor: '社区书记张', body: DISPATCH, status: 400, code: 'BAD_REQUEST', names: '/id' },
  { name: 'an event type with a NUL', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { ...DISPATCH, type: '派\u0000单' }, status: 400, code: 'BAD_REQUEST', names: '/type' },
  { name: 'a ledger filtered by a state with a NUL', url: () => `/v1/cases?state=${u('待\u0000派单')}`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/state' },
  { name: 'a ledger filtered by a workflow with a NUL', url: () => `/v1/cases?workflow=${u('五单\u0000服务')}`, actor: '督查员周', status: 400, code: 'BAD_REQUEST', names: '/workflow' },
  { name: 'an intake form to a workflow whose name holds a NUL', method: 'POST', url: () => `/v1/intake/${u('五单\u0000服务')}`, body: { orgUnit: '永乐社区', data: ORDER }, status: 400, code: 'BAD_REQUEST', names: '/workflow' },
  // Regressions, each a 500 before: the engine's value validation (dsl/values.ts) refuses a NUL
  // anywhere in case data or a payload, and nesting past 64 levels, naming the place.
  { name: 'case data whose wish holds a NUL', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: { ...ORDER, 心愿: '清理\u0000杂物' } }, status: 422, code: 'VALIDATION_FAILED', names: '心愿' },
  { name: 'case data with a NUL in a key', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: { ...START, data: { ...ORDER, 'a\u0000b': 1 } }, status: 422, code: 'VALIDATION_FAILED', names: 'a\\u0000b' },
  { name: 'an event payload text with a NUL', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: { type: '派单', payload: { 单位: '县卫健局', 派单说明: '尽\u0000快' } }, status: 422, code: 'VALIDATION_FAILED', names: '派单说明' },
  { name: 'an intake form whose wish holds a NUL', method: 'POST', url: () => `/v1/intake/${u('五单服务')}`, body: { orgUnit: '永乐社区', data: { ...ORDER, 心愿: '清理\u0000杂物' } }, status: 422, code: 'VALIDATION_FAILED', names: '心愿' },
  // Regression: engine/hash.ts recursed once per level and overflowed the stack (a 500).
  { name: 'case data nested 5,000 levels deep', method: 'POST', url: () => '/v1/cases', actor: '居民王先生', body: `{"workflow":"五单服务","orgUnit":"永乐社区","data":${JSON.stringify(ORDER).slice(0, -1)},"附件":${'['.repeat(5_000)}1${']'.repeat(5_000)}}}`, headers: { 'content-type': 'application/json' }, status: 422, code: 'VALIDATION_FAILED', names: '附件[0][0]' },
  { name: 'an event payload nested 5,000 levels deep', method: 'POST', url: (x) => events(x.open), actor: '社区书记张', body: `{"type":"派单","payload":{"单位":"县卫健局","派单说明":${'['.repeat(5_000)}"x"${']'.repeat(5_000)}}}`, headers: { 'content-type': 'application/json' }, status: 422, code: 'VALIDATION_FAILED', names: '派单说明[0]' },

  // ---- paths the router refuses before any hook runs (regressions: Fastify's own JSON, no request id) ----
  { name: 'a path with broken percent-encoding', url: () => '/v1/cases/%E6%B4%BE%E5%8', actor: '督查员周', status: 400, code: 'BAD_REQUEST' },
  { name: 'a path with a truncated escape in a workflow name', url: () => '/v1/definitions/%E4%B8/versions/1', actor: '督查员周', status: 400, code: 'BAD_REQUEST' },
  { name: 'a path over the router\'s parameter limit', url: () => `/v1/cases/${'c'.repeat(2_000)}/history`, actor: '督查员周', status: 414, code: 'URI_TOO_LONG', expect: { limit: 500 } },
  { name: 'a path over the parameter limit, without a token', method: 'POST', url: () => events('c'.repeat(501)), actor: null, body: DISPATCH, status: 414, code: 'URI_TOO_LONG' },
];

async function request(row: Row): Promise<Res> {
  const authorization = row.authorization !== undefined ? await row.authorization() : row.actor === null || row.actor === undefined ? undefined : (await h.auth(row.actor)).authorization;
  const given: unknown = typeof row.body === 'function' ? (row.body as (x: Fixtures) => unknown)(f) : row.body;
  const raw = typeof given === 'string';
  const body = given === undefined ? undefined : raw ? given as string : JSON.stringify(given);
  const r = await h.app.inject({
    method: row.method ?? 'GET',
    url: row.url(f),
    headers: {
      ...(authorization === undefined ? {} : { authorization }),
      ...(body === undefined || raw ? {} : { 'content-type': 'application/json' }),
      ...row.headers,
    },
    ...(body === undefined ? {} : { payload: body }),
  });
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    // asserted below: every answer here is a JSON problem
  }
  return { status: r.statusCode, contentType: String(r.headers['content-type'] ?? ''), requestId: String(r.headers['x-request-id'] ?? ''), body: parsed, text: r.body };
}

/** Every table of the store's schema: its row count and an md5 of all its rows. */
async function fingerprint(): Promise<Record<string, string>> {
  const db = h.store.db;
  const { rows: tables } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = ${h.store.schema} and table_type = 'BASE TABLE' order by table_name`.execute(db);
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const { rows } = await sql<{ n: string; digest: string }>`
      select count(*)::text as n, md5(coalesce(string_agg(t::text, ',' order by t::text), '')) as digest
      from ${sql.table(`${h.store.schema}.${name}`)} t`.execute(db);
    out[name] = `${rows[0]?.n ?? '?'} rows, md5 ${rows[0]?.digest ?? '?'}`;
  }
  return out;
}

/** Sends the row's request and checks its answer and that no table changed. */
async function expectRefused(row: Row): Promise<void> {
  const before = await fingerprint();
  const r = await request(row);
  expect({ status: r.status, code: r.body['code'] }, r.text.slice(0, 2_000)).toEqual({ status: row.status, code: row.code });
  expect(r.contentType).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: `urn:closed-loop:problem:${row.code}`, status: row.status, title: ERRORS[row.code].title, detail: expect.any(String), requestId: expect.any(String) });
  expect(r.requestId).toBe(r.body['requestId']);
  if (row.expect !== undefined) expect(r.body).toMatchObject(row.expect);
  if (row.names !== undefined) {
    const named = [...(r.body['errors'] as { path: string }[] | undefined ?? []), ...(r.body['fields'] as { path: string }[] | undefined ?? [])].map((e) => e.path);
    expect(named.some((p) => p.includes(row.names ?? '')), `${JSON.stringify(named)} names ${row.names}`).toBe(true);
  }
  expect(await fingerprint()).toEqual(before);
}

async function start(actor: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await h.app.inject({ method: 'POST', url: '/v1/cases', headers: { ...(await h.auth(actor)), ...headers }, payload: START });
  expect(r.statusCode, r.body).toBe(201);
  return (JSON.parse(r.body) as { id: string }).id;
}

async function post(url: string, actor: string, payload: Record<string, unknown>, headers: Record<string, string> = {}): Promise<void> {
  const r = await h.app.inject({ method: 'POST', url, headers: { ...(await h.auth(actor)), ...headers }, payload });
  expect(r.statusCode, r.body).toBe(200);
}

beforeAll(async () => {
  h = await openHarness();
  const open = await start('居民王先生');
  const waiting = await start('居民王先生');
  await post(events(waiting), '社区书记张', { type: '派单', payload: { 单位: '县城管局' } });
  const withdrawn = await start('居民王先生');
  await post(events(withdrawn), '居民王先生', { type: '撤单', payload: { 原因: '已自行解决' } });
  const suspended = await start('居民王先生');
  await post(`/v1/cases/${u(suspended)}/suspend`, '管理员钟', { reason: '居民外出' });
  const keyed = await start('居民王先生');
  await post(events(keyed), '社区书记张', DISPATCH, { 'idempotency-key': 'dispatch-once' });
  await start('居民林阿姨', { 'idempotency-key': 'start-once' });
  f = { open, waiting, withdrawn, suspended, keyed, wudan: readFileSync(path.join(WORKFLOWS, '五单服务.wf'), 'utf8') };
});

afterAll(async () => {
  await h?.close();
});

describe('malformed and refused requests', () => {
  it('has at least 40 rows, each a different request', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(ROWS.map((r) => r.name)).size).toBe(ROWS.length);
  });

  it.each(ROWS.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    await expectRefused(row);
  });

  // A refusal under an Idempotency-Key is stored (jsonb) to be replayed: what it says about a NUL
  // must itself be storable, or the retry-safe path fails where the plain one does not.
  it('stores and replays a NUL refusal under an Idempotency-Key', async () => {
    const send = async (): Promise<Res> => request({
      name: 'keyed NUL', method: 'POST', url: () => '/v1/cases', actor: '居民林阿姨', status: 422, code: 'VALIDATION_FAILED',
      headers: { 'idempotency-key': 'nul-once' }, body: { ...START, data: { ...ORDER, 心愿: '\u0000', 'k\u0000': '\u0000' } },
    });
    const first = await send();
    expect({ status: first.status, code: first.body['code'] }, first.text).toEqual({ status: 422, code: 'VALIDATION_FAILED' });
    expect((first.body['fields'] as { path: string; code: string }[]).map((e) => [e.code, e.path])).toEqual([['nul_character', '心愿'], ['nul_character', 'k\\u0000']]);
    const again = await send();
    expect(again.status).toBe(422);
    expect(again.body).toMatchObject({ code: 'VALIDATION_FAILED', fields: first.body['fields'], replayed: true });
  });

  it('the fingerprint sees a change (so an unchanged one means something)', async () => {
    const before = await fingerprint();
    await post(events(f.open), '社区书记张', DISPATCH);
    const after = await fingerprint();
    expect(after).not.toEqual(before);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    expect(after['events']).not.toBe(before['events']);
    expect(after['cases']).not.toBe(before['cases']);
  });
});
