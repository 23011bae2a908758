/**
 * The pure step through the in-memory engine: authorization (属地), refusals with their codes,
 * timers in working days, reminders, escalation, extension and multi-unit steps (吹哨报到).
 */
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../dsl/check.ts';
import { compile, type CompiledDefinition } from '../../dsl/compile.ts';
import { createCalendar } from '../../engine/calendar.ts';
import { EngineError } from '../../engine/errors.ts';
import { MemoryEngine } from '../../engine/memory.ts';
import { MemoryOrg, replayOracle } from '../../engine/org.ts';

const SOURCE = `
workflow 测试 "测试流程"
roles 书记, 党员, 负责人
case { 社区: org, 单位: org?, 党员: actor?, 满意: number?, 部门: list of org, 备注: text? }
start 待派单 by anyone
state 待派单
  on 派单 by 书记 with { 单位: org } require 单位 != case.社区 "不能派给社区自己" set case.单位 = 单位 -> 待接单
  after 2 workdays remind 书记 at 50% "快派单" escalate -> 待派单
state 待接单
  on 抢单 by 党员 of case.单位 set case.党员 = actor -> 办理
  on 退单 by 党员 of case.单位 with { 原因: text length 2..100 } set case.备注 = 原因 -> 待派单
  after 24 hours -> 待派单
state 办理
  on 延期 by case.党员 with { 天数: number range 1..5 } extend workdays(天数)
  on 完成 by case.党员 -> 吹哨
  after 3 days -> 吹哨
state 吹哨
  each 部门 in case.部门 on 报到 by 负责人 of 部门 join at least 2 within 1 workdays -> 评单 timeout -> 评单
state 评单
  on 评价 by submitter with { 分: number range 1..5 } set case.满意 = 分 -> 办结 when 分 >= 3 credit 5 points to case.党员 -> 办理 otherwise
  after 3 days -> 办结
final 办结
`;

function definition(): CompiledDefinition {
  const r = checkSource(SOURCE, '测试.wf');
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  if (r.model === undefined) throw new Error('no model');
  return compile(r.model);
}

const org = new MemoryOrg([
  { id: '县', parent: null, level: 'county', name: '县' },
  { id: '街道', parent: '县', level: 'street', name: '街道' },
  { id: '社区', parent: '街道', level: 'community', name: '社区' },
  { id: '卫健局', parent: '县', level: 'department', name: '卫健局' },
  { id: '城管局', parent: '县', level: 'department', name: '城管局' },
  { id: '公安局', parent: '县', level: 'department', name: '公安局' },
], {
  书记张: [{ role: '书记', unit: '社区' }],
  街道书记: [{ role: '书记', unit: '街道' }],
  县书记: [{ role: '书记', unit: '县' }],
  党员李: [{ role: '党员', unit: '卫健局' }],
  党员赵: [{ role: '党员', unit: '卫健局' }],
  卫健负责人: [{ role: '负责人', unit: '卫健局' }],
  城管负责人: [{ role: '负责人', unit: '城管局' }],
  公安负责人: [{ role: '负责人', unit: '公安局' }],
  县领导: [{ role: '负责人', unit: '县' }],
});
// 2026-10-01..07 National Day, 2026-10-10 (Saturday) a make-up workday.
const calendar = createCalendar({ holidays: ['2026-10-01', '2026-10-02', '2026-10-05', '2026-10-06', '2026-10-07'], workdays: ['2026-10-10'] });
const MONDAY_9 = Date.parse('2026-03-02T09:00:00+08:00');
const DATA = { 社区: '社区', 部门: ['卫健局', '城管局', '公安局'] };
const HOUR = 3_600_000;

function refusal(f: () => unknown): EngineError {
  try {
    f();
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

function engineAt(ms: number) {
  const def = definition();
  const engine = new MemoryEngine(org, calendar, ms);
  const id = engine.start(def, { actor: '居民王', unit: '社区', data: DATA });
  return { engine, id };
}

function toClaim(engine: MemoryEngine, id: string) {
  engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '卫健局' } });
  engine.send(id, { type: '抢单', actor: '党员李' });
}

describe('authorization', () => {
  it.each([
    ['书记张', true, 'the role in the responsible unit'],
    ['街道书记', true, 'the role in an ancestor of it'],
    ['县书记', true, 'the role further up the tree'],
    ['党员李', false, 'another role'],
    ['居民王', false, 'no role at all'],
  ])('派单 by %s: %s (%s)', (actor, ok) => {
    const { engine, id } = engineAt(MONDAY_9);
    const send = () => engine.send(id, { type: '派单', actor, payload: { 单位: '卫健局' } });
    if (ok) expect(() => send()).not.toThrow();
    else {
      const e = refusal(send);
      expect(e.code).toBe('NOT_ALLOWED');
      expect(e.status).toBe(403);
      expect(e.details['allowed']).toEqual([{ role: '书记', unit: '社区' }]);
    }
  });

  it('a role held in a unit named by case data (`of case.单位`)', () => {
    const { engine, id } = engineAt(MONDAY_9);
    engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '卫健局' } });
    expect(refusal(() => engine.send(id, { type: '抢单', actor: '书记张' })).details['allowed']).toEqual([{ role: '党员', unit: '卫健局' }]);
    engine.send(id, { type: '抢单', actor: '党员赵' });
    expect(engine.get(id).snapshot.context.data['党员']).toBe('党员赵');
  });

  it('a person held in case data, and the submitter', () => {
    const { engine, id } = engineAt(MONDAY_9);
    toClaim(engine, id);
    expect(refusal(() => engine.send(id, { type: '完成', actor: '党员赵' })).code).toBe('NOT_ALLOWED');
    engine.send(id, { type: '完成', actor: '党员李' });
    for (const who of ['卫健负责人', '城管负责人']) engine.send(id, { type: '报到', actor: who });
    expect(refusal(() => engine.send(id, { type: '评价', actor: '党员李', payload: { 分: 5 } })).details['allowed']).toEqual([{ person: '居民王' }]);
    engine.send(id, { type: '评价', actor: '居民王', payload: { 分: 5 } });
    expect(engine.get(id).snapshot).toMatchObject({ state: '办结', status: 'done' });
  });
});

describe('refusals', () => {
  it('an event the state does not accept is NOT_POSSIBLE (409) and names what is possible', () => {
    const { engine, id } = engineAt(MONDAY_9);
    const e = refusal(() => engine.send(id, { type: '抢单', actor: '党员李' }));
    expect(e.code).toBe('NOT_POSSIBLE');
    expect(e.status).toBe(409);
    expect(e.details).toMatchObject({ state: '待派单', allowedEvents: ['派单'] });
  });

  it('a failing require is NOT_POSSIBLE with its message, and changes nothing', () => {
    const { engine, id } = engineAt(MONDAY_9);
    const before = engine.get(id).snapshot;
    const e = refusal(() => engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '社区' } }));
    expect(e.code).toBe('NOT_POSSIBLE');
    expect(e.message).toContain('不能派给社区自己');
    expect(engine.get(id).snapshot).toBe(before);
  });

  it.each([
    [{}, '单位'],
    [{ 单位: 3 }, '单位'],
    [{ 单位: '卫健局', 多余: 1 }, '多余'],
  ])('an invalid payload %j is VALIDATION_FAILED (422) naming %s', (payload, field) => {
    const { engine, id } = engineAt(MONDAY_9);
    const e = refusal(() => engine.send(id, { type: '派单', actor: '书记张', payload }));
    expect(e.code).toBe('VALIDATION_FAILED');
    expect(e.status).toBe(422);
    expect(JSON.stringify(e.details['fields'])).toContain(field);
  });

  it('invalid case data at the start is refused', () => {
    const engine = new MemoryEngine(org, calendar, MONDAY_9);
    const e = refusal(() => engine.start(definition(), { actor: '王', unit: '社区', data: { 社区: '社区' } }));
    expect(e.code).toBe('VALIDATION_FAILED');
  });

  it('a closed case accepts nothing', () => {
    const { engine, id } = engineAt(MONDAY_9);
    toClaim(engine, id);
    engine.send(id, { type: '完成', actor: '党员李' });
    engine.advance(2 * 86_400_000); // the 报到 deadline passes
    engine.send(id, { type: '评价', actor: '居民王', payload: { 分: 4 } });
    const e = refusal(() => engine.send(id, { type: '评价', actor: '居民王', payload: { 分: 4 } }));
    expect(e.code).toBe('NOT_POSSIBLE');
    expect(e.message).toContain('closed');
  });
});

describe('timers', () => {
  it('a deadline in working days skips the weekend, keeps the time of day, and escalates to the parent unit', () => {
    const friday = Date.parse('2026-03-06T09:00:00+08:00');
    const { engine, id } = engineAt(friday);
    expect(engine.pendingTimers(id).map((t) => t.dueAt).sort()).toEqual([
      '2026-03-09T01:00:00.000Z', // the 50% reminder: Monday 09:00, half-way through the working-day deadline
      '2026-03-10T01:00:00.000Z', // Tuesday 09:00 Shanghai
    ]);
    engine.advanceTo(Date.parse('2026-03-10T09:00:00+08:00') - 1);
    expect(engine.get(id).snapshot.context.unit).toBe('社区');
    expect(engine.get(id).effects).toEqual([{ kind: 'notify', role: '书记', unit: '社区', message: '快派单', reason: 'reminder' }]);
    engine.advanceTo(Date.parse('2026-03-10T09:00:00+08:00'));
    expect(engine.get(id).snapshot.context.unit).toBe('街道');
    expect(engine.get(id).effects.at(-1)).toEqual({ kind: 'escalated', from: '社区', to: '街道' });
    // Re-armed: two more working days, then up again.
    engine.advanceTo(Date.parse('2026-03-12T09:00:00+08:00'));
    expect(engine.get(id).snapshot.context.unit).toBe('县');
    // After escalation the community secretary no longer holds the case; the street's does.
    expect(refusal(() => engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '卫健局' } })).code).toBe('NOT_ALLOWED');
    engine.send(id, { type: '派单', actor: '县书记', payload: { 单位: '卫健局' } });
  });

  it('a working-day deadline crosses a public holiday and uses the make-up workday', () => {
    const { engine, id } = engineAt(Date.parse('2026-09-30T10:00:00+08:00'));
    const due = engine.pendingTimers(id).map((t) => t.dueAt).sort().at(-1);
    // Wed 09-30 + 2 working days: 10-01..07 are off (03, 04 are the weekend), 10-08 Thu is one, 10-09 Fri is two.
    expect(due).toBe(new Date(Date.parse('2026-10-09T10:00:00+08:00')).toISOString());
  });

  it('leaving a state cancels its timers', () => {
    const { engine, id } = engineAt(MONDAY_9);
    engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '卫健局' } });
    const timers = engine.pendingTimers(id);
    expect(timers).toHaveLength(1);
    expect(timers[0]?.eventType).toContain('待接单');
    engine.advance(24 * HOUR);
    expect(engine.get(id).snapshot.state).toBe('待派单');
  });

  it('an extension moves the deadline later', () => {
    const { engine, id } = engineAt(MONDAY_9);
    toClaim(engine, id);
    const before = engine.pendingTimers(id)[0]?.dueAt;
    expect(before).toBe('2026-03-05T01:00:00.000Z');
    engine.send(id, { type: '延期', actor: '党员李', payload: { 天数: 2 } });
    expect(engine.get(id).snapshot.state).toBe('办理');
    // Thursday 09:00 + 2 working days = Monday 09:00.
    expect(engine.pendingTimers(id).map((t) => t.dueAt)).toEqual(['2026-03-09T01:00:00.000Z']);
  });
});

describe('multi-unit steps (吹哨报到)', () => {
  function toWhistle() {
    const { engine, id } = engineAt(MONDAY_9);
    toClaim(engine, id);
    engine.send(id, { type: '完成', actor: '党员李' });
    expect(engine.get(id).snapshot.state).toBe('吹哨');
    return { engine, id };
  }

  it('each unit reports once; the join moves on at the quorum', () => {
    const { engine, id } = toWhistle();
    engine.send(id, { type: '报到', actor: '卫健负责人' });
    expect(engine.get(id).snapshot.context.multi?.done['卫健局']?.actor).toBe('卫健负责人');
    const again = refusal(() => engine.send(id, { type: '报到', actor: '卫健负责人' }));
    expect(again.code).toBe('NOT_POSSIBLE');
    expect(again.message).toContain('卫健局 has already sent');
    expect(engine.get(id).snapshot.state).toBe('吹哨');
    engine.send(id, { type: '报到', actor: '公安负责人' });
    expect(engine.get(id).snapshot.state).toBe('评单');
  });

  it('a holder of the role in an ancestor may report for a chosen unit', () => {
    const { engine, id } = toWhistle();
    engine.send(id, { type: '报到', actor: '县领导', instance: '城管局' });
    expect(Object.keys(engine.get(id).snapshot.context.multi?.done ?? {})).toEqual(['城管局']);
  });

  it('the deadline records who missed it and moves on', () => {
    const { engine, id } = toWhistle();
    engine.send(id, { type: '报到', actor: '城管负责人' });
    engine.advance(86_400_000);
    const c = engine.get(id);
    expect(c.snapshot.state).toBe('评单');
    expect(c.effects).toContainEqual({ kind: 'missed', state: '吹哨', units: ['卫健局', '公安局'] });
    // The record of who missed the step stays with the case after it moves on.
    expect(c.snapshot.context.multi).toMatchObject({ state: '吹哨', missed: ['卫健局', '公安局'] });
    expect(refusal(() => engine.send(id, { type: '报到', actor: '公安负责人' })).code).toBe('NOT_POSSIBLE');
  });
});

describe('effects and history', () => {
  it('points are credited only on the satisfied branch', () => {
    const { engine, id } = engineAt(MONDAY_9);
    toClaim(engine, id);
    engine.send(id, { type: '完成', actor: '党员李' });
    engine.send(id, { type: '报到', actor: '卫健负责人' });
    engine.send(id, { type: '报到', actor: '城管负责人' });
    engine.send(id, { type: '评价', actor: '居民王', payload: { 分: 2 } });
    expect(engine.get(id).effects.filter((e) => e.kind === 'credit')).toEqual([]);
    expect(engine.get(id).snapshot.state).toBe('办理');
    engine.send(id, { type: '完成', actor: '党员李' });
    engine.send(id, { type: '报到', actor: '卫健负责人' });
    engine.send(id, { type: '报到', actor: '公安负责人' });
    engine.send(id, { type: '评价', actor: '居民王', payload: { 分: 4 } });
    expect(engine.get(id).effects.filter((e) => e.kind === 'credit')).toEqual([{ kind: 'credit', actor: '党员李', points: 5, hours: 0 }]);
  });

  it('every event records the facts the step used and its decision trace', () => {
    const { engine, id } = engineAt(MONDAY_9);
    engine.send(id, { type: '派单', actor: '书记张', payload: { 单位: '卫健局' } });
    const [init, dispatch] = engine.get(id).events;
    // The deadline and its reminder, each computed with the calendar and recorded.
    expect(Object.keys(init?.facts.deadlines ?? {})).toHaveLength(2);
    expect(dispatch?.trace).toContainEqual(expect.objectContaining({ kind: 'guard', result: true }));
  });
});

describe('the replay oracle', () => {
  it('answers only what the event recorded: a missing map knows nothing, and a unit named like a prototype member is not found on the prototype', () => {
    const o = replayOracle({ parents: { 永乐社区: '城关街道' }, deadlines: { '2026-03-02T01:00:00.000Z|0|2': '2026-03-04T01:00:00.000Z' } });
    expect(o.parentOf('永乐社区')).toBe('城关街道');
    expect(o.addDuration('2026-03-02T01:00:00.000Z', { ms: 0, workdays: 2 })).toBe('2026-03-04T01:00:00.000Z');
    // Not recorded: the answer of knowing nothing, which replay then reports as a mismatch.
    expect(o.addDuration('2026-03-02T01:00:00.000Z', { ms: 0, workdays: 3 })).toBe('2026-03-02T01:00:00.000Z');
    expect(o.levelOf('永乐社区')).toBeNull();
    expect(o.isWorkday('2026-03-02T01:00:00.000Z')).toBe(false);
    for (const unit of ['__proto__', 'constructor', 'toString']) expect(o.parentOf(unit)).toBeNull();
    expect(o.facts()).toEqual({ parents: { 永乐社区: '城关街道' }, deadlines: { '2026-03-02T01:00:00.000Z|0|2': '2026-03-04T01:00:00.000Z' } });
  });
});
