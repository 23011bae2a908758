/**
 * The KPI query: one statement over the events and cases of one workflow, grouped by org unit
 * (with descendants), category and period. `engine/kpis.ts` validates the spec and the query and
 * documents what each figure means; this module only turns them into SQL (Postgres 15).
 *
 * Every fact comes from the event log, not from the snapshot columns, because the log is what
 * auditors trust: a case's start time and starting unit are its first event's (`cases.created_at`
 * is the database's clock, not the engine's), "responded" and "resolved" are the first events of
 * a kind, and a missed deadline is a fired deadline timer. Only the category is read from the
 * case's current data (a field an event may set after the start, like 网格事件's 类别).
 */
import { CompiledQuery, sql } from 'kysely';
import type { OpenedDatabase } from './open.ts';

/**
 * When a rating counts as satisfied; every condition given must hold.
 * @example const satisfied: KpiSatisfiedSql = { atLeast: { 群众是否满意: 3 }, meanAtLeast: 3 };
 */
export interface KpiSatisfiedSql {
  /** The rating value equals this (a boolean, text or number rating). */
  readonly equals?: string | number | boolean;
  /** Each named dimension is a number ≥ its bound. */
  readonly atLeast: Readonly<Record<string, number>>;
  /** The mean of `dimensions` is ≥ this. */
  readonly meanAtLeast?: number;
}

/** The KPI statement's inputs, already checked by `engine/kpis.ts`; see {@link kpiRows} for an example. */
export interface KpiSqlQuery {
  readonly workflow: string;
  readonly responseEvents: readonly string[];
  /** States whose deadline timer, fired before the first response, makes the response late. */
  readonly responseDeadlineStates: readonly string[];
  readonly resolvedStates: readonly string[];
  /** States whose deadline timer, fired before the resolution, makes it late; null: every state. */
  readonly onTimeDeadlineStates: readonly string[] | null;
  readonly rating: {
    readonly event: string;
    /** The payload field holding the rating; null: the whole payload. */
    readonly field: string | null;
    readonly dimensions: readonly string[];
    readonly satisfied: KpiSatisfiedSql;
  } | null;
  readonly categoryField: string | null;
  readonly groupByUnit: boolean;
  readonly groupByCategory: boolean;
  /** `date_trunc` field of the period grouping, or null for no period grouping. */
  readonly period: 'day' | 'week' | 'month' | null;
  /** Only cases started in this unit or below it (and, grouped by unit, only this subtree's rows). */
  readonly unit: string | null;
  /** Start time bounds, ISO: `from` inclusive, `to` exclusive. */
  readonly from: string | null;
  readonly to: string | null;
  readonly timeZone: string;
}

/**
 * One group's figures as the statement returns them (`KpiRow` of engine/kpis.ts, with the mean
 * ratings as a list).
 * @example const [row] = await kpiRows(store, query); // row.meanRatings[0] is the first dimension's mean
 */
export interface KpiSqlRow {
  readonly unit?: string;
  readonly category?: string | null;
  readonly period?: string;
  readonly cases: number;
  readonly responded: number;
  /** Null only for an ungrouped query that selected no case. */
  readonly responseRate: number | null;
  readonly resolved: number;
  readonly onTime: number;
  readonly onTimeRate: number | null;
  readonly rated: number;
  readonly satisfied: number;
  readonly satisfactionRate: number | null;
  /** By dimension, in the order of `rating.dimensions`. */
  readonly meanRatings: readonly (number | null)[];
  readonly meanHandlingHours: number | null;
}

/**
 * The state a deadline timer event belongs to. Timer events are typed
 * `xstate.after.<key>.<machine>.<state>`, and the compiler names a deadline's key `<state>/t<n>`
 * and a multi-unit step's join deadline `<state>/w` (reminders are `<state>/r<n>_<m>`; see
 * `TimerSpec.key` in dsl/compile.ts). State names cannot contain `/` or `.`.
 */
const DEADLINE_STATE_PATTERN = '^xstate\\.after\\.([^/]+)/(?:t[0-9]+|w)\\.';

type Param = string | number | boolean | null;

/**
 * The KPI rows of one workflow, grouped as asked, ordered by unit, category and period.
 *
 * @example
 * ```ts
 * const rows = await kpiRows(store, {
 *   workflow: '五单服务', responseEvents: ['接单'], responseDeadlineStates: ['待接单'], resolvedStates: ['办结'],
 *   onTimeDeadlineStates: null, rating: null, categoryField: '类别', groupByUnit: true, groupByCategory: false,
 *   period: null, unit: '龙形街道', from: null, to: null, timeZone: 'Asia/Shanghai',
 * });
 * ```
 */
export async function kpiRows(store: OpenedDatabase, q: KpiSqlQuery): Promise<KpiSqlRow[]> {
  const values: Param[] = [];
  const cache = new Map<string, string>();
  // Every parameter carries its cast, so one value used as text and as a number never shares a slot.
  const p = (v: Param, cast: string): string => {
    const key = `${cast}\u0000${JSON.stringify(v)}`;
    let ref = cache.get(key);
    if (ref === undefined) {
      values.push(v);
      ref = `$${values.length}::${cast}`;
      cache.set(key, ref);
    }
    return ref;
  };
  const list = (xs: readonly string[]): string => p(JSON.stringify(xs), 'jsonb');
  const deadlineState = `substring(e.type from ${p(DEADLINE_STATE_PATTERN, 'text')})`;

  const rating = q.rating;
  const ratingValue = rating === null ? 'null::jsonb' : rating.field === null ? 'm.rating_payload' : `m.rating_payload -> ${p(rating.field, 'text')}`;
  const num = (dim: string): string =>
    `(case when jsonb_typeof(f.rating -> ${p(dim, 'text')}) = 'number' then (f.rating ->> ${p(dim, 'text')})::float8 end)`;
  const conditions: string[] = [];
  if (rating !== null) {
    const s = rating.satisfied;
    if (s.equals !== undefined) conditions.push(`f.rating = ${p(JSON.stringify(s.equals), 'jsonb')}`);
    for (const [dim, bound] of Object.entries(s.atLeast)) conditions.push(`${num(dim)} >= ${p(bound, 'float8')}`);
    if (s.meanAtLeast !== undefined && rating.dimensions.length > 0) {
      conditions.push(`(${rating.dimensions.map(num).join(' + ')}) / ${rating.dimensions.length} >= ${p(s.meanAtLeast, 'float8')}`);
    }
  }
  // A rating missing a dimension a condition needs is not satisfied (null → false).
  const satisfied = conditions.length === 0 ? 'false' : `coalesce(${conditions.join(' and ')}, false)`;

  const ctes: string[] = [];
  if (q.unit !== null) {
    ctes.push(`scope (id) as (
      select id from org_units where id = ${p(q.unit, 'text')}
      union all
      select o.id from org_units o join scope s on o.parent_id = s.id
    )`);
  }
  const startFilters = [
    `d.name = ${p(q.workflow, 'text')}`,
    ...(q.from === null ? [] : [`s.recorded_at >= ${p(q.from, 'timestamptz')}`]),
    ...(q.to === null ? [] : [`s.recorded_at < ${p(q.to, 'timestamptz')}`]),
    ...(q.unit === null ? [] : ['s.org_unit_id in (select id from scope)']),
  ];
  ctes.push(`started as (
    select c.id as case_id, s.org_unit_id as unit, s.recorded_at as started_at, c.data
    from cases c
    join definitions d on d.id = c.definition_id
    join events s on s.case_id = c.id and s.seq = 1
    where ${startFilters.join(' and ')}
  )`);
  // Sequence numbers, not times, order events within a case: exact even when two share a time.
  const onTimeDeadline = q.onTimeDeadlineStates === null ? `${deadlineState} is not null` : `${list(q.onTimeDeadlineStates)} ? ${deadlineState}`;
  // One pass over the cases' events: the first response, the first resolution (and when), the last
  // rating (and what it said), each found by sequence number within the case. Materialized: on
  // tables not yet analyzed the planner took `started` for one row and, inlined, ran this whole
  // aggregate again for every case (200 cases: seconds a query).
  const resolvedCond = `${list(q.resolvedStates)} ? (e.resulting_state ->> 'state')`;
  const ratingCond = rating === null ? null : `e.type = ${p(rating.event, 'text')}`;
  ctes.push(`marked as materialized (
    select e.case_id,
      min(e.seq) filter (where ${list(q.responseEvents)} ? e.type) as response_seq,
      min(e.seq) filter (where ${list(q.responseDeadlineStates)} ? ${deadlineState}) as response_deadline_seq,
      min(e.seq) filter (where ${resolvedCond}) as resolved_seq,
      (array_agg(e.recorded_at order by e.seq) filter (where ${resolvedCond}))[1] as resolved_at,
      min(e.seq) filter (where ${onTimeDeadline}) as deadline_seq,
      ${ratingCond === null ? 'null::jsonb' : `(array_agg(e.payload order by e.seq desc) filter (where ${ratingCond}))[1]`} as rating_payload
    from started w
    join events e on e.case_id = w.case_id
    group by e.case_id
  )`);
  ctes.push(`facts as (
    select w.case_id, w.unit, w.started_at, w.data,
      (m.response_seq is not null and (m.response_deadline_seq is null or m.response_deadline_seq > m.response_seq)) as responded,
      (m.resolved_seq is not null) as resolved,
      (m.resolved_seq is not null and (m.deadline_seq is null or m.deadline_seq > m.resolved_seq)) as on_time,
      m.resolved_at,
      ${ratingValue} as rating
    from started w
    join marked m on m.case_id = w.case_id
  )`);
  ctes.push(`judged as (
    select f.*, (f.rating is not null and jsonb_typeof(f.rating) <> 'null') as rated, ${satisfied} as satisfied
    from facts f
  )`);
  if (q.groupByUnit) {
    // Upwards from the units cases started in: a case counts for its unit and every ancestor.
    ctes.push(`ancestors (unit, ancestor) as (
      select distinct unit, unit from started
      union all
      select a.unit, o.parent_id from ancestors a join org_units o on o.id = a.ancestor where o.parent_id is not null
    )`);
  }

  const keys: string[] = [];
  if (q.groupByUnit) keys.push('a.ancestor as unit');
  if (q.groupByCategory) keys.push(q.categoryField === null ? 'null::text as category' : `f.data ->> ${p(q.categoryField, 'text')} as category`);
  if (q.period !== null) {
    keys.push(`to_char(date_trunc(${p(q.period, 'text')}, f.started_at at time zone ${p(q.timeZone, 'text')}), 'YYYY-MM-DD') as period`);
  }
  const dims = rating?.dimensions ?? [];
  const figures = [
    'count(*)::int as cases',
    '(count(*) filter (where f.responded))::int as responded',
    '(count(*) filter (where f.responded))::float8 / nullif(count(*), 0) as response_rate',
    '(count(*) filter (where f.resolved))::int as resolved',
    '(count(*) filter (where f.on_time))::int as on_time',
    '(count(*) filter (where f.on_time))::float8 / nullif(count(*) filter (where f.resolved), 0) as on_time_rate',
    '(count(*) filter (where f.rated))::int as rated',
    '(count(*) filter (where f.rated and f.satisfied))::int as satisfied',
    '(count(*) filter (where f.rated and f.satisfied))::float8 / nullif(count(*) filter (where f.rated), 0) as satisfaction_rate',
    ...dims.map((d, i) => `avg(${num(d)}) filter (where f.rated) as mean_${i}`),
    `(avg(extract(epoch from f.resolved_at - f.started_at)) filter (where f.resolved) / 3600)::float8 as mean_handling_hours`,
  ];
  const from = q.groupByUnit
    ? `judged f join ancestors a on a.unit = f.unit${q.unit === null ? '' : ' where a.ancestor in (select id from scope)'}`
    : 'judged f';
  const positions = keys.map((_, i) => String(i + 1)).join(', ');
  const text = `with recursive ${ctes.join(',\n')}
    select ${[...keys, ...figures].join(',\n      ')}
    from ${from}
    ${keys.length === 0 ? '' : `group by ${positions} order by ${positions}`}`;

  // The planner cannot see how many events a case has, so it overestimates this statement a
  // hundredfold, and above its cost thresholds Postgres compiles it with JIT first: at 100,000
  // cases that took 2.7 s of a 4.9 s answer. Its sorts and hashes also spilled to disk at the
  // default work_mem. Both are set for this statement's transaction only.
  const rows = await store.db.transaction().execute(async (trx) => {
    await sql`set local jit = off`.execute(trx);
    await sql`set local work_mem = '64MB'`.execute(trx);
    return (await trx.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, [...values]))).rows;
  });
  // Without grouping, an empty selection still gives one row of zeros (count(*) over no rows).
  return rows.map((r) => ({
    ...(q.groupByUnit ? { unit: String(r['unit']) } : {}),
    ...(q.groupByCategory ? { category: r['category'] === null || r['category'] === undefined ? null : String(r['category']) } : {}),
    ...(q.period === null ? {} : { period: String(r['period']) }),
    cases: Number(r['cases']),
    responded: Number(r['responded']),
    responseRate: numberOrNull(r['response_rate']),
    resolved: Number(r['resolved']),
    onTime: Number(r['on_time']),
    onTimeRate: numberOrNull(r['on_time_rate']),
    rated: Number(r['rated']),
    satisfied: Number(r['satisfied']),
    satisfactionRate: numberOrNull(r['satisfaction_rate']),
    meanRatings: dims.map((_, i) => numberOrNull(r[`mean_${i}`])),
    meanHandlingHours: numberOrNull(r['mean_handling_hours']),
  }));
}

function numberOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}
