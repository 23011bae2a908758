/**
 * Durable timers on the database (PGlite, or Postgres with DATABASE_URL), under an injected clock:
 * a 24-hour and a working-day escalation of the 五单 loop (across a weekend and public holidays),
 * reminders that reach the outbox, cancellation, no double firing, leases that lapse, timers that
 * keep failing, the poller, and every seed scenario run through the database engine with its
 * timers fired by `runDueTimers`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { T } from '../../dsl/types.ts';
import { validateValue } from '../../dsl/values.ts';
import type { Calendar } from '../../engine/calendar.ts';
import { Engine, type EngineLogger } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { isTimerEvent } from '../../engine/step.ts';
import { loadEvents, type EventRecord } from '../../engine/store/cases.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { caseTimers, claimDueTimers, pendingTimers } from '../../engine/store/timers.ts';
import { runDueTimers, TimerPoller, type TimerEngine } from '../../engine/timers.ts';
import { openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKFLOWS = path.join(ROOT, 'workflows');
const HOUR = 3_600_000;

let store: OpenedDatabase;
let engine: Engine;
let calendar: Calendar;
let now = Date.parse('2026-03-02T09:00:00+08:00');
const clock = { now: () => now };
const at = (text: string): number => Date.parse(text);
const iso = (ms: number): string => new Date(ms).toISOString();

/** A quiet logger, for tests that do not listen for errors. */
const silent: EngineLogger = { info: () => {}, warn: () => {}, error: () => {} };
const run = (e: TimerEngine = engine, options: Parameters<typeof runDueTimers>[1] = {}): Promise<number> => runDueTimers(e, { logger: silent, ...options });

// A one-state workflow whose only timer closes the case: one timer, one event, easy to count.
const TINY = `workflow 计时测试 "计时测试"

roles 办事员 "办事员"

case {
  说明: text?,
}

start 等待 by anyone

state 等待 "等待计时"
  on 办理 by 办事员 -> 完成
  after 1 hours -> 完成

final 完成 "完成"
`;

const DATA = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

beforeAll(async () => {
  store = await openTestDatabase();
  const raw = YAML.parse(readFileSync(path.join(WORKFLOWS, 'fixtures/org.yaml'), 'utf8')) as { units: { id: string; parent?: string; level: string; name?: string }[]; actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[] };
  calendar = loadFixtures(raw).calendar;
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of raw.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar, nodeId: 'node-test' });
  for (const f of readdirSync(WORKFLOWS).filter((n) => n.endsWith('.wf'))) {
    const file = path.join(WORKFLOWS, f);
    await engine.deploy(readFileSync(file, 'utf8'), file, fileLoader);
  }
  await engine.deploy(TINY, 'tiny.wf');
  await upsertActor(store, { id: '办事员甲', name: '甲', phone: null, roles: [{ role: '办事员', unit: '永乐社区' }] });
});

afterAll(async () => {
  await store?.close();
});

// Tests share one database and move the clock as they please (sometimes backwards): a timer a
// test left pending must not fire inside the next one.
afterEach(async () => {
  await store.db.updateTable('timers').set({ state: 'cancelled', claimed_until: null }).where('state', 'in', ['scheduled', 'claimed']).execute();
});

function timerEvents(events: readonly EventRecord[]): EventRecord[] {
  return events.filter((e) => isTimerEvent(e.type));
}

function effectsOf(e: EventRecord | undefined): { kind: string; [k: string]: unknown }[] {
  return ((e?.decision as { effects?: { kind: string }[] } | null)?.effects ?? []) as { kind: string; [k: string]: unknown }[];
}

async function outboxOf(caseId: string): Promise<{ seq: number; kind: string; payload: Record<string, unknown> }[]> {
  const rows = await store.db.selectFrom('outbox').select(['seq', 'effect_no', 'kind', 'payload']).where('case_id', '=', caseId).orderBy('seq').orderBy('effect_no').execute();
  return rows.map((r) => ({ seq: Number(r.seq), kind: r.kind, payload: r.payload as Record<string, unknown> }));
}

async function startTiny(count: number, prefix: string): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
  await Promise.all(ids.map((caseId) => engine.startCase({ workflow: '计时测试', orgUnit: '永乐社区', actor: null, data: {}, caseId })));
  return ids;
}

describe('a 24-hour deadline (五单 待接单: after 24 hours, remind at 80%, escalate)', () => {
  it('reminds at 80%, escalates to the parent unit at 24 h and not a moment before, then the loop closes with several actors', async () => {
    now = at('2026-03-02T09:00:00+08:00'); // Monday
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    // 待派单's timers are cancelled by 派单, replaced by 待接单's.
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const pending = await pendingTimers(store, c.id);
    expect(pending.map((t) => t.dueAt)).toEqual(['2026-03-02T20:12:00.000Z', '2026-03-03T01:00:00.000Z']); // Tue 04:12 and 09:00 (+08)
    expect((await caseTimers(store, c.id)).filter((t) => t.state === 'cancelled')).toHaveLength(2);

    now = at('2026-03-03T04:11:59.999+08:00');
    expect(await run()).toBe(0);
    now = at('2026-03-03T04:12:00+08:00');
    expect(await run()).toBe(1);
    let events = await loadEvents(store, c.id);
    const reminder = events.at(-1);
    expect(reminder).toMatchObject({ actorId: null, recordedAt: '2026-03-02T20:12:00.000Z', resultingState: { state: '待接单' } });
    expect(isTimerEvent(reminder?.type ?? '')).toBe(true);
    expect(effectsOf(reminder)).toEqual([expect.objectContaining({ kind: 'notify', role: '单位书记', unit: '县卫健局', reason: 'reminder' })]);
    // The reminder reached the outbox in the same statement as its event.
    expect((await outboxOf(c.id)).filter((r) => r.seq === reminder?.seq)).toEqual([
      { seq: reminder?.seq, kind: 'notify', payload: expect.objectContaining({ kind: 'notify', role: '单位书记', unit: '县卫健局', reason: 'reminder' }) },
    ]);

    now = at('2026-03-03T08:59:59.999+08:00');
    expect(await run()).toBe(0);
    expect(await engine.getCase(c.id)).toMatchObject({ state: '待接单', unit: '永乐社区' });

    now = at('2026-03-03T09:00:00+08:00');
    expect(await run()).toBe(1);
    expect(await run()).toBe(0); // nothing fires twice
    const escalated = await engine.getCase(c.id);
    expect(escalated).toMatchObject({ state: '待接单', unit: '龙形街道' }); // 永乐社区's parent
    events = await loadEvents(store, c.id);
    expect(effectsOf(events.at(-1)).map((e) => e.kind)).toEqual(['escalated', 'notify']);
    expect(effectsOf(events.at(-1))[0]).toMatchObject({ from: '永乐社区', to: '龙形街道' });
    expect((await outboxOf(c.id)).filter((r) => r.seq === events.at(-1)?.seq).map((r) => r.kind)).toEqual(['escalated', 'notify']);
    // Re-armed from the escalation: another 24 hours.
    expect((await pendingTimers(store, c.id)).map((t) => t.dueAt)).toEqual(['2026-03-03T20:12:00.000Z', '2026-03-04T01:00:00.000Z']);

    // The street reassigns; the unit accepts; a member claims, finishes; the resident rates.
    now += HOUR;
    await engine.sendEvent(c.id, { type: '改派', actor: '街道书记赵', payload: { 单位: '县城管局' } });
    await engine.sendEvent(c.id, { type: '接单', actor: '城管局局长冯' });
    await engine.sendEvent(c.id, { type: '抢单', actor: '党员马' });
    now += 5 * HOUR;
    await engine.sendEvent(c.id, { type: '完成', actor: '党员马', payload: { 办理情况: '已清理绿化带杂物', 服务小时: 2 } });
    const done = await engine.sendEvent(c.id, { type: '评价', actor: '居民王先生', payload: { 评分: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 5, 群众是否满意: 5 } } });
    expect(done).toMatchObject({ state: '办结', status: 'done', unit: '龙形街道' });
    expect(await pendingTimers(store, c.id)).toEqual([]);
    now = at('2026-03-20T09:00:00+08:00');
    expect(await run()).toBe(0);
    events = await loadEvents(store, c.id);
    expect(timerEvents(events)).toHaveLength(2);
    expect(events.map((e) => e.actorId)).toEqual(['居民王先生', '社区书记张', null, null, '街道书记赵', '城管局局长冯', '党员马', '党员马', '居民王先生']);
  });
});

describe('a working-day deadline (五单 待派单: after 2 workdays, remind at 50%, escalate)', () => {
  // Fixture calendar (workflows/fixtures/org.yaml): 清明 2026-04-04..06 (Sat–Mon), 国庆 10-01..07,
  // make-up workday Saturday 10-10. A deadline in working days keeps its time of day.
  it.each([
    { name: 'Thursday before 清明: the weekend and the holiday Monday do not count', start: '2026-04-02T10:00:00+08:00', remind: '2026-04-03T10:00:00+08:00', due: '2026-04-07T10:00:00+08:00', quiet: '2026-04-06T23:00:00+08:00' },
    { name: 'Wednesday before 国庆: a week of holidays does not count', start: '2026-09-30T10:00:00+08:00', remind: '2026-10-08T10:00:00+08:00', due: '2026-10-09T10:00:00+08:00', quiet: '2026-10-07T23:00:00+08:00' },
    { name: 'Friday before the make-up Saturday: the Saturday counts', start: '2026-10-09T10:00:00+08:00', remind: '2026-10-10T10:00:00+08:00', due: '2026-10-12T10:00:00+08:00', quiet: '2026-10-11T23:00:00+08:00' },
  ])('$name', async ({ start, remind, due, quiet }) => {
    now = at(start);
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    expect((await pendingTimers(store, c.id)).map((t) => t.dueAt)).toEqual([iso(at(remind)), iso(at(due))]);

    // Over 48 natural hours later, on a rest day: at most the reminder has fired.
    now = at(quiet);
    const early = await run();
    expect(early).toBe(at(remind) <= now ? 1 : 0);
    if (early === 0) {
      now = at(remind) - 1;
      expect(await run()).toBe(0);
      now = at(remind);
      expect(await run()).toBe(1);
    }
    const reminded = await loadEvents(store, c.id);
    expect(reminded.at(-1)?.recordedAt).toBe(iso(now));
    expect(effectsOf(reminded.at(-1))).toEqual([expect.objectContaining({ kind: 'notify', role: '社区书记', unit: '永乐社区', reason: 'reminder' })]);
    expect(await engine.getCase(c.id)).toMatchObject({ state: '待派单', unit: '永乐社区' });

    now = at(due) - 1;
    expect(await run()).toBe(0);
    expect(await engine.getCase(c.id)).toMatchObject({ state: '待派单', unit: '永乐社区' });

    now = at(due);
    expect(await run()).toBe(1);
    expect(await engine.getCase(c.id)).toMatchObject({ state: '待派单', unit: '龙形街道' });
    const events = await loadEvents(store, c.id);
    expect(effectsOf(events.at(-1))).toEqual([
      expect.objectContaining({ kind: 'escalated', from: '永乐社区', to: '龙形街道' }),
      expect.objectContaining({ kind: 'notify', role: '街道书记', unit: '龙形街道' }),
    ]);

    // The street dispatches: the re-armed 待派单 timers are cancelled and never fire.
    await engine.sendEvent(c.id, { type: '派单', actor: '街道书记赵', payload: { 单位: '县城管局' } });
    const ofState = (await caseTimers(store, c.id)).filter((t) => t.timerId.endsWith('.待派单'));
    expect(ofState.map((t) => t.state)).toEqual(['cancelled', 'cancelled']);
    now = at(due) + 30 * 24 * HOUR;
    await run();
    expect(timerEvents(await loadEvents(store, c.id)).filter((e) => e.type.endsWith('.待派单'))).toHaveLength(2);
  });
});

describe('firing exactly once', () => {
  it('a timer cancelled by leaving its state never fires', async () => {
    now = at('2026-05-11T09:00:00+08:00');
    const [id] = await startTiny(1, 'cancelled');
    await engine.sendEvent(id!, { type: '办理', actor: '办事员甲' });
    expect((await caseTimers(store, id!)).map((t) => t.state)).toEqual(['cancelled']);
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    await engine.sendEvent(c.id, { type: '撤单', actor: '居民王先生', payload: { 原因: '已自行解决' } });
    expect(await engine.getCase(c.id)).toMatchObject({ state: '已撤单', status: 'done' });
    expect((await caseTimers(store, c.id)).map((t) => t.state)).toEqual(['cancelled', 'cancelled']);
    now += 365 * 24 * HOUR;
    await run();
    expect(timerEvents(await loadEvents(store, id!))).toEqual([]);
    expect(timerEvents(await loadEvents(store, c.id))).toEqual([]);
  });

  it('running twice, or on two engines at once, fires each timer once', async () => {
    now = at('2026-05-12T09:00:00+08:00');
    const ids = await startTiny(30, 'twice');
    now += HOUR;
    const other = new Engine({ store, clock, calendar, nodeId: 'node-other' });
    const counts = await Promise.all([run(engine, { limit: 4 }), run(other, { limit: 4 }), run(engine, { limit: 7 })]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(await run()).toBe(0);
    expect(await run(other)).toBe(0);
    for (const id of ids) {
      const events = await loadEvents(store, id);
      expect(events.map((e) => e.type)).toEqual(['start', expect.stringMatching(/^xstate\.after\./)]);
      expect((await caseTimers(store, id)).map((t) => t.state)).toEqual(['fired']);
    }
  });

  it('a claim whose holder stalled past its lease is claimed again and fired once; the stalled holder is refused', async () => {
    now = at('2026-05-13T09:00:00+08:00');
    const [id] = await startTiny(1, 'lease');
    now += HOUR;
    // A node claims the timer and stalls (or dies) before firing it.
    const claimed = await claimDueTimers(store, { now: iso(now), nodeId: 'node-stalled', limit: 10, leaseMs: 60_000 });
    expect(claimed).toEqual([expect.objectContaining({ caseId: id, attempts: 1, claimedUntil: iso(now + 60_000) })]);
    const timer = claimed[0]!;

    now += 30_000;
    expect(await run()).toBe(0); // the lease still holds
    now += 30_000;
    expect(await run()).toBe(0); // and holds to its last instant
    now += 1;
    expect(await run()).toBe(1);
    expect(await caseTimers(store, id!)).toEqual([expect.objectContaining({ state: 'fired', claimedBy: 'node-test', attempts: 2, claimedUntil: null })]);

    // The stalled node wakes up and tries to fire its old claim: refused, nothing written.
    const stalled = new Engine({ store, clock, calendar, nodeId: 'node-stalled' });
    expect(await stalled.fireTimer(timer.caseId, timer.timerId, timer.eventType, 'node-stalled')).toBe(false);
    const events = await loadEvents(store, id!);
    expect(timerEvents(events)).toHaveLength(1);
    expect(await engine.getCase(id!)).toMatchObject({ state: '完成', version: 2 });
  });
});

describe('failures', () => {
  function recorder(): { logger: EngineLogger; errors: string[] } {
    const errors: string[] = [];
    return { errors, logger: { info: () => {}, warn: () => {}, error: (_obj, msg) => errors.push(msg ?? '') } };
  }

  it('a timer that keeps failing is logged, retried after its lease, and given up after maxAttempts; the others fire', async () => {
    now = at('2026-05-14T09:00:00+08:00');
    const [bad, ...good] = await startTiny(4, 'flaky');
    const flaky: TimerEngine = {
      store, nodeId: 'node-flaky', now: () => engine.now(),
      fireTimer: (caseId, timerId, eventType, claimedBy) => caseId === bad ? Promise.reject(new Error('boom')) : engine.fireTimer(caseId, timerId, eventType, claimedBy),
    };
    const { logger, errors } = recorder();
    const options = { leaseMs: 1_000, maxAttempts: 3, logger };
    now += HOUR;
    expect(await runDueTimers(flaky, options)).toBe(3);
    for (const id of good) expect(await engine.getCase(id)).toMatchObject({ state: '完成' });
    expect(errors).toEqual(['timer failed; retried after its lease']);
    expect(await runDueTimers(flaky, options)).toBe(0); // still under its lease: not retried yet
    now += 1_001;
    expect(await runDueTimers(flaky, options)).toBe(0);
    now += 1_001;
    expect(await runDueTimers(flaky, options)).toBe(0);
    expect(errors).toEqual(['timer failed; retried after its lease', 'timer failed; retried after its lease', 'timer failed 3 times; given up (cancelled)']);
    expect(await caseTimers(store, bad!)).toEqual([expect.objectContaining({ state: 'cancelled', attempts: 3 })]);
    now += HOUR;
    expect(await runDueTimers(flaky, options)).toBe(0);
    expect(await engine.getCase(bad!)).toMatchObject({ state: '等待' });
  });

  it('a timer whose holders keep dying while firing it is given up without firing it again', async () => {
    now = at('2026-05-15T09:00:00+08:00');
    const [id] = await startTiny(1, 'crashing');
    now += HOUR;
    for (let i = 1; i <= 3; i++) {
      expect(await claimDueTimers(store, { now: iso(now), nodeId: `node-dead-${i}`, limit: 10, leaseMs: 1_000 })).toHaveLength(1);
      now += 1_001;
    }
    const { logger, errors } = recorder();
    expect(await runDueTimers(engine, { maxAttempts: 3, logger })).toBe(0);
    expect(errors).toEqual(['timer claimed 3 times without firing; given up (cancelled)']);
    expect(await caseTimers(store, id!)).toEqual([expect.objectContaining({ state: 'cancelled', attempts: 4 })]);
    expect(timerEvents(await loadEvents(store, id!))).toEqual([]);
  });
});

describe('TimerPoller', () => {
  it('polls at once on start, and stop() waits for the run in flight', async () => {
    now = at('2026-05-18T09:00:00+08:00');
    const ids = await startTiny(5, 'poller');
    now += HOUR;
    const poller = new TimerPoller(engine, { logger: silent });
    poller.start(3_600_000);
    await poller.stop();
    for (const id of ids) expect(await engine.getCase(id)).toMatchObject({ state: '完成' });
    expect(await poller.poll()).toBe(0);
  });

  it('a failed run is logged and does not stop the poller', async () => {
    const errors: string[] = [];
    const broken: TimerEngine = { store, nodeId: 'node-broken', now: () => 'not a time', fireTimer: () => Promise.resolve(true) };
    const poller = new TimerPoller(broken, { logger: { info: () => {}, warn: () => {}, error: (_o, msg) => errors.push(msg ?? '') } });
    expect(await poller.poll()).toBe(0);
    expect(errors).toEqual(['timer poll failed; trying again at the next interval']);
  });
});

// ---- every seed scenario through the database engine ------------------------------------------

interface ScenarioEntry {
  readonly file: string;
  readonly workflow: string;
  readonly scenario: { name: string; start: Record<string, unknown>; steps?: Record<string, unknown>[] };
}

const SCENARIOS: [string, ScenarioEntry][] = readdirSync(WORKFLOWS).filter((f) => f.endsWith('.test.yaml')).sort().flatMap((file) => {
  const doc = YAML.parse(readFileSync(path.join(WORKFLOWS, file), 'utf8')) as { workflow: string; scenarios: ScenarioEntry['scenario'][] };
  const source = readFileSync(path.join(WORKFLOWS, doc.workflow), 'utf8');
  const workflow = /^workflow\s+(\S+)/m.exec(source)?.[1] ?? doc.workflow;
  return doc.scenarios.map((scenario): [string, ScenarioEntry] => [`${file}: ${scenario.name}`, { file, workflow, scenario }]);
});

const REJECTIONS: Record<string, string> = { not_allowed: 'NOT_ALLOWED', not_possible: 'NOT_POSSIBLE', invalid: 'VALIDATION_FAILED' };

function instantOf(v: unknown): number {
  return v instanceof Date ? v.getTime() : Date.parse(String(v));
}

/** As `wf test` reads a wait: clock time plus working days. */
function waitMs(v: unknown, fromMs: number): number {
  const { value, errors } = validateValue({ type: T.duration, optional: false, constraints: {} }, v, 'wait');
  if (errors.length > 0) throw new Error(`bad wait ${String(v)}`);
  const d = value as unknown as { ms: number; workdays: number };
  const base = d.workdays > 0 ? calendar.addWorkdays(fromMs, Math.floor(d.workdays)) : fromMs;
  return base + d.ms - fromMs;
}

/** Partial match as `wf test` does it: every expected key, datetimes as instants, numbers within 1e-9. */
function partial(want: unknown, got: unknown): boolean {
  if (want === null || typeof want !== 'object') {
    if (typeof want === 'number' && typeof got === 'number') return Math.abs(want - got) < 1e-9;
    if (typeof want === 'string' && typeof got === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(want)) return Date.parse(want) === Date.parse(got);
    return want === got;
  }
  if (want instanceof Date) return typeof got === 'string' && Date.parse(got) === want.getTime();
  if (Array.isArray(want)) return Array.isArray(got) && want.length === got.length && want.every((w, i) => partial(w, got[i]));
  return typeof got === 'object' && got !== null && Object.entries(want).every(([k, w]) => partial(w, (got as Record<string, unknown>)[k]));
}

/**
 * Moves the clock to `target` the way a poller with a fine interval would: to each pending timer
 * of the case in turn, firing it there, so every timer fires at its own due time (as `wf test`'s
 * in-memory engine does). At the target no further timer may fire: none fires early.
 */
async function advanceTo(caseId: string, target: number): Promise<void> {
  for (let guard = 0; guard < 100; guard++) {
    const next = (await pendingTimers(store, caseId)).map((t) => Date.parse(t.dueAt)).filter((t) => t <= target).sort((a, b) => a - b)[0];
    if (next === undefined) break;
    now = Math.max(now, next);
    expect(await run()).toBeGreaterThan(0);
  }
  now = Math.max(now, target);
  expect(await run()).toBe(0);
}

describe('every seed scenario through the database engine, timers fired by runDueTimers', () => {
  it.each(SCENARIOS)('%s', async (_title, { workflow, scenario }) => {
    const start = scenario.start;
    now = instantOf(start['at']);
    let caseId: string;
    try {
      caseId = (await engine.startCase({
        workflow, orgUnit: String(start['unit']), actor: start['as'] === undefined ? null : String(start['as']), data: (start['data'] ?? {}) as Record<string, unknown>,
      })).id;
    } catch (e) {
      if (!(e instanceof EngineError) || start['reject'] === undefined) throw e;
      expect(e.code).toBe(REJECTIONS[String(start['reject'])]);
      return;
    }
    expect(start['reject']).toBeUndefined();
    let effectsSeen = 0; // events up to this seq have had their effects checked; the start's effects count too
    for (const [i, step] of (scenario.steps ?? []).entries()) {
      const where = `step ${i + 1}: ${JSON.stringify(step)}`;
      if (step['send'] !== undefined) {
        const send = engine.sendEvent(caseId, {
          type: String(step['send']),
          actor: step['as'] === undefined ? null : String(step['as']),
          payload: (step['payload'] ?? {}) as Record<string, unknown>,
          ...(step['unit'] === undefined ? {} : { instance: String(step['unit']) }),
        });
        if (step['reject'] === undefined) await send;
        else await expect(send, where).rejects.toMatchObject({ code: REJECTIONS[String(step['reject'])] });
      } else if (step['wait'] !== undefined) {
        await advanceTo(caseId, now + waitMs(step['wait'], now));
      } else if (step['until'] !== undefined) {
        await advanceTo(caseId, instantOf(step['until']));
      } else if (step['expect'] !== undefined) {
        const want = step['expect'] as Record<string, unknown>;
        const c = await engine.getCase(caseId);
        if (want['state'] !== undefined) expect(c.state, where).toBe(want['state']);
        if (want['status'] !== undefined) expect(c.status, where).toBe(want['status']);
        if (want['unit'] !== undefined) expect(c.unit, where).toBe(want['unit']);
        for (const [k, v] of Object.entries((want['data'] ?? {}) as Record<string, unknown>)) {
          expect(partial(v, c.data[k]), `${where}: case.${k} = ${JSON.stringify(c.data[k])}`).toBe(true);
        }
        if (want['missed'] !== undefined) expect([...(c.multi?.missed ?? [])].sort(), where).toEqual([...(want['missed'] as string[])].sort());
        if (want['effects'] !== undefined) {
          const events = await loadEvents(store, caseId);
          const kinds = events.filter((e) => e.seq > effectsSeen).flatMap((e) => effectsOf(e).map((x) => x.kind));
          const wanted = want['effects'] as string[];
          if (wanted.length === 0) expect(kinds, where).toEqual([]);
          for (const k of wanted) expect(kinds, where).toContain(k);
          effectsSeen = events.length;
        }
      } else {
        throw new Error(`unknown step ${where}`);
      }
    }
  });
});
