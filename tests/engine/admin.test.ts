/**
 * Case operations on the database (PGlite, or Postgres with DATABASE_URL): suspend and resume with
 * paused timers, reassign, links, and migration between definition versions. Every history
 * written here must replay (audit.ts, through the replayers admin.ts registers).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { availableActions } from '../../engine/actions.ts';
import {
  adminReplayers, applySuspended, linkCases, linksOf, migrateCases, reassignCase, resumeCase, startLinkedCase, suspendCase,
  type MigratedPayload, type SuspendedContext,
} from '../../engine/admin.ts';
import { replay } from '../../engine/audit.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { canonicalJson, sha256Hex } from '../../engine/hash.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { loadEvents } from '../../engine/store/cases.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { runDueTimers } from '../../engine/timers.ts';
import { openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');
const WHISTLE = path.join(ROOT, 'workflows/吹哨报到.wf');
const FIVE_STEP = path.join(ROOT, 'workflows/五步闭环.wf');

let store: OpenedDatabase;
let engine: Engine;
let now = Date.parse('2026-03-02T09:00:00+08:00'); // a Monday
const clock = { now: () => now };
const at = (iso: string): number => Date.parse(iso);

const WISH = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

async function refusal(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

function replace(source: string, from: string | RegExp, to: string): string {
  const out = source.replace(from, to);
  if (out === source) throw new Error(`the test's edit of the source did not apply: ${String(from)}`);
  return out;
}

async function timersOf(caseId: string): Promise<Record<string, { state: string; due: string }>> {
  const rows = await store.query<{ timer_id: string; state: string; due_at: unknown }>('select timer_id, state, due_at from timers where case_id = $1', [caseId]);
  return Object.fromEntries(rows.map((r) => [r.timer_id, { state: r.state, due: new Date(r.due_at as string).toISOString() }]));
}

async function expectReplays(caseId: string): Promise<void> {
  const r = await replay(engine, caseId);
  expect(r.ok ? 'ok' : r.message).toBe('ok');
}

beforeAll(async () => {
  store = await openTestDatabase();
  const raw = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as { units: { id: string; parent?: string; level: string; name?: string }[]; actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[] };
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of raw.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar: loadFixtures(raw).calendar });
  await engine.deploy(readFileSync(WUDAN, 'utf8'), WUDAN, fileLoader);
  await engine.deploy(readFileSync(FIVE_STEP, 'utf8'), FIVE_STEP, fileLoader);
});

afterAll(async () => {
  await store?.close();
});

// First in the file: it runs the timer poller over the whole database and counts what fires.
describe('suspend and resume', () => {
  it('a suspended case refuses events, its timers do not fire, and resume re-arms them with the time that was left', async () => {
    now = at('2026-03-02T09:00:00+08:00');
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    const deadline = 'xstate.after.待派单/t2.五单服务.待派单';
    const reminder = 'xstate.after.待派单/r2_0.五单服务.待派单';
    expect(await timersOf(c.id)).toEqual({
      [deadline]: { state: 'scheduled', due: '2026-03-04T01:00:00.000Z' }, // 2 working days
      [reminder]: { state: 'scheduled', due: '2026-03-03T01:00:00.000Z' }, // at 50 %
    });

    now = at('2026-03-02T10:00:00+08:00');
    const suspended = await suspendCase(engine, c.id, { actor: '街道书记赵', reason: '居民外出，暂缓办理' });
    expect(suspended.status).toBe('suspended');
    expect(await timersOf(c.id)).toEqual({
      [deadline]: { state: 'cancelled', due: '2026-03-04T01:00:00.000Z' },
      [reminder]: { state: 'cancelled', due: '2026-03-03T01:00:00.000Z' },
    });
    const { snapshot } = await engine.caseState(c.id);
    expect((snapshot.context as SuspendedContext).paused).toEqual({
      [deadline]: { eventType: deadline, remainingMs: 47 * 3_600_000, key: '待派单/t2' },
      [reminder]: { eventType: reminder, remainingMs: 23 * 3_600_000, key: '待派单/r2_0' },
    });

    const e = await refusal(engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } }));
    expect([e.code, e.status]).toEqual(['CASE_SUSPENDED', 409]);
    expect((await refusal(suspendCase(engine, c.id, { actor: '街道书记赵' }))).code).toBe('NOT_POSSIBLE');

    // A week later, long past both due times: nothing fires while the case is suspended.
    now = at('2026-03-09T09:00:00+08:00');
    expect(await runDueTimers(engine)).toBe(0);
    expect((await loadEvents(store, c.id)).map((ev) => ev.type)).toEqual(['start', 'case.suspended']);

    const resumed = await resumeCase(engine, c.id, { actor: '街道书记赵', reason: '居民已返回' });
    expect(resumed.status).toBe('active');
    // Now + what was left: 23 h and 47 h of clock time.
    expect(resumed.due).toEqual({ '待派单/t2': '2026-03-11T00:00:00.000Z', '待派单/r2_0': '2026-03-10T00:00:00.000Z' });
    expect(await timersOf(c.id)).toEqual({
      [deadline]: { state: 'scheduled', due: '2026-03-11T00:00:00.000Z' },
      [reminder]: { state: 'scheduled', due: '2026-03-10T00:00:00.000Z' },
    });
    expect((await engine.caseState(c.id)).snapshot.context).not.toHaveProperty('paused');

    now = at('2026-03-10T00:00:00.000Z') - 1;
    expect(await runDueTimers(engine)).toBe(0);
    now = at('2026-03-10T00:00:00.000Z');
    expect(await runDueTimers(engine)).toBe(1); // the reminder
    now = at('2026-03-11T00:00:00.000Z');
    expect(await runDueTimers(engine)).toBe(1); // the deadline: escalated to the street
    expect(await engine.getCase(c.id)).toMatchObject({ state: '待派单', unit: '龙形街道', status: 'active' });

    const events = await loadEvents(store, c.id);
    expect(events.map((ev) => ev.type)).toEqual(['start', 'case.suspended', 'case.resumed', reminder, deadline]);
    expect(events[1]).toMatchObject({ actorId: '街道书记赵', payload: { reason: '居民外出，暂缓办理' }, facts: { system: true } });
    expect(events[2]).toMatchObject({ actorId: '街道书记赵', payload: { reason: '居民已返回' } });
    await expectReplays(c.id);

    // Events are accepted again.
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
  });

  it('refuses to resume a case that is not suspended, and to suspend a closed one', async () => {
    now = at('2026-03-12T09:00:00+08:00');
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    expect((await refusal(resumeCase(engine, c.id, { actor: '街道书记赵' }))).code).toBe('NOT_POSSIBLE');
    await engine.sendEvent(c.id, { type: '撤单', actor: '居民王先生', payload: { 原因: '已自行解决' } });
    expect((await refusal(suspendCase(engine, c.id, { actor: '街道书记赵' }))).code).toBe('NOT_POSSIBLE');
    expect((await refusal(suspendCase(engine, 'no-such-case', { actor: '街道书记赵' }))).code).toBe('CASE_NOT_FOUND');
  });

  it('applySuspended and its replayer agree with what was written (pure, from the payload alone)', async () => {
    now = at('2026-03-12T09:00:00+08:00');
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    const before = (await engine.caseState(c.id)).snapshot;
    await suspendCase(engine, c.id, { actor: '街道书记赵' });
    const record = (await loadEvents(store, c.id))[1];
    if (record === undefined) throw new Error('no suspension event');
    const replayed = adminReplayers['case.suspended']?.(before, record, () => { throw new Error('not needed'); });
    expect(replayed).toEqual(applySuspended(before, record.payload as never));
    expect(sha256Hex(canonicalJson(replayed?.context))).toBe((record.resultingState as { context: string }).context);
    await resumeCase(engine, c.id, { actor: '街道书记赵' });
    await expectReplays(c.id);
  });
});

describe('reassign', () => {
  it('makes another unit responsible, records it, sends a reassigned effect, and who may act follows the unit', async () => {
    now = at('2026-03-12T09:00:00+08:00');
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    expect((await availableActions(engine, c.id, '街道书记赵')).map((a) => a.event)).toEqual(['派单']);
    const moved = await reassignCase(engine, c.id, { actor: '街道书记赵', to: '南泉社区', reason: '属地调整' });
    expect(moved.unit).toBe('南泉社区');
    const events = await loadEvents(store, c.id);
    expect(events[1]).toMatchObject({ type: 'case.reassigned', actorId: '街道书记赵', orgUnitId: '南泉社区', payload: { from: '永乐社区', to: '南泉社区', reason: '属地调整' } });
    const outbox = await store.query<{ kind: string; payload: unknown }>('select kind, payload from outbox where case_id = $1 and seq = 2', [c.id]);
    expect(outbox).toEqual([{ kind: 'reassigned', payload: { kind: 'reassigned', from: '永乐社区', to: '南泉社区' } }]);
    // `by 街道书记` means the street above the responsible unit: now 德凤街道's.
    expect((await availableActions(engine, c.id, '街道书记孙')).map((a) => a.event)).toEqual(['派单']);
    expect((await availableActions(engine, c.id, '街道书记赵')).map((a) => a.event)).toEqual([]);
    await expectReplays(c.id);

    expect((await refusal(reassignCase(engine, c.id, { actor: '街道书记赵', to: '火星社区' }))).code).toBe('ORG_UNIT_NOT_FOUND');
    expect((await refusal(reassignCase(engine, c.id, { actor: '街道书记赵', to: '南泉社区' }))).code).toBe('NOT_POSSIBLE');
    expect((await loadEvents(store, c.id)).length).toBe(2);
  });
});

describe('links', () => {
  it('a recurrence opens a new case linked to the closed one, which stays closed', async () => {
    now = at('2026-03-02T09:00:00+08:00');
    const old = await engine.startCase({ workflow: '五步闭环', orgUnit: '永乐社区', actor: '专班谢', data: { 问题: '社区办公场所制度牌过多', 来源: '督查检查' } });
    await engine.sendEvent(old.id, { type: '分类', actor: '专班谢', payload: { 类别: '证明事项' } });
    await engine.sendEvent(old.id, { type: '领办', actor: '民政局局长蒋', payload: { 整改措施: ['清理制度牌'] } });
    await engine.sendEvent(old.id, { type: '整改完成', actor: '民政局局长蒋', payload: { 整改结果: '制度牌已清理', 佐证材料: ['照片 1'] } });
    const closed = await engine.sendEvent(old.id, { type: '核查', actor: '督查员周', payload: { 结论: '通过' } });
    expect(closed).toMatchObject({ state: '已销号', status: 'done' });

    now = at('2026-04-01T09:00:00+08:00');
    const again = await startLinkedCase(engine, old.id, {
      workflow: '五步闭环', orgUnit: '永乐社区', actor: '专班谢', data: { 问题: '制度牌又挂上了', 来源: '督查检查', 关联案件: old.id },
    }, 'recurrence_of');
    expect(again).toMatchObject({ state: '发现问题', status: 'active', version: 2, data: { 关联案件: old.id } });
    const events = await loadEvents(store, again.id);
    expect(events.map((e) => e.type)).toEqual(['start', 'case.linked']);
    expect(events[1]).toMatchObject({ actorId: '专班谢', payload: { linkedCaseId: old.id, kind: 'recurrence_of' } });
    // The closed case is untouched.
    expect(await engine.getCase(old.id)).toEqual(closed);
    expect((await loadEvents(store, old.id)).length).toBe(5);

    expect(await linksOf(engine, again.id)).toEqual([expect.objectContaining({ caseId: again.id, linkedCaseId: old.id, kind: 'recurrence_of', direction: 'to' })]);
    expect(await linksOf(engine, old.id)).toEqual([expect.objectContaining({ caseId: again.id, linkedCaseId: old.id, kind: 'recurrence_of', direction: 'from' })]);

    // Linking again changes nothing.
    await linkCases(engine, again.id, old.id, 'recurrence_of');
    expect((await loadEvents(store, again.id)).length).toBe(2);
    expect((await linksOf(engine, again.id)).length).toBe(1);
    await expectReplays(again.id);
    await expectReplays(old.id);

    expect((await refusal(linkCases(engine, again.id, again.id, 'recurrence_of'))).code).toBe('NOT_POSSIBLE');
    expect((await refusal(linkCases(engine, again.id, 'no-such-case', 'recurrence_of'))).code).toBe('CASE_NOT_FOUND');
    expect((await refusal(startLinkedCase(engine, 'no-such-case', { workflow: '五步闭环', orgUnit: '永乐社区', actor: '专班谢', data: {} }, 'recurrence_of'))).code).toBe('CASE_NOT_FOUND');
  });

  it('a link that exists in case_links but was not yet recorded is completed without a second event (retry after a failure)', async () => {
    now = at('2026-04-02T09:00:00+08:00');
    const a = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    const b = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: WISH });
    // The event was written, then the process died before the link row: the retry adds the row only.
    await engine.writeSystemEvent(b.id, { type: 'case.linked', actor: null, payload: { linkedCaseId: a.id, kind: 'related' } }, ({ snapshot }) => ({ snapshot }));
    await linkCases(engine, b.id, a.id, 'related');
    expect((await loadEvents(store, b.id)).map((e) => e.type)).toEqual(['start', 'case.linked']);
    expect((await linksOf(engine, a.id)).map((l) => [l.caseId, l.kind, l.direction])).toEqual([[b.id, 'related', 'from']]);
  });
});

describe('versions', () => {
  const v1Source = (): string => replace(readFileSync(WUDAN, 'utf8'), 'workflow 五单服务 "', 'workflow 五单迁移 "');
  // Version 2: 待抢单 is renamed 待认领, names may be at most 4 characters, a new field with a
  // default, and 3 working days instead of 2 to dispatch.
  const v2Source = (): string => {
    let s = v1Source();
    s = s.replaceAll('待抢单', '待认领');
    s = replace(s, '姓名 "居民姓名": text length 1..20,', '姓名 "居民姓名": text length 1..4,');
    s = replace(s, '  撤单原因: text?,\n', '  撤单原因: text?,\n  来源渠道: text = "码上办",\n');
    s = replace(s, '  after 2 workdays\n    remind 社区书记', '  after 3 workdays\n    remind 社区书记');
    return s;
  };

  it('a dry run reports what cannot move and why, and changes nothing; the real run moves the rest, which go on on the new version', async () => {
    now = at('2026-03-02T09:00:00+08:00');
    expect(await engine.deploy(v1Source(), WUDAN, fileLoader)).toMatchObject({ name: '五单迁移', version: 1 });
    const start = (data = WISH): Promise<{ id: string }> => engine.startCase({ workflow: '五单迁移', orgUnit: '永乐社区', actor: '居民王先生', data });
    const waiting = await start();
    const toClaim = await start();
    await engine.sendEvent(toClaim.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await engine.sendEvent(toClaim.id, { type: '接单', actor: '卫健局书记钱' });
    const toAccept = await start();
    await engine.sendEvent(toAccept.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const longName = await start({ ...WISH, 姓名: '欧阳先生的邻居' });
    const paused = await start();
    await suspendCase(engine, paused.id, { actor: '街道书记赵' });
    const withdrawn = await start();
    await engine.sendEvent(withdrawn.id, { type: '撤单', actor: '居民王先生', payload: { 原因: '已自行解决' } });

    expect(await engine.deploy(v2Source(), WUDAN, fileLoader)).toMatchObject({ name: '五单迁移', version: 2, created: true });
    now = at('2026-03-03T09:00:00+08:00'); // Tuesday
    const versionsBefore = await Promise.all([waiting, toClaim, toAccept, longName, paused].map(async (c) => (await engine.getCase(c.id)).version));

    const dry = await migrateCases(engine, { workflow: '五单迁移', fromVersion: 1 }, 2, {}, { dryRun: true, actor: '管理员' });
    expect(dry.moved.map((m) => m.caseId).sort()).toEqual([waiting.id, toAccept.id].sort());
    expect(dry.moved.find((m) => m.caseId === waiting.id)).toEqual({ caseId: waiting.id, fromVersion: 1, toVersion: 2, fromState: '待派单', toState: '待派单' });
    const why = Object.fromEntries(dry.refused.map((r) => [r.caseId, r.code]));
    expect(why).toEqual({ [toClaim.id]: 'state_unmapped', [longName.id]: 'data_invalid', [paused.id]: 'suspended' });
    expect(dry.refused.find((r) => r.caseId === toClaim.id)?.reason).toContain('"待抢单" does not exist in version 2');
    expect(dry.refused.find((r) => r.caseId === longName.id)?.reason).toContain('姓名');
    // The closed case is not even looked at.
    expect([...dry.moved, ...dry.refused].map((r) => r.caseId)).not.toContain(withdrawn.id);

    const missing = await migrateCases(engine, { workflow: '五单迁移', state: '待抢单' }, 2, { 待抢单: '待领取' }, { dryRun: true, actor: '管理员' });
    expect(missing).toMatchObject({ moved: [], refused: [{ caseId: toClaim.id, code: 'state_missing' }] });

    // Nothing was written by the dry runs.
    const after = await Promise.all([waiting, toClaim, toAccept, longName, paused].map((c) => engine.getCase(c.id)));
    expect(after.map((c) => c.version)).toEqual(versionsBefore);
    expect(after.map((c) => c.definitionVersion)).toEqual([1, 1, 1, 1, 1]);

    const real = await migrateCases(engine, { workflow: '五单迁移', fromVersion: 1 }, 2, { 待抢单: '待认领' }, { actor: '管理员' });
    expect(real.moved.map((m) => [m.caseId, m.fromState, m.toState]).sort()).toEqual([
      [waiting.id, '待派单', '待派单'], [toClaim.id, '待抢单', '待认领'], [toAccept.id, '待接单', '待接单'],
    ].sort());
    expect(Object.fromEntries(real.refused.map((r) => [r.caseId, r.code]))).toEqual({ [longName.id]: 'data_invalid', [paused.id]: 'suspended' });

    // Each moved case: a case.migrated event on the target definition, and the target's data fields.
    const claimEvents = await loadEvents(store, toClaim.id);
    const migrated = claimEvents[claimEvents.length - 1];
    expect(migrated).toMatchObject({
      type: 'case.migrated', actorId: '管理员', facts: { system: true, definitionId: '五单迁移@2' },
      payload: { fromVersion: 1, toVersion: 2, fromState: '待抢单', toState: '待认领', dataChanges: { 来源渠道: '码上办' } },
    });
    expect(await engine.getCase(toClaim.id)).toMatchObject({ definitionVersion: 2, state: '待认领', data: { 来源渠道: '码上办', 单位: '县卫健局' } });

    // Timers: the old state's are cancelled, the new state's armed from the migration (Tuesday 09:00).
    const claimTimers = Object.fromEntries(Object.entries(await timersOf(toClaim.id)).filter(([id]) => /待抢单|待认领/.test(id)));
    expect(claimTimers).toEqual({
      'xstate.after.待抢单/t2.五单迁移.待抢单': { state: 'cancelled', due: '2026-03-03T01:00:00.000Z' },
      'xstate.after.待抢单/r2_0.五单迁移.待抢单': { state: 'cancelled', due: '2026-03-02T13:00:00.000Z' },
      'xstate.after.待认领/t2.五单迁移.待认领': { state: 'scheduled', due: '2026-03-04T01:00:00.000Z' },
      'xstate.after.待认领/r2_0.五单迁移.待认领': { state: 'scheduled', due: '2026-03-03T13:00:00.000Z' },
    });
    // 待派单 keeps its timer ids: they are moved to 3 working days from the migration.
    const w = await engine.getCase(waiting.id);
    expect(w.due).toEqual({ '待派单/t2': '2026-03-06T01:00:00.000Z', '待派单/r2_0': '2026-03-04T13:00:00.000Z' });
    expect(await timersOf(waiting.id)).toEqual({
      'xstate.after.待派单/t2.五单迁移.待派单': { state: 'scheduled', due: '2026-03-06T01:00:00.000Z' },
      'xstate.after.待派单/r2_0.五单迁移.待派单': { state: 'scheduled', due: '2026-03-04T13:00:00.000Z' },
    });

    // Migrated cases continue on version 2 …
    const claimed = await engine.sendEvent(toClaim.id, { type: '抢单', actor: '党员李' });
    expect(claimed).toMatchObject({ state: '办理中', definitionVersion: 2, data: { 党员: '党员李' } });
    // … the ones left behind on version 1.
    const stayed = await engine.sendEvent(longName.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    expect(stayed).toMatchObject({ state: '待接单', definitionVersion: 1 });
    expect(await engine.getCase(paused.id)).toMatchObject({ definitionVersion: 1, status: 'suspended' });
    expect(await engine.getCase(withdrawn.id)).toMatchObject({ definitionVersion: 1, status: 'done' });
    // New cases start on the newest version.
    expect(await start()).toMatchObject({ definitionVersion: 2 });

    for (const c of [waiting, toClaim, toAccept, longName, paused]) await expectReplays(c.id);

    // Migrating again finds nothing more to move, and says why for the ones named.
    const again = await migrateCases(engine, { workflow: '五单迁移', caseIds: [toClaim.id, withdrawn.id, 'no-such-case'] }, 2, {}, { actor: '管理员' });
    expect(again.moved).toEqual([]);
    expect(Object.fromEntries(again.refused.map((r) => [r.caseId, r.code]))).toEqual({
      [toClaim.id]: 'already_on_target', [withdrawn.id]: 'closed', 'no-such-case': 'not_found',
    });
    expect((await refusal(migrateCases(engine, { workflow: '五单迁移' }, 9, {}, { actor: '管理员' }))).code).toBe('DEFINITION_NOT_FOUND');
  });

  it('a case in the middle of a multi-unit step moves only to the same kind of step, and keeps who has reported', async () => {
    now = at('2026-03-02T09:00:00+08:00');
    const v1 = replace(readFileSync(WHISTLE, 'utf8'), 'workflow 吹哨报到 ', 'workflow 吹哨迁移 ');
    await engine.deploy(v1, WHISTLE, fileLoader);
    const c = await engine.startCase({ workflow: '吹哨迁移', orgUnit: '永乐社区', actor: '社区书记张', data: { 社区: '永乐社区', 事项: '小区违规搭建彩钢棚并占用消防通道' } });
    await engine.sendEvent(c.id, { type: '吹哨', actor: '社区书记张', payload: { 部门: ['县城管局', '县住建局', '龙形派出所'], 牵头: '县城管局', 事由: '违建涉及执法、规划和治安' } });
    await engine.sendEvent(c.id, { type: '报到', actor: '城管局局长冯', instance: '县城管局', payload: { 到场人员: '执法中队 3 人', 到场人数: 3 } });
    await engine.deploy(`${v1}\n-- 第 2 版\n`, WHISTLE, fileLoader);

    now = at('2026-03-03T09:00:00+08:00');
    const dry = await migrateCases(engine, { workflow: '吹哨迁移' }, 2, { 待报到: '联合处置' }, { dryRun: true, actor: '管理员' });
    expect(dry.moved).toEqual([]);
    expect(dry.refused).toEqual([{ caseId: c.id, code: 'multi_step', reason: expect.stringContaining('县住建局, 龙形派出所 still to act') }]);

    const real = await migrateCases(engine, { workflow: '吹哨迁移' }, 2, {}, { actor: '管理员' });
    expect(real.moved).toEqual([{ caseId: c.id, fromVersion: 1, toVersion: 2, fromState: '待报到', toState: '待报到' }]);
    const moved = await engine.getCase(c.id);
    expect(moved.multi).toMatchObject({ state: '待报到', items: ['县城管局', '县住建局', '龙形派出所'], done: { 县城管局: { actor: '城管局局长冯' } } });
    // The join deadline starts again: 2 working days from the migration.
    expect(moved.due).toEqual({ '待报到/w': '2026-03-05T01:00:00.000Z' });
    const payload = (await loadEvents(store, c.id)).at(-1)?.payload as MigratedPayload;
    expect(payload.multi?.done).toHaveProperty('县城管局');

    expect((await availableActions(engine, c.id, '城管局局长冯')).map((a) => a.event)).toEqual([]);
    await engine.sendEvent(c.id, { type: '报到', actor: '住建局局长韩', instance: '县住建局', payload: { 到场人员: '规划股 2 人', 到场人数: 2 } });
    const joined = await engine.sendEvent(c.id, { type: '报到', actor: '派出所所长邓', instance: '龙形派出所', payload: { 到场人员: '社区民警', 到场人数: 1 } });
    expect(joined).toMatchObject({ state: '联合处置', definitionVersion: 2, data: { 报到人数: 6 } });
    await expectReplays(c.id);
  });
});
