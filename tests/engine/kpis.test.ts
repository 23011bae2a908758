/**
 * KPIs in SQL against figures computed by hand (issue 3's acceptance): 220 五单服务 cases are
 * generated from a seeded PRNG and driven through the real engine under the injected clock —
 * deadlines missed on purpose fire as timers — and every grouping the KPI query offers is
 * compared with the same figures computed here in plain TypeScript from the generated plans.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { checkSource } from '../../dsl/check.ts';
import { compile } from '../../dsl/compile.ts';
import type { Calendar } from '../../engine/calendar.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { checkKpiSpec, kpis, parseKpiSpecs, type KpiGroup, type KpiPeriod, type KpiRow, type KpiSpec } from '../../engine/kpis.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { runDueTimers } from '../../engine/timers.ts';
import { openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const H = 3_600_000;
const DIMENSIONS = ['完成是否到位', '推进是否有力', '成效是否明显', '群众是否满意'] as const;

interface FixtureFile {
  units: { id: string; parent?: string; level: string; name?: string }[];
  actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[];
}
const FIXTURE = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as FixtureFile;
const PARENT = new Map(FIXTURE.units.map((u) => [u.id, u.parent ?? null]));
const SPECS = parseKpiSpecs(YAML.parse(readFileSync(path.join(ROOT, 'workflows/kpis.yaml'), 'utf8')));
const WUDAN_SPEC = SPECS['五单服务']!;

// ---- the generated fixture ------------------------------------------------------------------

/** mulberry32: small, seeded, good enough to vary a fixture reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Where a case can start (a community or one of its grids) and who dispatches there. */
const START_UNITS = [
  { unit: '永乐社区', community: '永乐社区', secretary: '社区书记张' },
  { unit: '永乐社区第一网格', community: '永乐社区', secretary: '社区书记张' },
  { unit: '永乐社区第二网格', community: '永乐社区', secretary: '社区书记张' },
  { unit: '滨江社区', community: '滨江社区', secretary: '社区书记刘' },
  { unit: '滨江社区第一网格', community: '滨江社区', secretary: '社区书记刘' },
  { unit: '南泉社区', community: '南泉社区', secretary: '社区书记陈' },
  { unit: '南泉社区第一网格', community: '南泉社区', secretary: '社区书记陈' },
] as const;
/** Units an order can be dispatched to, with their secretary and party members. */
const SERVING_UNITS = [
  { id: '县卫健局', secretary: '卫健局书记钱', members: ['党员李', '党员杨'] },
  { id: '县城管局', secretary: '城管局局长冯', members: ['党员马'] },
  { id: '县供电公司', secretary: '供电公司书记田', members: ['党员石'] },
] as const;
const CATEGORIES = ['维修', '养老', '环境', '平安', '其他'] as const;

type Rating = Record<(typeof DIMENSIONS)[number], number>;

interface Step {
  readonly at: number;
  readonly type: string;
  readonly actor: string;
  readonly payload: Record<string, unknown>;
}

/** One generated case: what will be sent, and what it means for the KPIs, known before it runs. */
interface Plan {
  readonly id: string;
  readonly unit: string;
  readonly community: string;
  readonly category: string;
  readonly submitter: string;
  readonly startAt: number;
  readonly steps: Step[];
  /** The state it must end in (a check that the plan ran as planned). */
  finalState: string;
  /** Accepted (接单) at all. */
  accepted: boolean;
  /** A 待派单 deadline (2 working days) passed before the acceptance. */
  lateDispatch: boolean;
  /** A 24-hour 待接单 deadline passed before the acceptance. */
  lateAccept: boolean;
  /** A 待抢单 or 办理中 deadline passed (before the resolution). */
  lateHandling: boolean;
  /** Closed by the 3-working-day 待评价 timer without a rating (默认好评). */
  closedByTimer: boolean;
  resolvedAt: number | null;
  /** The latest rating sent. */
  rating: Rating | null;
  /** When the simulation must have reached for this plan to be complete. */
  endAt: number;
}

const WINDOW_START = Date.parse('2026-03-02T00:00:00+08:00');
const WINDOW_HOURS = 56 * 24;
/** Starts placed on purpose at period edges: a month boundary and a week boundary that UTC sees a day earlier. */
const EDGE_STARTS = ['2026-03-31T22:00:00+08:00', '2026-04-01T02:00:00+08:00', '2026-03-09T03:00:00+08:00', '2026-03-08T23:00:00+08:00'].map(Date.parse);

function generate(count: number, seed: number, calendar: Calendar): Plan[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  // Delays are whole hours and stay clear of every deadline: a stage is either inside its
  // deadline (dispatch ≤ 40 h of 2 working days, acceptance ≤ 23 h of 24 h, claim ≤ 10 h of 1
  // working day, handling ≤ 48 h of 3 working days, rating ≤ 40 h of 3 working days — some past
  // a reminder, which is not a missed deadline) or well past it (acceptance 26–40 h; dispatch or
  // handling ≥ 240 h, longer than 2 or 3 working days can last in March–May 2026, holidays
  // included), so whether a deadline fired is known without a calendar. N working days are never
  // shorter than N × 24 hours.
  const acceptDelay = (): { hours: number; late: boolean } => (rnd() < 0.15 ? { hours: int(26, 40), late: true } : { hours: int(1, 23), late: false });
  const rating = (): Rating => {
    const dim = (): number => (rnd() < 0.75 ? int(4, 5) : int(1, 3));
    return { 完成是否到位: dim(), 推进是否有力: dim(), 成效是否明显: dim(), 群众是否满意: dim() };
  };

  const plans: Plan[] = [];
  for (let i = 0; i < count; i++) {
    const where = pick(START_UNITS);
    const startAt = EDGE_STARTS[i] ?? WINDOW_START + int(0, WINDOW_HOURS) * H;
    const p: Plan = {
      id: `kpi-${String(i).padStart(3, '0')}`, unit: where.unit, community: where.community, category: pick(CATEGORIES),
      submitter: `居民${i}`, startAt, steps: [], finalState: '待派单', accepted: false, lateDispatch: false, lateAccept: false,
      lateHandling: false, closedByTimer: false, resolvedAt: null, rating: null, endAt: startAt,
    };
    plans.push(p);
    let t = startAt;
    const send = (hours: number, type: string, actor: string, payload: Record<string, unknown> = {}): void => {
      t += hours * H;
      p.steps.push({ at: t, type, actor, payload });
      p.endAt = t;
    };
    const fate = rnd();
    if (fate < 0.05) {
      send(int(1, 20), '撤单', p.submitter, { 原因: '问题已自行解决' });
      p.finalState = '已撤单';
      continue;
    }
    if (fate < 0.08) continue; // never dispatched
    const lateDispatch = rnd() < 0.06;
    p.lateDispatch = lateDispatch;
    let serving = pick(SERVING_UNITS);
    send(lateDispatch ? int(240, 280) : int(1, 40), '派单', where.secretary, { 单位: serving.id });
    p.finalState = '待接单';
    const variant = rnd();
    if (variant < 0.2) {
      // Returned (退单) or reassigned (改派) first: that stretch of waiting has its own deadline.
      const wait = acceptDelay();
      p.lateAccept ||= wait.late;
      const other = pick(SERVING_UNITS.filter((u) => u.id !== serving.id));
      if (variant < 0.1) {
        send(wait.hours, '退单', serving.secretary, { 原因: '不属于本单位职责范围' });
        send(int(1, 20), '派单', where.secretary, { 单位: other.id });
      } else {
        send(wait.hours, '改派', where.secretary, { 单位: other.id });
      }
      serving = other;
    }
    if (rnd() < 0.04 && startAt > WINDOW_START + (WINDOW_HOURS - 72) * H) continue; // never accepted (late in the window: its 24-hour timer keeps firing)
    const wait = acceptDelay();
    p.lateAccept ||= wait.late;
    send(wait.hours, '接单', serving.secretary);
    p.accepted = true;
    const member = pick(serving.members);
    send(int(1, 10), '抢单', member);
    p.finalState = '办理中';
    if (rnd() < 0.04) continue; // never completed
    for (let round = 1; ; round++) {
      const late = rnd() < 0.06;
      p.lateHandling ||= late;
      send(late ? int(240, 270) : int(2, 48), '完成', member, { 办理情况: '已上门办理完毕', 服务小时: int(1, 8) });
      if (rnd() < 0.08) {
        // Not rated: the 3-working-day 待评价 deadline closes it as satisfied by default.
        p.closedByTimer = true;
        p.finalState = '办结';
        p.resolvedAt = calendar.addWorkdays(t, 3);
        p.endAt = p.resolvedAt;
        break;
      }
      const r = rating();
      send(int(1, 40), '评价', p.submitter, { 评分: r });
      p.rating = r;
      if (r.群众是否满意 >= 3 && mean(Object.values(r)) >= 3) {
        p.finalState = '办结';
        p.resolvedAt = t;
        break;
      }
      p.finalState = '办理中'; // unsatisfied: back to the member
      if (round === 3 || rnd() < 0.3) break;
    }
  }
  return plans;
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

// ---- the figures by hand --------------------------------------------------------------------

/** How the hand computation reads a spec: which lateness counts, what is satisfied. */
interface HandSpec {
  respondedInTime(p: Plan): boolean;
  onTime(p: Plan): boolean;
  satisfied(r: Rating): boolean;
  readonly dimensions: readonly string[];
}

const HAND_SEED_SPEC: HandSpec = {
  // workflows/kpis.yaml: late if the 待派单 or 待接单 deadline passed before 接单.
  respondedInTime: (p) => p.accepted && !p.lateDispatch && !p.lateAccept,
  // Deadlines of 待派单, 待接单, 待抢单 and 办理中 count; 待评价's (the resident's) does not.
  onTime: (p) => p.resolvedAt !== null && !p.lateDispatch && !p.lateAccept && !p.lateHandling,
  satisfied: (r) => r.群众是否满意 >= 3 && mean(Object.values(r)) >= 3,
  dimensions: DIMENSIONS,
};

function ancestors(unit: string): string[] {
  const out: string[] = [];
  for (let u: string | null = unit; u !== null; u = PARENT.get(u) ?? null) out.push(u);
  return out;
}

/** The local date (UTC+8, no daylight saving in China) a period starts on. */
function periodOf(ms: number, period: KpiPeriod): string {
  const local = new Date(ms + 8 * H);
  const y = local.getUTCFullYear();
  const m = local.getUTCMonth();
  const d = local.getUTCDate();
  const day = (date: Date): string => date.toISOString().slice(0, 10);
  if (period === 'month') return day(new Date(Date.UTC(y, m, 1)));
  if (period === 'day') return day(new Date(Date.UTC(y, m, d)));
  return day(new Date(Date.UTC(y, m, d - ((local.getUTCDay() + 6) % 7)))); // weeks start on Monday
}

interface HandQuery {
  readonly groupBy?: readonly KpiGroup[];
  readonly unit?: string;
  readonly from?: string;
  readonly to?: string;
  readonly period?: KpiPeriod;
}

function byHand(plans: readonly Plan[], spec: HandSpec, q: HandQuery): KpiRow[] {
  const groupBy = q.groupBy ?? [];
  const from = q.from === undefined ? -Infinity : Date.parse(q.from);
  const to = q.to === undefined ? Infinity : Date.parse(q.to);
  const selected = plans.filter((p) => p.startAt >= from && p.startAt < to && (q.unit === undefined || ancestors(p.unit).includes(q.unit)));
  const groups = new Map<string, { key: Partial<KpiRow>; plans: Plan[] }>();
  // Ungrouped, the query answers one row even when nothing is selected.
  if (groupBy.length === 0) groups.set(JSON.stringify([undefined, undefined, undefined]), { key: {}, plans: [] });
  for (const p of selected) {
    const units = groupBy.includes('unit')
      ? ancestors(p.unit).filter((u) => q.unit === undefined || ancestors(u).includes(q.unit!))
      : [undefined];
    for (const unit of units) {
      const key: { unit?: string; category?: string; period?: string } = {};
      if (unit !== undefined) key.unit = unit;
      if (groupBy.includes('category')) key.category = p.category;
      if (groupBy.includes('period')) key.period = periodOf(p.startAt, q.period ?? 'month');
      const k = JSON.stringify([key.unit, key.category, key.period]);
      let g = groups.get(k);
      if (g === undefined) groups.set(k, (g = { key, plans: [] }));
      g.plans.push(p);
    }
  }
  return [...groups.values()].map(({ key, plans: ps }) => {
    const resolved = ps.filter((p) => p.resolvedAt !== null);
    const rated = ps.filter((p) => p.rating !== null);
    const responded = ps.filter((p) => spec.respondedInTime(p)).length;
    const onTime = resolved.filter((p) => spec.onTime(p)).length;
    const satisfied = rated.filter((p) => spec.satisfied(p.rating!)).length;
    return {
      ...key,
      cases: ps.length,
      responded,
      responseRate: ps.length === 0 ? null : responded / ps.length,
      resolved: resolved.length,
      onTime,
      onTimeRate: resolved.length === 0 ? null : onTime / resolved.length,
      rated: rated.length,
      satisfied,
      satisfactionRate: rated.length === 0 ? null : satisfied / rated.length,
      meanRatings: Object.fromEntries(spec.dimensions.map((d) => [d, rated.length === 0 ? null : mean(rated.map((p) => p.rating![d as keyof Rating]))])),
      meanHandlingHours: resolved.length === 0 ? null : mean(resolved.map((p) => p.resolvedAt! - p.startAt)) / H,
    };
  });
}

function rowKey(r: KpiRow): string {
  return JSON.stringify([r.unit, r.category, r.period]);
}

/** Same groups, same counts, and every figure equal to 1e-9. */
function expectSameRows(actual: readonly KpiRow[], expected: readonly KpiRow[]): void {
  const sort = (rows: readonly KpiRow[]): KpiRow[] => [...rows].sort((a, b) => (rowKey(a) < rowKey(b) ? -1 : rowKey(a) > rowKey(b) ? 1 : 0));
  const a = sort(actual);
  const e = sort(expected);
  expect(a.map(rowKey)).toEqual(e.map(rowKey));
  const close = (x: number | null | undefined, y: number | null | undefined, what: string): void => {
    if (x === null || y === null || x === undefined || y === undefined) expect(x, what).toBe(y);
    else expect(Math.abs(x - y), `${what}: ${x} vs ${y}`).toBeLessThanOrEqual(1e-9);
  };
  e.forEach((row, i) => {
    const got = a[i]!;
    const where = rowKey(row);
    expect({ cases: got.cases, responded: got.responded, resolved: got.resolved, onTime: got.onTime, rated: got.rated, satisfied: got.satisfied }, where)
      .toEqual({ cases: row.cases, responded: row.responded, resolved: row.resolved, onTime: row.onTime, rated: row.rated, satisfied: row.satisfied });
    close(got.responseRate, row.responseRate, `${where} responseRate`);
    close(got.onTimeRate, row.onTimeRate, `${where} onTimeRate`);
    close(got.satisfactionRate, row.satisfactionRate, `${where} satisfactionRate`);
    close(got.meanHandlingHours, row.meanHandlingHours, `${where} meanHandlingHours`);
    expect(Object.keys(got.meanRatings), where).toEqual(Object.keys(row.meanRatings));
    for (const d of Object.keys(row.meanRatings)) close(got.meanRatings[d], row.meanRatings[d], `${where} ${d}`);
  });
}

// ---- running it through the engine ------------------------------------------------------------

let store: OpenedDatabase;
let engine: Engine;
let now = WINDOW_START;
let plans: Plan[] = [];
let timerEvents = 0;

async function nextDue(): Promise<number | null> {
  const [row] = await store.query<{ due: number | null }>(`select (extract(epoch from min(due_at)) * 1000)::float8 as due from timers where state = 'scheduled'`, []);
  return row?.due ?? null;
}

/** Fires every timer due by `t`, each at its own due time, as a poller that never lags would. */
async function fireTimersUntil(t: number): Promise<void> {
  for (;;) {
    const due = await nextDue();
    if (due === null || due > t) return;
    now = Math.max(now, due);
    timerEvents += await runDueTimers(engine);
  }
}

async function perform(p: Plan, s: Step): Promise<void> {
  if (s.type === 'start') {
    await engine.startCase({
      workflow: '五单服务', caseId: p.id, orgUnit: p.unit, actor: p.submitter,
      data: { 社区: p.community, 姓名: '居民', 电话: '13800000000', 心愿: '希望帮忙解决问题', 类别: p.category },
    });
  } else {
    await engine.sendEvent(p.id, { type: s.type, actor: s.actor, payload: s.payload });
  }
}

beforeAll(async () => {
  store = await openTestDatabase();
  const fixtures = loadFixtures(FIXTURE);
  await upsertOrgUnits(store, FIXTURE.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of FIXTURE.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock: { now: () => now }, calendar: fixtures.calendar });
  const wf = path.join(ROOT, 'workflows/五单服务.wf');
  await engine.deploy(readFileSync(wf, 'utf8'), wf, fileLoader);

  plans = generate(220, 20260302, fixtures.calendar);
  // One timeline: the clock only moves forward; at each instant, due timers fire first, then the
  // cases acting at that instant act concurrently (each case's own steps in order).
  const byTime = new Map<number, { plan: Plan; step: Step }[]>();
  for (const plan of plans) {
    for (const step of [{ at: plan.startAt, type: 'start', actor: plan.submitter, payload: {} }, ...plan.steps]) {
      const list = byTime.get(step.at) ?? [];
      list.push({ plan, step });
      byTime.set(step.at, list);
    }
  }
  for (const t of [...byTime.keys()].sort((a, b) => a - b)) {
    await fireTimersUntil(t);
    now = t;
    const byCase = new Map<string, { plan: Plan; step: Step }[]>();
    for (const a of byTime.get(t)!) byCase.set(a.plan.id, [...(byCase.get(a.plan.id) ?? []), a]);
    await Promise.all([...byCase.values()].map(async (actions) => {
      for (const a of actions) await perform(a.plan, a.step);
    }));
  }
  await fireTimersUntil(Math.max(...plans.map((p) => p.endAt)));
}, 300_000);

afterAll(async () => {
  await store?.close();
});

describe('the generated fixture', () => {
  it('ran as planned: 220 cases, each in the state its plan says, with deadlines missed and every kind of ending', async () => {
    expect(plans.length).toBeGreaterThanOrEqual(200);
    const rows = await store.query<{ id: string; state: string }>(`select id, state #>> '{}' as state from cases where id like 'kpi-%' order by id`, []);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.state]))).toEqual(Object.fromEntries(plans.map((p) => [p.id, p.finalState])));
    // The fixture exercises what the figures depend on.
    const count = (f: (p: Plan) => boolean): number => plans.filter(f).length;
    expect(timerEvents).toBeGreaterThan(0);
    for (const n of [
      count((p) => p.lateDispatch), count((p) => p.lateAccept), count((p) => p.lateHandling), count((p) => p.closedByTimer),
      count((p) => p.finalState === '已撤单'), count((p) => p.finalState === '待派单'), count((p) => p.finalState === '办理中'),
      count((p) => p.rating !== null && !HAND_SEED_SPEC.satisfied(p.rating)), count((p) => p.resolvedAt !== null && HAND_SEED_SPEC.onTime(p)),
    ]) expect(n).toBeGreaterThan(0);
  });
});

describe('KPIs equal the figures computed by hand', () => {
  const cases: [string, HandQuery][] = [
    ['everything, ungrouped', {}],
    ['by unit (with descendants)', { groupBy: ['unit'] }],
    ['by category', { groupBy: ['category'] }],
    ['by month (Asia/Shanghai)', { groupBy: ['period'], period: 'month' }],
    ['by week (from Monday, Asia/Shanghai)', { groupBy: ['period'], period: 'week' }],
    ['by day', { groupBy: ['period'], period: 'day' }],
    ['by unit, category and month', { groupBy: ['unit', 'category', 'period'] }],
    ['by unit within 龙形街道', { groupBy: ['unit'], unit: '龙形街道' }],
    ['ungrouped within 永乐社区', { unit: '永乐社区' }],
    ['by category and week, started in the second half of March', { groupBy: ['category', 'period'], period: 'week', from: '2026-03-16T00:00:00+08:00', to: '2026-04-01T00:00:00+08:00' }],
    ['ungrouped, nothing selected', { from: '2027-01-01T00:00:00+08:00' }],
  ];
  it.each(cases)('%s', async (_, q) => {
    const rows = await kpis(engine, { spec: WUDAN_SPEC, ...q });
    expectSameRows(rows, byHand(plans, HAND_SEED_SPEC, q));
  });

  it('with the spec defaults: the response deadline of 待接单 only, every deadline for on-time, one rating dimension', async () => {
    const spec: KpiSpec = {
      workflow: '五单服务',
      response: { events: ['接单'] },
      resolution: { states: ['办结'] },
      rating: { event: '评价', field: '评分', dimensions: ['群众是否满意'], satisfiedWhen: { atLeast: { 群众是否满意: 3 } } },
      category: '类别',
    };
    const hand: HandSpec = {
      respondedInTime: (p) => p.accepted && !p.lateAccept,
      onTime: (p) => p.resolvedAt !== null && !p.lateDispatch && !p.lateAccept && !p.lateHandling && !p.closedByTimer,
      satisfied: (r) => r.群众是否满意 >= 3,
      dimensions: ['群众是否满意'],
    };
    for (const q of [{ groupBy: ['unit'] }, { groupBy: ['category', 'period'], period: 'month' }] as HandQuery[]) {
      expectSameRows(await kpis(engine, { spec, ...q }), byHand(plans, hand, q));
    }
    // The defaults differ from the seed spec on this fixture, so the test tells them apart.
    const [seed] = await kpis(engine, { spec: WUDAN_SPEC });
    const [defaults] = await kpis(engine, { spec });
    expect(defaults!.responded).toBeGreaterThan(seed!.responded);
    expect(defaults!.onTime).toBeLessThan(seed!.onTime);
    expect(defaults!.satisfied).toBeGreaterThanOrEqual(seed!.satisfied);
  });

  it('counts a case for the unit it started in, not the street it was escalated to', async () => {
    const escalated = plans.filter((p) => p.lateDispatch && p.unit !== '龙形街道' && ancestors(p.unit).includes('龙形街道'));
    expect(escalated.length).toBeGreaterThan(0);
    const rows = await store.query<{ id: string; unit: string }>(`select id, org_unit_id as unit from cases where id like 'kpi-%'`, []);
    const current = new Map(rows.map((r) => [r.id, r.unit]));
    expect(escalated.some((p) => current.get(p.id) !== p.unit)).toBe(true);
    const byUnit = await kpis(engine, { spec: WUDAN_SPEC, groupBy: ['unit'] });
    const grid = byUnit.find((r) => r.unit === '永乐社区第一网格');
    expect(grid?.cases).toBe(plans.filter((p) => p.unit === '永乐社区第一网格').length);
  });
});

describe('KPI specs', () => {
  it('the seed specs in workflows/kpis.yaml fit their workflows', () => {
    expect(Object.keys(SPECS).sort()).toEqual(['五单服务', '五步闭环', '吹哨报到', '网格事件'].sort());
    for (const [name, spec] of Object.entries(SPECS)) {
      const file = path.join(ROOT, `workflows/${name}.wf`);
      const checked = checkSource(readFileSync(file, 'utf8'), file, { load: fileLoader });
      expect(checkKpiSpec(spec, compile(checked.model!)), name).toEqual([]);
    }
  });

  it('names what does not fit a workflow', async () => {
    const def = (await engine.definition('五单服务')).runtime.definition;
    const bad: KpiSpec = {
      workflow: '五单服务',
      response: { events: ['接收'], deadlineStates: ['待接', '办结'] },
      resolution: { states: ['办理中'] },
      rating: { event: '评价', field: '评分', dimensions: ['满意度'], satisfiedWhen: { meanAtLeast: 3 } },
      category: '分类',
    };
    expect(checkKpiSpec(bad, def).map((e) => e.path)).toEqual([
      'response.events[0]', 'response.deadlineStates[0]', 'response.deadlineStates[1]', 'resolution.states[0]', 'rating.dimensions[0]', 'category',
    ]);
    const e = await kpis(engine, { spec: bad }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('VALIDATION_FAILED');
    expect(((e as EngineError).details['fields'] as { path: string }[])[0]?.path).toBe('spec.response.events[0]');
  });

  it('refuses malformed spec files and queries', async () => {
    const codeOf = async (f: () => unknown): Promise<string | undefined> => {
      try {
        await f();
      } catch (e) {
        return e instanceof EngineError ? e.code : String(e);
      }
      return undefined;
    };
    expect(await codeOf(() => parseKpiSpecs({ 五单服务: { response: { events: ['接单'], deadline: [] }, resolution: { states: ['办结'] } } }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => parseKpiSpecs({ 五单服务: { response: { events: [] }, resolution: { states: ['办结'] } } }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => kpis(engine, { spec: WUDAN_SPEC, groupBy: ['grid' as KpiGroup] }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => kpis(engine, { spec: WUDAN_SPEC, from: 'yesterday' }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => kpis(engine, { spec: { ...WUDAN_SPEC, category: undefined } as KpiSpec, groupBy: ['category'] }))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => kpis(engine, { spec: WUDAN_SPEC, unit: '没有的单位' }))).toBe('ORG_UNIT_NOT_FOUND');
    expect(await codeOf(() => kpis(engine, { spec: { ...WUDAN_SPEC, workflow: '没有的流程' } }))).toBe('DEFINITION_NOT_FOUND');
  });
});
