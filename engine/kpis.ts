/**
 * KPIs (考核指标, the "three rates" and more) of any workflow, computed in SQL from what the
 * engine records. A small per-workflow {@link KpiSpec} says which event counts as the response,
 * which final states are resolutions, which deadlines count, and where the rating is; the seed
 * workflows' specs are in `workflows/kpis.yaml`. Definitions: docs/engine.md, "KPIs".
 *
 * Every figure is about the cases *started* in the selection (by the start event's time and
 * unit), whatever happened to them later:
 * - response rate = cases whose first response event came before any deadline timer of the
 *   response deadline states fired, over all cases;
 * - on-time rate = resolved cases that reached a resolved state before any deadline timer of the
 *   on-time deadline states fired, over resolved cases;
 * - satisfaction rate = cases whose latest rating is satisfied, over rated cases; mean rating per
 *   dimension over rated cases;
 * - mean handling time = mean of (resolution event time − start event time), in hours.
 * Working days are honoured because a deadline is "missed" exactly when its timer fired, and the
 * engine armed that timer with the working-day calendar.
 */
import type { CompiledDefinition } from '../dsl/compile.ts';
import { didYouMean } from '../dsl/suggest.ts';
import type { FieldType } from '../dsl/types.ts';
import type { FieldError } from '../dsl/values.ts';
import type { Engine } from './engine.ts';
import { EngineError } from './errors.ts';
import { kpiRows, type KpiSqlRow } from './store/kpis.ts';

/**
 * When a rating counts as satisfied. Every condition given must hold; at least one is needed.
 *
 * @example
 * ```ts
 * const wudan: KpiSatisfiedWhen = { atLeast: { 群众是否满意: 3 }, meanAtLeast: 3 };
 * const yesNo: KpiSatisfiedWhen = { equals: true };
 * ```
 */
export interface KpiSatisfiedWhen {
  /** The rating itself equals this: for a yes/no or one-of rating. */
  readonly equals?: string | number | boolean;
  /** Each named dimension of the rating is a number at least this. */
  readonly atLeast?: Readonly<Record<string, number>>;
  /** The mean of the rating's `dimensions` is at least this. */
  readonly meanAtLeast?: number;
}

/**
 * Where a case's rating is: the payload of its latest `event` (a case rated again after an
 * unsatisfied rating counts with its last rating).
 *
 * @example
 * ```ts
 * const rating: KpiRatingSpec = { event: '评价', field: '评分', dimensions: ['群众是否满意'], satisfiedWhen: { atLeast: { 群众是否满意: 3 } } };
 * ```
 */
export interface KpiRatingSpec {
  readonly event: string;
  /** The payload field holding the rating; without it, the whole payload is the rating. */
  readonly field?: string;
  /** Numeric fields of the rating to average per dimension. */
  readonly dimensions?: readonly string[];
  readonly satisfiedWhen: KpiSatisfiedWhen;
}

/**
 * What the KPIs of one workflow are made of. Names are the workflow's own events, states and
 * fields; {@link checkKpiSpec} checks them against a definition.
 *
 * @example
 * ```ts
 * const spec: KpiSpec = {
 *   workflow: '五单服务',
 *   response: { events: ['接单'], deadlineStates: ['待派单', '待接单'] },
 *   resolution: { states: ['办结'], deadlineStates: ['待派单', '待接单', '待抢单', '办理中'] },
 *   rating: { event: '评价', field: '评分', dimensions: ['完成是否到位', '群众是否满意'], satisfiedWhen: { atLeast: { 群众是否满意: 3 } } },
 *   category: '类别',
 * };
 * ```
 */
export interface KpiSpec {
  readonly workflow: string;
  readonly response: {
    /** A case has responded at its first event of one of these types. */
    readonly events: readonly string[];
    /**
     * The response is late if a deadline of one of these states fired before it. Default: the
     * states in which a response event is accepted (in the newest version).
     */
    readonly deadlineStates?: readonly string[];
  };
  readonly resolution: {
    /** Final states that count as resolved (办结, 销号); other final states (撤单) do not. */
    readonly states: readonly string[];
    /** The resolution is late if a deadline of one of these states fired before it. Default: every state. */
    readonly deadlineStates?: readonly string[];
  };
  /** Without one, no case is rated. */
  readonly rating?: KpiRatingSpec;
  /** The case data field to group by category. */
  readonly category?: string;
}

/**
 * What rows can be grouped by; see {@link kpis}.
 * @example const groupBy: KpiGroup[] = ['unit', 'period'];
 */
export type KpiGroup = 'unit' | 'category' | 'period';

/**
 * The length of a period row.
 * @example const period: KpiPeriod = 'week'; // rows labelled by their Monday, e.g. '2026-03-09'
 */
export type KpiPeriod = 'day' | 'week' | 'month';

/**
 * @example
 * ```ts
 * const q: KpiQuery = { spec, groupBy: ['unit', 'period'], unit: '龙形街道', period: 'week', from: '2026-03-01T00:00:00+08:00' };
 * ```
 */
export interface KpiQuery {
  readonly spec: KpiSpec;
  /** Default: none, one row for the whole selection. */
  readonly groupBy?: readonly KpiGroup[];
  /** Only cases started in this unit or below; grouped by unit, only this unit and its descendants. */
  readonly unit?: string;
  /** Only cases started at or after this instant (ISO-8601). */
  readonly from?: string;
  /** Only cases started before this instant (ISO-8601). */
  readonly to?: string;
  /** The length of a period when grouping by period (default month; weeks start on Monday). */
  readonly period?: KpiPeriod;
  /** The time zone periods are cut in (default: the engine calendar's, Asia/Shanghai). */
  readonly timeZone?: string;
}

/**
 * One group's figures. Rates are shares in [0, 1]; null where there is nothing to divide by.
 *
 * @example
 * ```ts
 * const row: KpiRow = { unit: '永乐社区', cases: 40, responded: 36, responseRate: 0.9, resolved: 30, onTime: 27, onTimeRate: 0.9,
 *   rated: 25, satisfied: 24, satisfactionRate: 0.96, meanRatings: { 群众是否满意: 4.6 }, meanHandlingHours: 52.5 };
 * ```
 */
export type KpiRow = Omit<KpiSqlRow, 'meanRatings'> & {
  /** Mean of each rating dimension over rated cases, by dimension. */
  readonly meanRatings: Readonly<Record<string, number | null>>;
};

/**
 * What {@link kpis} needs of an engine (an `Engine` is one).
 * @example const source: KpiEngine = new Engine({ store });
 */
export type KpiEngine = Pick<Engine, 'store' | 'definition' | 'org' | 'workCalendar'>;

const GROUPS: readonly KpiGroup[] = ['unit', 'category', 'period'];
const PERIODS: readonly KpiPeriod[] = ['day', 'week', 'month'];

// ---- the spec's shape ---------------------------------------------------------------------

type Obj = Record<string, unknown>;

class Reader {
  readonly errors: FieldError[] = [];

  fail(path: string, code: FieldError['code'], message: string): undefined {
    this.errors.push({ path, code, message });
    return undefined;
  }

  obj(v: unknown, path: string, keys: readonly string[]): Obj | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return this.fail(path, 'type', `${path || 'The spec'} must be a mapping.`);
    const o = v as Obj;
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) this.fail(join(path, k), 'unknown_field', `Unknown key "${k}". ${didYouMean(k, keys) ?? `Use ${keys.join(', ')}.`}`);
    }
    return o;
  }

  text(v: unknown, path: string): string | undefined {
    if (typeof v === 'string' && v.length > 0) return v;
    return this.fail(path, v === undefined ? 'required' : 'type', `${path} must be a non-empty text.`);
  }

  texts(v: unknown, path: string, nonEmpty: boolean): string[] | undefined {
    if (!Array.isArray(v)) return this.fail(path, v === undefined ? 'required' : 'type', `${path} must be a list of names.`);
    if (nonEmpty && v.length === 0) return this.fail(path, 'length', `${path} must name at least one.`);
    const out = v.map((x, i) => this.text(x, `${path}[${i}]`));
    return out.every((x): x is string => x !== undefined) ? out : undefined;
  }

  number(v: unknown, path: string): number | undefined {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    return this.fail(path, 'type', `${path} must be a number.`);
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function readSatisfied(r: Reader, v: unknown, path: string, dimensions: readonly string[]): KpiSatisfiedWhen | undefined {
  const o = r.obj(v, path, ['equals', 'atLeast', 'meanAtLeast']);
  if (o === undefined) return undefined;
  const out: { equals?: string | number | boolean; atLeast?: Record<string, number>; meanAtLeast?: number } = {};
  const eq = o['equals'];
  if (eq !== undefined) {
    if (typeof eq === 'string' || typeof eq === 'boolean' || (typeof eq === 'number' && Number.isFinite(eq))) out.equals = eq;
    else r.fail(join(path, 'equals'), 'type', `${join(path, 'equals')} must be a text, number or boolean.`);
  }
  if (o['atLeast'] !== undefined) {
    const raw = o['atLeast'];
    // Any dimension name is a valid key here; checkKpiSpec checks the names against the workflow.
    const a = r.obj(raw, join(path, 'atLeast'), typeof raw === 'object' && raw !== null ? Object.keys(raw) : []);
    if (a !== undefined) {
      out.atLeast = {};
      for (const [dim, n] of Object.entries(a)) {
        const bound = r.number(n, join(join(path, 'atLeast'), dim));
        if (bound !== undefined) out.atLeast[dim] = bound;
      }
    }
  }
  if (o['meanAtLeast'] !== undefined) {
    const m = r.number(o['meanAtLeast'], join(path, 'meanAtLeast'));
    if (m !== undefined) out.meanAtLeast = m;
    if (dimensions.length === 0) r.fail(join(path, 'meanAtLeast'), 'required', `${join(path, 'meanAtLeast')} needs the rating's dimensions to average.`);
  }
  if (eq === undefined && o['atLeast'] === undefined && o['meanAtLeast'] === undefined) {
    r.fail(path, 'required', `${path} needs a condition: equals, atLeast or meanAtLeast.`);
  }
  return out;
}

function readSpec(r: Reader, v: unknown, workflow: string, path: string): KpiSpec | undefined {
  const o = r.obj(v, path, ['workflow', 'response', 'resolution', 'rating', 'category']);
  if (o === undefined) return undefined;
  if (o['workflow'] !== undefined && o['workflow'] !== workflow) r.fail(join(path, 'workflow'), 'type', `${join(path, 'workflow')} is "${String(o['workflow'])}" but the spec is for "${workflow}".`);
  const resp = r.obj(o['response'], join(path, 'response'), ['events', 'deadlineStates']);
  const res = r.obj(o['resolution'], join(path, 'resolution'), ['states', 'deadlineStates']);
  const responseEvents = resp === undefined ? undefined : r.texts(resp['events'], join(path, 'response.events'), true);
  const responseStates = resp?.['deadlineStates'] === undefined ? undefined : r.texts(resp['deadlineStates'], join(path, 'response.deadlineStates'), false);
  const resolved = res === undefined ? undefined : r.texts(res['states'], join(path, 'resolution.states'), true);
  const resolutionStates = res?.['deadlineStates'] === undefined ? undefined : r.texts(res['deadlineStates'], join(path, 'resolution.deadlineStates'), false);
  let rating: KpiRatingSpec | undefined;
  if (o['rating'] !== undefined) {
    const rp = join(path, 'rating');
    const ro = r.obj(o['rating'], rp, ['event', 'field', 'dimensions', 'satisfiedWhen']);
    if (ro !== undefined) {
      const event = r.text(ro['event'], join(rp, 'event'));
      const field = ro['field'] === undefined ? undefined : r.text(ro['field'], join(rp, 'field'));
      const dimensions = ro['dimensions'] === undefined ? [] : r.texts(ro['dimensions'], join(rp, 'dimensions'), false);
      const satisfiedWhen = readSatisfied(r, ro['satisfiedWhen'], join(rp, 'satisfiedWhen'), dimensions ?? []);
      if (event !== undefined && dimensions !== undefined && satisfiedWhen !== undefined) {
        rating = { event, ...(field === undefined ? {} : { field }), dimensions, satisfiedWhen };
      }
    }
  }
  const category = o['category'] === undefined ? undefined : r.text(o['category'], join(path, 'category'));
  if (responseEvents === undefined || resolved === undefined) return undefined;
  return {
    workflow,
    response: { events: responseEvents, ...(responseStates === undefined ? {} : { deadlineStates: responseStates }) },
    resolution: { states: resolved, ...(resolutionStates === undefined ? {} : { deadlineStates: resolutionStates }) },
    ...(rating === undefined ? {} : { rating }),
    ...(category === undefined ? {} : { category }),
  };
}

function refuse(what: string, errors: readonly FieldError[]): EngineError {
  return new EngineError('VALIDATION_FAILED', `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { fields: errors });
}

/**
 * Reads a KPI spec file (`workflows/kpis.yaml`, already parsed): a mapping from workflow name to
 * its spec. Unknown keys are refused, so a misspelt key does not silently change a figure.
 * Names are checked against a definition by {@link checkKpiSpec}, not here.
 *
 * @throws {EngineError} VALIDATION_FAILED naming every problem in `details.fields`.
 * @example
 * ```ts
 * const specs = parseKpiSpecs(YAML.parse(readFileSync('workflows/kpis.yaml', 'utf8')));
 * const rows = await kpis(engine, { spec: specs['五单服务']!, groupBy: ['unit'] });
 * ```
 */
export function parseKpiSpecs(raw: unknown): Readonly<Record<string, KpiSpec>> {
  const r = new Reader();
  const out: Record<string, KpiSpec> = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    r.fail('', 'type', 'A KPI spec file is a mapping from workflow name to spec.');
  } else {
    for (const [workflow, v] of Object.entries(raw as Obj)) {
      const spec = readSpec(r, v, workflow, workflow);
      if (spec !== undefined) out[workflow] = spec;
    }
  }
  if (r.errors.length > 0) throw refuse('Invalid KPI specs', r.errors);
  return out;
}

// ---- the spec against a definition ----------------------------------------------------------

function hasDeadline(def: CompiledDefinition, state: string): boolean {
  return def.states[state]?.timers.some((t) => t.kind === 'deadline' || t.kind === 'join-deadline') ?? false;
}

function allEvents(def: CompiledDefinition): Set<string> {
  return new Set(Object.values(def.states).flatMap((s) => Object.keys(s.events)));
}

/** The numeric fields of a rating value's type (a record's number fields). */
function numberFields(type: FieldType | undefined): Set<string> {
  if (type?.type.kind !== 'record') return new Set();
  return new Set(Object.entries(type.type.fields).filter(([, f]) => f.type.kind === 'number').map(([k]) => k));
}

/**
 * The problems of a spec against a workflow definition: events, states and fields it names that
 * the workflow does not have, states it counts deadlines of that have none, resolution states that
 * are not final, rating dimensions that are not numbers. Empty when the spec fits.
 *
 * @example
 * ```ts
 * const { runtime } = await engine.definition('五单服务');
 * expect(checkKpiSpec(specs['五单服务']!, runtime.definition)).toEqual([]);
 * ```
 */
export function checkKpiSpec(spec: KpiSpec, def: CompiledDefinition): FieldError[] {
  const errors: FieldError[] = [];
  const fail = (path: string, code: FieldError['code'], message: string): void => {
    errors.push({ path, code, message });
  };
  const states = Object.keys(def.states);
  const events = allEvents(def);
  const eventNamed = (name: string, path: string): void => {
    if (!events.has(name)) fail(path, 'enum', `${def.name} has no event "${name}". ${didYouMean(name, events) ?? `Its events: ${[...events].join(', ')}.`}`);
  };
  const deadlinesOf = (list: readonly string[] | undefined, path: string): void => {
    list?.forEach((s, i) => {
      if (def.states[s] === undefined) fail(`${path}[${i}]`, 'enum', `${def.name} has no state "${s}". ${didYouMean(s, states) ?? ''}`.trim());
      else if (!hasDeadline(def, s)) fail(`${path}[${i}]`, 'enum', `State "${s}" of ${def.name} has no deadline (after … -> …), so none can be missed there.`);
    });
  };
  spec.response.events.forEach((e, i) => eventNamed(e, `response.events[${i}]`));
  deadlinesOf(spec.response.deadlineStates, 'response.deadlineStates');
  spec.resolution.states.forEach((s, i) => {
    if (def.states[s] === undefined) fail(`resolution.states[${i}]`, 'enum', `${def.name} has no state "${s}". ${didYouMean(s, states) ?? ''}`.trim());
    else if (!def.states[s]?.final) fail(`resolution.states[${i}]`, 'enum', `State "${s}" of ${def.name} is not final; a resolution is a final state.`);
  });
  deadlinesOf(spec.resolution.deadlineStates, 'resolution.deadlineStates');
  const rating = spec.rating;
  if (rating !== undefined) {
    eventNamed(rating.event, 'rating.event');
    const payloads = Object.values(def.states).flatMap((s) => (s.events[rating.event] === undefined ? [] : [s.events[rating.event]!.payload]));
    if (payloads.length > 0) {
      let dims = new Set<string>();
      if (rating.field === undefined) {
        for (const p of payloads) for (const [k, f] of Object.entries(p)) if (f.type.kind === 'number') dims.add(k);
      } else {
        const field = rating.field;
        const types = payloads.map((p) => p[field]).filter((t): t is FieldType => t !== undefined);
        if (types.length === 0) fail('rating.field', 'enum', `Event "${rating.event}" of ${def.name} has no payload field "${field}". ${didYouMean(field, payloads.flatMap((p) => Object.keys(p))) ?? ''}`.trim());
        dims = new Set(types.flatMap((t) => [...numberFields(t)]));
      }
      const checkDim = (d: string, path: string): void => {
        if (!dims.has(d)) fail(path, 'enum', `The rating of "${rating.event}" has no number field "${d}". ${didYouMean(d, dims) ?? ''}`.trim());
      };
      rating.dimensions?.forEach((d, i) => checkDim(d, `rating.dimensions[${i}]`));
      for (const d of Object.keys(rating.satisfiedWhen.atLeast ?? {})) checkDim(d, `rating.satisfiedWhen.atLeast.${d}`);
    }
  }
  if (spec.category !== undefined && def.caseFields[spec.category] === undefined) {
    fail('category', 'enum', `${def.name} has no case field "${spec.category}". ${didYouMean(spec.category, Object.keys(def.caseFields)) ?? ''}`.trim());
  }
  return errors;
}

// ---- the query ------------------------------------------------------------------------------

function instant(v: string | undefined, path: string, r: Reader): string | null {
  if (v === undefined) return null;
  const t = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (!Number.isFinite(t)) {
    r.fail(path, 'type', `${path} must be an ISO-8601 date and time, e.g. 2026-03-01T00:00:00+08:00.`);
    return null;
  }
  return new Date(t).toISOString();
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The KPIs of one workflow's cases, computed in one SQL statement, one row per group (ordered by
 * unit, category, period), or a single row when `groupBy` is empty. A case belongs to the unit
 * it was started in (its start event's unit, not the unit it was escalated or reassigned to) and
 * counts for that unit and every ancestor; to the period its start falls in, in `timeZone`.
 * Definitions: the module comment and docs/engine.md, "KPIs".
 *
 * @throws {EngineError} VALIDATION_FAILED (the spec does not fit the newest version of the
 *   workflow, or the query is malformed), DEFINITION_NOT_FOUND, ORG_UNIT_NOT_FOUND.
 * @example
 * ```ts
 * const [all] = await kpis(engine, { spec });
 * const byStreet = await kpis(engine, { spec, groupBy: ['unit', 'period'], unit: '龙形街道', period: 'month' });
 * console.log(all?.responseRate, byStreet.find((r) => r.unit === '永乐社区')?.meanRatings['群众是否满意']);
 * ```
 */
export async function kpis(engine: KpiEngine, query: KpiQuery): Promise<KpiRow[]> {
  const r = new Reader();
  const workflow = r.text((query.spec as Partial<KpiSpec> | undefined)?.workflow, 'spec.workflow');
  const spec = workflow === undefined ? undefined : readSpec(r, query.spec, workflow, 'spec');
  const groupBy = query.groupBy ?? [];
  groupBy.forEach((g, i) => {
    if (!GROUPS.includes(g)) r.fail(`groupBy[${i}]`, 'enum', `Cannot group by "${String(g)}"; use ${GROUPS.join(', ')}.`);
  });
  const period = query.period ?? 'month';
  if (!PERIODS.includes(period)) r.fail('period', 'enum', `period must be one of ${PERIODS.join(', ')}.`);
  const from = instant(query.from, 'from', r);
  const to = instant(query.to, 'to', r);
  const timeZone = query.timeZone ?? engine.workCalendar.timeZone;
  if (!validTimeZone(timeZone)) r.fail('timeZone', 'type', `"${timeZone}" is not an IANA time zone, e.g. Asia/Shanghai.`);
  if (groupBy.includes('category') && spec !== undefined && spec.category === undefined) {
    r.fail('groupBy', 'required', `The KPI spec of ${spec.workflow} names no category field to group by.`);
  }
  if (spec === undefined || r.errors.length > 0) throw refuse('Invalid KPI query', r.errors);

  const def = (await engine.definition(spec.workflow)).runtime.definition;
  const problems = checkKpiSpec(spec, def);
  if (problems.length > 0) throw refuse(`The KPI spec does not fit ${def.name}`, problems.map((p) => ({ ...p, path: `spec.${p.path}` })));
  if (query.unit !== undefined && (await engine.org()).unit(query.unit) === undefined) {
    throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${query.unit}.`, { orgUnit: query.unit });
  }

  const responseStates = spec.response.deadlineStates
    ?? Object.entries(def.states).filter(([s, st]) => hasDeadline(def, s) && spec.response.events.some((e) => st.events[e] !== undefined)).map(([s]) => s);
  const rating = spec.rating;
  const dimensions = rating?.dimensions ?? [];
  const rows = await kpiRows(engine.store, {
    workflow: spec.workflow,
    responseEvents: spec.response.events,
    responseDeadlineStates: responseStates,
    resolvedStates: spec.resolution.states,
    onTimeDeadlineStates: spec.resolution.deadlineStates ?? null,
    rating: rating === undefined ? null : {
      event: rating.event,
      field: rating.field ?? null,
      dimensions,
      satisfied: {
        atLeast: rating.satisfiedWhen.atLeast ?? {},
        ...(rating.satisfiedWhen.equals === undefined ? {} : { equals: rating.satisfiedWhen.equals }),
        ...(rating.satisfiedWhen.meanAtLeast === undefined ? {} : { meanAtLeast: rating.satisfiedWhen.meanAtLeast }),
      },
    },
    categoryField: spec.category ?? null,
    groupByUnit: groupBy.includes('unit'),
    groupByCategory: groupBy.includes('category'),
    period: groupBy.includes('period') ? period : null,
    unit: query.unit ?? null,
    from,
    to,
    timeZone,
  });
  return rows.map(({ meanRatings, ...row }) => ({
    ...row,
    meanRatings: Object.fromEntries(dimensions.map((d, i) => [d, meanRatings[i] ?? null])),
  }));
}
