/**
 * Jurisdiction and personal data (server/privacy.ts) through `inject`, on whichever backend
 * DATABASE_URL selects: who may read which case (others get the same 404 as for a case that does
 * not exist), the ledger narrowed to what the caller may see, residents' names and phone numbers
 * masked for those who need not call them, and every unmasked read in the log an auditor reads.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../dsl/check.ts';
import { compile } from '../../dsl/compile.ts';
import type { FieldType } from '../../dsl/types.ts';
import { Engine } from '../../engine/engine.ts';
import { openAppDatabase, openDatabase } from '../../engine/store/index.ts';
import { personalDataReadPage, recordPersonalDataRead } from '../../engine/store/personal-data.ts';
import { upsertOrgUnits } from '../../engine/store/registry.ts';
import { buildApp, type App } from '../../server/app.ts';
import { folderLoader } from '../../server/loader.ts';
import { maskFields, maskName, maskPhone, personalKind, personalSpec } from '../../server/privacy.ts';
import { dropRole, sqlStateOfRejection, uniqueName } from '../engine/support.ts';
import { backend, databaseUrl, openHarness, ORDER, SECRET, WORKFLOWS, type Harness, expectProblem, toRes, type Res } from './support.ts';

let h: Harness;

async function call(method: 'GET' | 'POST', url: string, actor: string, payload?: unknown, app?: App): Promise<Res> {
  const r = await (app ?? h.app).inject({ method, url, headers: await h.auth(actor), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  return toRes(r);
}

const u = (s: string): string => encodeURIComponent(s);
const MASKED = { 姓名: '王**', 电话: '138****0000' };
const CLEAR = { 姓名: '王先生', 电话: '13800000000' };

async function start(orgUnit = '永乐社区', actor = '居民王先生'): Promise<string> {
  const r = await call('POST', '/v1/cases', actor, { workflow: '五单服务', orgUnit, data: { ...ORDER, 社区: orgUnit } });
  expect(r.status, r.text).toBe(201);
  return String(r.body['id']);
}

async function send(caseId: string, actor: string, type: string, payload: Record<string, unknown> = {}): Promise<Res> {
  const r = await call('POST', `/v1/cases/${u(caseId)}/events`, actor, { type, payload });
  expect(r.status, r.text).toBe(200);
  return r;
}

async function readsOf(caseId: string): Promise<{ actor: string; reason: string; fields: string[]; route: string }[]> {
  const r = await call('GET', `/v1/cases/${u(caseId)}/personal-data-reads`, '督查员周');
  expect(r.status, r.text).toBe(200);
  return r.body['items'] as { actor: string; reason: string; fields: string[]; route: string }[];
}

beforeAll(async () => {
  h = await openHarness();
});

afterAll(async () => {
  await h?.close();
});

describe('which fields are personal data', () => {
  const text = (c: FieldType['constraints'] = {}, label?: string): FieldType => ({ type: { kind: 'text' }, optional: false, constraints: c, ...(label === undefined ? {} : { label }) });

  it.each([
    ['电话', text({ pattern: '^1[0-9]{10}$' }), 'phone'],
    ['上报电话', text(), 'phone'],
    ['手机', text(), 'phone'],
    ['联系方式', text(), 'phone'],
    ['号码', text({ pattern: '^1\\d{10}$' }), 'phone'],
    ['姓名', text(), 'name'],
    ['申请人', text({}, '申请人姓名'), 'name'],
    ['联系人', text(), 'name'],
    ['心愿', text(), null],
    ['设备编号', text({ pattern: '^[A-Z]{2}-[0-9]{6}$' }), null],
    ['电话', { type: { kind: 'number' }, optional: false, constraints: {} } satisfies FieldType, null],
  ] as const)('%s (%j) is %s', (name, f, kind) => {
    expect(personalKind(name, f)).toBe(kind);
  });

  it('finds them in the seed workflows\' case data, and the actor fields that name a handler', () => {
    const spec = (file: string) => {
      const { model } = checkSource(readFileSync(path.join(WORKFLOWS, file), 'utf8'), file, { load: folderLoader(WORKFLOWS) });
      if (model === undefined) throw new Error(`${file} does not compile`);
      return personalSpec(compile(model));
    };
    const wudan = spec('五单服务.wf');
    expect([...wudan.caseFields]).toEqual([['姓名', 'name'], ['电话', 'phone']]);
    expect(wudan.actorFields).toEqual(['党员']);
    expect([...spec('网格事件.wf').caseFields]).toEqual([['上报电话', 'phone']]);
    expect(spec('吹哨报到.wf').caseFields.size).toBe(0);
  });

  it('masks names to the family name and phone numbers to their first three and last four digits', () => {
    expect(maskName('王先生')).toBe('王**');
    expect(maskName('欧阳娜娜')).toBe('欧***');
    expect(maskName('李')).toBe('*');
    expect(maskPhone('13800001234')).toBe('138****1234');
    expect(maskPhone('0855-1234')).toBe('085****1234');
    expect(maskPhone('12345')).toBe('****');
    expect(maskFields({ 姓名: '王先生', 电话: null, 心愿: '修灯' }, new Map([['姓名', 'name'], ['电话', 'phone']] as const)))
      .toEqual({ data: { 姓名: '王**', 电话: null, 心愿: '修灯' }, masked: ['姓名'] });
  });
});

describe('jurisdiction', () => {
  let yongle: string;
  let binjiang: string;

  beforeAll(async () => {
    yongle = await start('永乐社区');
    binjiang = await start('滨江社区', '居民林阿姨');
  });

  it('lets a case be read in its unit and above, by its submitter, and by 督查员, 政策员 and 管理员', async () => {
    for (const actor of ['社区书记张', '代办员何', '街道书记赵', '居民王先生', '督查员周', '政策员高', '管理员钟']) {
      expect((await call('GET', `/v1/cases/${u(yongle)}`, actor)).status, actor).toBe(200);
    }
  });

  it('answers others exactly as for a case that does not exist: 404 CASE_NOT_FOUND on every read of one case', async () => {
    const ghost = await call('GET', '/v1/cases/no-such-case', '社区书记刘');
    for (const actor of ['社区书记刘', '街道书记孙', '网格员小李', '居民林阿姨', '卫健局书记钱', '党员李']) {
      const r = await call('GET', `/v1/cases/${u(yongle)}`, actor);
      expectProblem(r, 404, 'CASE_NOT_FOUND');
      expect({ ...r.body, requestId: null, instance: null }).toEqual({ ...ghost.body, detail: `No case ${yongle}.`, caseId: yongle, requestId: null, instance: null });
    }
    const at = u(new Date(h.clock.now).toISOString());
    for (const [method, url] of [
      ['GET', `/v1/cases/${u(yongle)}/history`], ['GET', `/v1/cases/${u(yongle)}/state?at=${at}`], ['GET', `/v1/cases/${u(yongle)}/links`],
      ['POST', `/v1/cases/${u(yongle)}/verify`], ['POST', `/v1/cases/${u(yongle)}/replay`],
    ] as const) {
      expectProblem(await call(method, url, '社区书记刘'), 404, 'CASE_NOT_FOUND');
      expect((await call(method, url, '社区书记张')).status, url).toBe(200);
    }
  });

  it('opens a case to the department it is dispatched to and to the party member who takes it, and closes it again when returned', async () => {
    const id = await start();
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, '卫健局书记钱'), 404, 'CASE_NOT_FOUND');
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    expect((await call('GET', `/v1/cases/${u(id)}`, '卫健局书记钱')).status).toBe(200);
    // 党员李 is a member of 县卫健局, which the case now names.
    expect((await call('GET', `/v1/cases/${u(id)}/history`, '党员李')).status).toBe(200);
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, '城管局局长冯'), 404, 'CASE_NOT_FOUND');
    await send(id, '卫健局书记钱', '退单', { 原因: '不属于本单位职责' });
    expectProblem(await call('GET', `/v1/cases/${u(id)}`, '卫健局书记钱'), 404, 'CASE_NOT_FOUND');
  });

  it('lists only the cases the caller may see; 督查员 sees them all; paging keeps to them', async () => {
    const ids = async (actor: string, query = ''): Promise<string[]> => {
      const r = await call('GET', `/v1/cases?limit=500${query}`, actor);
      expect(r.status, r.text).toBe(200);
      return (r.body['items'] as { id: string }[]).map((c) => c.id);
    };
    expect(await ids('督查员周')).toEqual(expect.arrayContaining([yongle, binjiang]));
    expect(await ids('社区书记张')).toContain(yongle);
    expect(await ids('社区书记张')).not.toContain(binjiang);
    expect(await ids('社区书记刘')).toContain(binjiang);
    expect(await ids('社区书记刘')).not.toContain(yongle);
    expect(await ids('街道书记赵')).toEqual(expect.arrayContaining([yongle, binjiang]));
    expect(await ids('居民林阿姨')).toContain(binjiang);
    expect(await ids('居民林阿姨')).not.toContain(yongle);
    expect(await ids('城管局局长冯')).toEqual([]);
    // A filter narrows further, it never widens: 刘 asking for 永乐社区 gets nothing of it.
    expect(await ids('社区书记刘', `&orgUnit=${u('永乐社区')}`)).toEqual([]);

    const dispatched = await start();
    await send(dispatched, '社区书记张', '派单', { 单位: '县城管局' });
    expect(await ids('城管局局长冯')).toEqual([dispatched]);
    expect(await ids('党员马')).toEqual([dispatched]);

    const all = await ids('社区书记刘');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: Res = await call('GET', `/v1/cases?limit=1${cursor === null ? '' : `&cursor=${u(cursor)}`}`, '社区书记刘');
      seen.push(...(r.body['items'] as { id: string }[]).map((c) => c.id));
      cursor = r.body['nextCursor'] as string | null;
    } while (cursor !== null && seen.length < 100);
    expect(seen).toEqual(all);
  });
});

describe('personal data', () => {
  it('shows names and phone numbers to the submitter and to the community\'s contact roles; masks them for others', async () => {
    const id = await start();
    const read = async (actor: string) => (await call('GET', `/v1/cases/${u(id)}`, actor)).body;
    expect(await read('居民王先生')).toMatchObject({ data: CLEAR });
    expect((await read('居民王先生'))['masked']).toBeUndefined();
    expect(await read('社区书记张')).toMatchObject({ data: CLEAR });
    expect(await read('代办员何')).toMatchObject({ data: CLEAR });
    for (const actor of ['街道书记赵', '督查员周', '管理员钟', '政策员高']) {
      const body = await read(actor);
      expect(body, actor).toMatchObject({ data: { ...MASKED, 心愿: ORDER.心愿 }, masked: ['姓名', '电话'] });
      expect(JSON.stringify(body)).not.toContain('13800000000');
    }
  });

  it('shows them to the party member handling the case, not to the unit that merely accepted it', async () => {
    const id = await start();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    await send(id, '卫健局书记钱', '接单');
    expect((await call('GET', `/v1/cases/${u(id)}`, '卫健局书记钱')).body).toMatchObject({ data: MASKED });
    expect((await call('GET', `/v1/cases/${u(id)}`, '党员李')).body).toMatchObject({ data: MASKED });
    await send(id, '党员李', '抢单');
    expect((await call('GET', `/v1/cases/${u(id)}`, '党员李')).body).toMatchObject({ data: CLEAR });
    expect((await call('GET', `/v1/cases/${u(id)}`, '党员杨')).body).toMatchObject({ data: MASKED });
    expect((await readsOf(id)).map((r) => [r.actor, r.reason])).toEqual([['党员李', 'handler']]);
  });

  it('masks them in history payloads and in the state at a past time the same way', async () => {
    const id = await start();
    await send(id, '社区书记张', '派单', { 单位: '县卫健局' });
    const history = async (actor: string) => ((await call('GET', `/v1/cases/${u(id)}/history`, actor)).body['events'] as { type: string; payload: Record<string, unknown> }[]);
    const audited = await history('督查员周');
    expect(audited[0]).toMatchObject({ type: 'start', payload: { ...MASKED, 心愿: ORDER.心愿 } });
    expect(JSON.stringify(audited)).not.toContain('13800000000');
    expect(audited[1]).toMatchObject({ type: '派单', payload: { 单位: '县卫健局' } });
    expect((await history('社区书记张'))[0]).toMatchObject({ payload: CLEAR });
    const at = u(new Date(h.clock.now).toISOString());
    expect((await call('GET', `/v1/cases/${u(id)}/state?at=${at}`, '督查员周')).body).toMatchObject({ data: MASKED });
    expect((await call('GET', `/v1/cases/${u(id)}/state?at=${at}`, '社区书记张')).body).toMatchObject({ data: CLEAR });
  });

  it('masks them in lists (the inbox) and in the answers to writes, except to the submitter', async () => {
    const id = await start();
    const inbox = (await call('GET', '/v1/inbox?limit=200', '社区书记张')).body['items'] as { caseId: string; data: Record<string, unknown> }[];
    expect(inbox.find((i) => i.caseId === id)?.data).toMatchObject(MASKED);
    expect((await send(id, '社区书记张', '派单', { 单位: '县卫健局' })).body).toMatchObject({ data: MASKED, masked: ['姓名', '电话'] });
    expect((await call('POST', `/v1/cases/${u(id)}/suspend`, '街道书记赵', { reason: '暂缓' })).body).toMatchObject({ data: MASKED });
    expect((await call('POST', `/v1/cases/${u(id)}/resume`, '街道书记赵', {})).body).toMatchObject({ data: MASKED });
    const other = await start();
    expect((await send(other, '居民王先生', '撤单', { 原因: '已经解决了' })).body).toMatchObject({ data: CLEAR });
    // Writes disclose nothing, so they are not in the read log.
    expect(await readsOf(id)).toEqual([]);
  });

  it('masks the case data in a replay mismatch', async () => {
    const id = await start();
    await h.store.db.transaction().execute(async (trx) => {
      await sql`update cases set data = jsonb_set(data, '{心愿}', '"改过的心愿"') where id = ${id}`.execute(trx);
    });
    h.engine.forget(id);
    const r = await call('POST', `/v1/cases/${u(id)}/replay`, '督查员周');
    expect(r.body).toMatchObject({ ok: false, expected: { data: { ...MASKED, 心愿: '改过的心愿' } }, got: { data: MASKED } });
    expect(r.text).not.toContain('13800000000');
  });
});

describe('the log of unmasked reads', () => {
  let logged: App;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    logged = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: false, logger: pino({ level: 'info' }, sink) });
  });

  afterAll(async () => {
    await logged?.close();
  });

  it('records who read which fields, why, when and through which route, on the log and in the database; the submitter reading is not recorded', async () => {
    const id = await start();
    const t0 = new Date(h.clock.now).toISOString();
    const read = await call('GET', `/v1/cases/${u(id)}`, '社区书记张', undefined, logged);
    expect(read.body).toMatchObject({ data: CLEAR });
    h.clock.now += 60_000;
    await call('GET', `/v1/cases/${u(id)}/history`, '代办员何', undefined, logged);
    await call('GET', `/v1/cases/${u(id)}`, '居民王先生', undefined, logged);
    await call('GET', `/v1/cases/${u(id)}`, '督查员周', undefined, logged);

    const r = await call('GET', `/v1/cases/${u(id)}/personal-data-reads`, '督查员周');
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({
      caseId: id, nextCursor: null,
      items: [
        { at: t0, actor: '社区书记张', reason: 'contact', fields: ['姓名', '电话'], route: 'GET /v1/cases/:id', requestId: read.headers['x-request-id'] },
        { at: new Date(h.clock.now).toISOString(), actor: '代办员何', reason: 'contact', fields: ['姓名', '电话'], route: 'GET /v1/cases/:id/history' },
      ],
    });
    const line = lines.find((l) => l['msg'] === 'personal data read unmasked' && l['caseId'] === id && l['actor'] === '社区书记张');
    expect(line).toMatchObject({ reason: 'contact', fields: ['姓名', '电话'], route: 'GET /v1/cases/:id', reqId: read.headers['x-request-id'] });
    // The values themselves never reach the log.
    expect(JSON.stringify(lines)).not.toContain('13800000000');
    expect(JSON.stringify(lines)).not.toContain('王先生');
  });

  it('pages by cursor, and is for 督查员 only', async () => {
    const id = await start();
    for (const actor of ['社区书记张', '代办员何', '社区书记张']) {
      h.clock.now += 1_000;
      await call('GET', `/v1/cases/${u(id)}`, actor);
    }
    const first = await call('GET', `/v1/cases/${u(id)}/personal-data-reads?limit=2`, '督查员周');
    expect((first.body['items'] as unknown[]).length).toBe(2);
    const rest = await call('GET', `/v1/cases/${u(id)}/personal-data-reads?limit=2&cursor=${u(String(first.body['nextCursor']))}`, '督查员周');
    expect(rest.body).toMatchObject({ items: [{ actor: '社区书记张' }], nextCursor: null });
    for (const actor of ['社区书记张', '管理员钟', '居民王先生']) {
      const no = await call('GET', `/v1/cases/${u(id)}/personal-data-reads`, actor);
      expectProblem(no, 403, 'NOT_ALLOWED');
      expect(no.body['allowed']).toEqual([{ role: '督查员', unit: null }]);
    }
    expectProblem(await call('GET', '/v1/cases/no-such-case/personal-data-reads', '督查员周'), 404, 'CASE_NOT_FOUND');
    expectProblem(await call('GET', `/v1/cases/${u(id)}/personal-data-reads?cursor=garbage`, '督查员周'), 422, 'VALIDATION_FAILED');
  });

  it.runIf(backend === 'postgres')('(Postgres only) can be written and read by the application\'s database role, never changed or erased', async () => {
    const schema = uniqueName('wf_pd_test');
    const role = uniqueName('wf_pd_app');
    const app = await openAppDatabase({ databaseUrl: databaseUrl as string, schema, appRole: role });
    try {
      await upsertOrgUnits(app, [{ id: '永乐社区', parent: null, level: 'community', name: '永乐社区' }]);
      const engine = new Engine({ store: app });
      await engine.deploy(readFileSync(path.join(WORKFLOWS, '五单服务.wf'), 'utf8'), '五单服务.wf');
      const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王', data: ORDER });
      const read = { caseId: c.id, at: engine.now(), readId: 'r-1', actor: '社区书记张', reason: 'contact', fields: ['电话'], route: 'GET /v1/cases/:id', requestId: null };
      await recordPersonalDataRead(app, read);
      expect(await personalDataReadPage(app, c.id, null, 10)).toEqual([read]);
      expect(await sqlStateOfRejection(sql`update personal_data_reads set actor_id = 'someone else'`.execute(app.db))).toBe('42501');
      expect(await sqlStateOfRejection(sql`delete from personal_data_reads`.execute(app.db))).toBe('42501');
      expect(await sqlStateOfRejection(sql`truncate personal_data_reads`.execute(app.db))).toBe('42501');
    } finally {
      await app.close();
      const owner = await openDatabase({ databaseUrl: databaseUrl as string, migrate: false });
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(owner.db);
      await dropRole(owner.db, role);
      await owner.close();
    }
  });
});
