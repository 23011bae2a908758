/**
 * The org tree and who holds which role where, as the pure core sees them, and the oracle that
 * answers a step's questions about the world (a unit's parent, a deadline in working days).
 * The live oracle records every answer; replay answers from that record, so a case replays the
 * same way after the tree or the holiday calendar changes.
 */
import type { Oracle } from '../dsl/expr-eval.ts';
import type { DurationValue } from '../dsl/types.ts';
import type { Calendar } from './calendar.ts';

export type OrgLevel = 'prefecture' | 'county' | 'street' | 'community' | 'grid' | 'department' | 'co_building';

export interface OrgUnit {
  readonly id: string;
  readonly parent: string | null;
  readonly level: OrgLevel;
  readonly name: string;
}

export interface RoleGrant {
  readonly role: string;
  readonly unit: string;
}

/** Read access to the org tree and role grants. */
export interface OrgView {
  unit(id: string): OrgUnit | undefined;
  rolesOf(actor: string): readonly RoleGrant[];
}

/**
 * An org view over plain lists, for `wf test`, tests and the engine's in-memory cache.
 * @example const org = new MemoryOrg([{ id: '县', parent: null, level: 'county', name: '县' }], { 张: [{ role: '书记', unit: '县' }] });
 */
export class MemoryOrg implements OrgView {
  private readonly units = new Map<string, OrgUnit>();
  private readonly grants = new Map<string, RoleGrant[]>();

  constructor(units: readonly OrgUnit[], grants: Readonly<Record<string, readonly RoleGrant[]>> = {}) {
    for (const u of units) this.units.set(u.id, u);
    for (const [actor, gs] of Object.entries(grants)) this.grants.set(actor, [...gs]);
  }

  unit(id: string): OrgUnit | undefined {
    return this.units.get(id);
  }

  rolesOf(actor: string): readonly RoleGrant[] {
    return this.grants.get(actor) ?? [];
  }

  allUnits(): readonly OrgUnit[] {
    return [...this.units.values()];
  }

  allActors(): readonly string[] {
    return [...this.grants.keys()];
  }
}

/** The unit and its ancestors, nearest first. Stops on a cycle rather than looping. */
export function lineage(org: OrgView, unit: string): string[] {
  const out: string[] = [];
  let at: string | null = unit;
  while (at !== null && !out.includes(at)) {
    out.push(at);
    at = org.unit(at)?.parent ?? null;
  }
  return out;
}

/** Everything a step asked the outside world, as recorded in its event. */
export interface Facts {
  readonly parents: Readonly<Record<string, string | null>>;
  readonly levels: Readonly<Record<string, string | null>>;
  /** `from|ms|workdays` → result. */
  readonly deadlines: Readonly<Record<string, string>>;
  readonly workdays: Readonly<Record<string, boolean>>;
}

export interface RecordingOracle extends Oracle {
  /** The answers given so far; a kind of question never asked is left out (replay reads it as empty). */
  facts(): Partial<Facts>;
}

function deadlineKey(fromIso: string, d: DurationValue): string {
  return `${fromIso}|${d.ms}|${d.workdays}`;
}

/**
 * Adds a duration with the calendar: whole working days first (keeping the time of day), then a
 * fraction of a working day as that share of 24 hours (moved on to a working day if it ends on a
 * day off), then the clock part.
 */
export function addDurationWith(calendar: Calendar, fromIso: string, d: DurationValue): string {
  const from = Date.parse(fromIso);
  if (!Number.isFinite(from)) return fromIso;
  const whole = Math.floor(Math.max(0, d.workdays));
  const frac = Math.max(0, d.workdays) - whole;
  let t = whole > 0 ? calendar.addWorkdays(from, whole) : from;
  if (frac > 0) {
    // Part of a working day must not end on a day off: roll on to the next working day, same time.
    t = calendar.addWorkdays(t + Math.round(frac * 86_400_000), 0);
  }
  t += d.ms;
  return new Date(t).toISOString();
}

function hasAny(map: Readonly<Record<string, unknown>>): boolean {
  for (const _ in map) return true;
  return false;
}

/**
 * The live oracle: answers from the org view and calendar, and records each answer.
 * @example const oracle = liveOracle(org, createCalendar()); … event.facts = oracle.facts();
 */
export function liveOracle(org: OrgView, calendar: Calendar): RecordingOracle {
  const parents: Record<string, string | null> = {};
  const levels: Record<string, string | null> = {};
  const deadlines: Record<string, string> = {};
  const workdays: Record<string, boolean> = {};
  return {
    parentOf(unit) {
      const p = org.unit(unit)?.parent ?? null;
      parents[unit] = p;
      return p;
    },
    levelOf(unit) {
      const l = org.unit(unit)?.level ?? null;
      levels[unit] = l;
      return l;
    },
    addDuration(fromIso, d) {
      const r = addDurationWith(calendar, fromIso, d);
      deadlines[deadlineKey(fromIso, d)] = r;
      return r;
    },
    isWorkday(iso) {
      const t = Date.parse(iso);
      const r = Number.isFinite(t) ? calendar.isWorkday(t) : false;
      workdays[iso] = r;
      return r;
    },
    // Most steps ask one kind of question or none: empty maps are left out of every event row.
    facts: () => {
      const out: { -readonly [K in keyof Facts]?: Facts[K] } = {};
      if (hasAny(parents)) out.parents = { ...parents };
      if (hasAny(levels)) out.levels = { ...levels };
      if (hasAny(deadlines)) out.deadlines = { ...deadlines };
      if (hasAny(workdays)) out.workdays = { ...workdays };
      return out;
    },
  };
}

/**
 * Answers from recorded facts only. A question the record cannot answer means the log and the
 * definition disagree; it is answered as if nothing were known, and replay reports the mismatch.
 * @example replayOracle({ parents: { 永乐社区: '城关街道' } }).parentOf('永乐社区') // '城关街道'
 */
export function replayOracle(facts: Partial<Facts>): RecordingOracle {
  return new ReplayOracle(facts);
}

/**
 * A recorded answer: an own member of the map, never the prototype's (a unit named `__proto__`).
 * A step records a handful of answers, each under a key no other event has (a time), so the
 * member is found by walking the keys: looking a fresh key up in such an object cost four times as much.
 */
function recordedAnswer<V>(map: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  if (map === undefined) return undefined;
  for (const k in map) if (k === key && Object.hasOwn(map, k)) return map[k];
  return undefined;
}

/** One object per replayed event, its answers read off the record (a missing map knows nothing). */
class ReplayOracle implements RecordingOracle {
  constructor(private readonly recorded: Partial<Facts>) {}

  parentOf(unit: string): string | null {
    return recordedAnswer(this.recorded.parents, unit) ?? null;
  }

  levelOf(unit: string): string | null {
    return recordedAnswer(this.recorded.levels, unit) ?? null;
  }

  addDuration(fromIso: string, d: DurationValue): string {
    return recordedAnswer(this.recorded.deadlines, deadlineKey(fromIso, d)) ?? fromIso;
  }

  isWorkday(iso: string): boolean {
    return recordedAnswer(this.recorded.workdays, iso) ?? false;
  }

  facts(): Partial<Facts> {
    return this.recorded;
  }
}

export const NO_FACTS: Facts = { parents: {}, levels: {}, deadlines: {}, workdays: {} };
