/**
 * Available actions and the inbox (PGlite, or Postgres with DATABASE_URL): which events an actor
 * may send now, with the payload as JSON Schema; multi-unit steps; the inbox and its paging.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import type { FieldType } from '../../dsl/types.ts';
import { actionsInState, availableActions, fieldTypesToJsonSchema, inbox, type JsonSchema } from '../../engine/actions.ts';
import { suspendCase } from '../../engine/admin.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

let store: OpenedDatabase;
let engine: Engine;
let now = Date.parse('2026-03-02T09:00:00+08:00');
const clock = { now: () => now };

const WISH = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };
const WHISTLE = { 社区: '永乐社区', 事项: '小区违规搭建彩钢棚并占用消防通道', 类别: '违法建设' };

async function refusal(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

async function deploy(file: string): Promise<void> {
  const f = path.join(ROOT, 'workflows', file);
  await engine.deploy(readFileSync(f, 'utf8'), f, fileLoader);
}

async function eventsOf(caseId: string, actor: string): Promise<string[]> {
  return (await availableActions(engine, caseId, actor)).map((a) => a.event);
}

beforeAll(async () => {
  store = await openTestDatabase();
  const raw = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as { units: { id: string; parent?: string; level: string; name?: string }[]; actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[] };
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of raw.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar: loadFixtures(raw).calendar });
  await deploy('五单服务.wf');
  await deploy('吹哨报到.wf');
});

afterAll(async () => {
  await store?.close();
});

const f = (type: FieldType['type'], more: Partial<FieldType> = {}): FieldType => ({ type, optional: false, constraints: {}, ...more });

describe('fieldTypesToJsonSchema', () => {
  it.each<[string, FieldType, JsonSchema, boolean]>([
    ['text with pattern, length and label', f({ kind: 'text' }, { label: '联系电话', constraints: { pattern: '^1[0-9]{10}$', minLength: 11, maxLength: 11 } }),
      { type: 'string', pattern: '^1[0-9]{10}$', minLength: 11, maxLength: 11, title: '联系电话' }, true],
    ['optional number in a range', f({ kind: 'number' }, { optional: true, constraints: { min: 1, max: 5 } }),
      { type: ['number', 'null'], minimum: 1, maximum: 5 }, false],
    ['boolean with a default', f({ kind: 'boolean' }, { default: false }),
      { type: ['boolean', 'null'], default: false }, false],
    ['datetime with a lower bound', f({ kind: 'datetime' }, { constraints: { min: '2026-01-01T00:00:00.000Z' } }),
      { type: 'string', format: 'date-time', formatMinimum: '2026-01-01T00:00:00.000Z' }, true],
    ['duration', f({ kind: 'duration' }), {
      'x-wf-type': 'duration',
      anyOf: [
        { type: 'string', description: 'A duration such as "2 workdays", "48 hours" or "PT30M".' },
        { type: 'object', properties: { ms: { type: 'number' }, workdays: { type: 'number' } }, required: ['ms', 'workdays'], additionalProperties: false },
      ],
    }, true],
    ['org', f({ kind: 'org' }), { type: 'string', minLength: 1, 'x-wf-type': 'org' }, true],
    ['optional actor', f({ kind: 'actor' }, { optional: true }), { type: ['string', 'null'], minLength: 1, 'x-wf-type': 'actor' }, false],
    ['enum with a default', f({ kind: 'enum', members: ['高', '低'] }, { default: '低' }),
      { type: ['string', 'null'], enum: ['高', '低', null], default: '低' }, false],
    ['list of org with a length', f({ kind: 'list', item: { kind: 'org' } }, { constraints: { minLength: 1, maxLength: 8 } }),
      { type: 'array', items: { type: 'string', minLength: 1, 'x-wf-type': 'org' }, minItems: 1, maxItems: 8 }, true],
    ['record', f({ kind: 'record', fields: { 满意: f({ kind: 'number' }, { label: '群众是否满意' }), 意见: f({ kind: 'text' }, { optional: true }) } }), {
      type: 'object',
      properties: { 满意: { type: 'number', title: '群众是否满意' }, 意见: { type: ['string', 'null'] } },
      required: ['满意'],
      additionalProperties: false,
    }, true],
    ['untyped', f({ kind: 'unknown' }), {}, true],
  ])('%s', (_name, field, schema, required) => {
    expect(fieldTypesToJsonSchema({ x: field })).toEqual({ type: 'object', properties: { x: schema }, required: required ? ['x'] : [], additionalProperties: false });
  });

  it('an event with no payload takes an empty object', () => {
    expect(fieldTypesToJsonSchema({})).toEqual({ type: 'object', properties: {}, required: [], additionalProperties: false });
  });
});

describe('availableActions', () => {
  it('gives the same for a case read once with caseState (actionsInState), whose view is getCase\'s', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const cs = await engine.caseState(c.id);
    expect(cs.view).toEqual(await engine.getCase(c.id));
    expect(cs.view.version).toBe(2);
    for (const actor of ['社区书记张', '卫健局书记钱', '居民王先生', '党员李', '社区书记刘']) {
      expect(await actionsInState(engine, cs, actor)).toEqual(await availableActions(engine, c.id, actor));
    }
    expect((await actionsInState(engine, cs, '卫健局书记钱')).length).toBeGreaterThan(0);
  });

  it('offers each actor what the state accepts from them, with who may send it and the form', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    const secretary = await availableActions(engine, c.id, '社区书记张');
    expect(secretary).toEqual([{
      event: '派单',
      label: '派单',
      who: '社区书记 of 永乐社区; 街道书记 of 永乐社区',
      as: { role: '社区书记', unit: '永乐社区', clause: 'role' },
      payloadSchema: {
        type: 'object',
        properties: { 单位: { type: 'string', minLength: 1, 'x-wf-type': 'org', title: '接单单位' }, 派单说明: { type: ['string', 'null'] } },
        required: ['单位'],
        additionalProperties: false,
      },
    }]);
    expect(await eventsOf(c.id, '街道书记赵')).toEqual(['派单']); // a role held in an ancestor counts
    expect(await eventsOf(c.id, '居民王先生')).toEqual(['撤单']); // the submitter
    const proxy = await availableActions(engine, c.id, '代办员何');
    expect(proxy.map((a) => [a.event, a.as.role, a.who])).toEqual([['撤单', '代办员', '居民王先生; 代办员 of 永乐社区']]);
    expect(await eventsOf(c.id, '党员李')).toEqual([]);
    expect(await eventsOf(c.id, '社区书记刘')).toEqual([]); // another community
    expect(await eventsOf(c.id, '街道书记孙')).toEqual([]); // another street

    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    expect(await eventsOf(c.id, '卫健局书记钱')).toEqual(['接单', '退单']);
    expect(await eventsOf(c.id, '社区书记张')).toEqual(['改派']);
    expect(await eventsOf(c.id, '城管局局长冯')).toEqual([]);
  });

  it('a closed case and a suspended case have none', async () => {
    const closed = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    await engine.sendEvent(closed.id, { type: '撤单', actor: '居民王先生', payload: { 原因: '问题已自行解决' } });
    expect(await eventsOf(closed.id, '社区书记张')).toEqual([]);
    expect(await eventsOf(closed.id, '居民王先生')).toEqual([]);

    const held = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    expect(await eventsOf(held.id, '社区书记张')).toEqual(['派单']);
    await suspendCase(engine, held.id, { actor: '街道书记赵', reason: '居民外出' });
    expect(await eventsOf(held.id, '社区书记张')).toEqual([]);
  });

  it('for a multi-unit step, names the pending units each actor may act for', async () => {
    const c = await engine.startCase({ workflow: '吹哨报到', orgUnit: '永乐社区', actor: '社区书记张', data: WHISTLE });
    await engine.sendEvent(c.id, { type: '吹哨', actor: '社区书记张', payload: { 部门: ['县城管局', '县住建局', '龙形派出所'], 牵头: '县城管局', 事由: '违建涉及执法、规划和治安' } });
    const cg = await availableActions(engine, c.id, '城管局局长冯');
    expect(cg.map((a) => [a.event, a.units, a.as])).toEqual([['报到', ['县城管局'], { role: '部门负责人', unit: '县城管局', clause: 'role' }]]);
    expect(cg[0]?.who).toBe('部门负责人 of 县城管局, 县住建局, 龙形派出所');
    expect((await availableActions(engine, c.id, '派出所所长邓')).map((a) => a.units)).toEqual([['龙形派出所']]);
    expect(await eventsOf(c.id, '社区书记张')).toEqual([]);

    await engine.sendEvent(c.id, { type: '报到', actor: '城管局局长冯', instance: '县城管局', payload: { 到场人员: '执法中队 3 人', 到场人数: 3 } });
    expect(await eventsOf(c.id, '城管局局长冯')).toEqual([]); // has acted for its unit
    const zj = await availableActions(engine, c.id, '住建局局长韩');
    expect(zj.map((a) => a.units)).toEqual([['县住建局']]);
    expect(zj[0]?.who).toBe('部门负责人 of 县住建局, 龙形派出所');
  });

  it('throws CASE_NOT_FOUND for an unknown case', async () => {
    expect((await refusal(availableActions(engine, 'no-such-case', '社区书记张'))).code).toBe('CASE_NOT_FOUND');
  });
});

describe('inbox', () => {
  it('lists the cases where the actor can act now, with their actions, and pages through them', async () => {
    const start = (): Promise<{ id: string }> => engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民林阿姨', data: WISH });
    const waiting = await start(); // 待派单
    const toAccept = await start();
    await engine.sendEvent(toAccept.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const toClaim = await start();
    await engine.sendEvent(toClaim.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await engine.sendEvent(toClaim.id, { type: '接单', actor: '卫健局书记钱' });
    const inHand = await start();
    await engine.sendEvent(inHand.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await engine.sendEvent(inHand.id, { type: '接单', actor: '卫健局书记钱' });
    await engine.sendEvent(inHand.id, { type: '抢单', actor: '党员杨' });
    const paused = await start();
    await suspendCase(engine, paused.id, { actor: '街道书记赵' });
    const other = await engine.startCase({ workflow: '五单服务', orgUnit: '南泉社区', actor: '居民林阿姨', data: { ...WISH, 社区: '南泉社区' } });
    const mine = [waiting.id, toAccept.id, toClaim.id, inHand.id, paused.id, other.id];

    const ids = async (actor: string): Promise<string[]> => (await inbox(engine, actor, { limit: 200 })).items.map((i) => i.caseId).filter((id) => mine.includes(id));
    // The unit secretary acts on cases dispatched to the unit (named in the data), not on the community's.
    expect(await ids('卫健局书记钱')).toEqual([toAccept.id, toClaim.id]);
    // A party member: claims at their unit, and the case they hold (a person clause on case.党员).
    expect(await ids('党员李')).toEqual([toClaim.id]);
    expect(await ids('党员杨')).toEqual([toClaim.id, inHand.id]);
    // The community secretary dispatches and redispatches; the suspended case and the other community's are not there.
    expect(await ids('社区书记张')).toEqual([waiting.id, toAccept.id]);
    expect(await ids('社区书记陈')).toEqual([other.id]);
    // The submitter may withdraw while the case waits for dispatch.
    expect(await ids('居民林阿姨')).toEqual([waiting.id, other.id]);

    const page = await inbox(engine, '党员杨', { limit: 200 });
    const held = page.items.find((i) => i.caseId === inHand.id);
    expect(held).toMatchObject({ workflow: '五单服务', definitionVersion: 1, state: '办理中', stateLabel: '党员办理中', unit: '永乐社区', data: { 党员: '党员杨' } });
    expect(held?.actions.map((a) => a.event)).toEqual(['完成', '延期']);
    expect(page.nextCursor).toBeNull();

    // Page by page, one at a time, gives the same list.
    const all = (await inbox(engine, '社区书记张', { limit: 200 })).items.map((i) => i.caseId);
    const paged: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 100; i++) {
      const p: Awaited<ReturnType<typeof inbox>> = await inbox(engine, '社区书记张', { limit: 1, cursor });
      paged.push(...p.items.map((x) => x.caseId));
      cursor = p.nextCursor;
      if (cursor === null) break;
    }
    expect(paged).toEqual(all);
    expect(all.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a cursor it did not hand out', async () => {
    const e = await refusal(inbox(engine, '社区书记张', { cursor: 'not-a-cursor' }));
    expect(e.code).toBe('VALIDATION_FAILED');
  });

  it('is empty for an actor with no roles and no cases', async () => {
    expect((await inbox(engine, '无名氏')).items).toEqual([]);
  });
});
