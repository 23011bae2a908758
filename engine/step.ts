/**
 * The pure core of the engine: one step of a case on XState's `initialTransition`/`transition`,
 * with no long-lived actor. It checks the event against the state, the sender and the payload,
 * runs the machine, and returns the next snapshot with the work the store must do in the same
 * transaction (timers to schedule and cancel) and after it (effects).
 */
import type { AnyMachineSnapshot } from 'xstate';
import type { CaseContext, CaseEvent, Effect, EffectEvent, Runtime, StartInput, TraceEntry } from '../dsl/runtime.ts';
import type { Value } from '../dsl/types.ts';
import { validateRecord, type FieldError } from '../dsl/values.ts';
import { authorize, type Authorization } from './authorize.ts';
import { EngineError } from './errors.ts';
import { NO_FACTS, replayOracle, type Facts, type OrgView } from './org.ts';

/** A case's state as stored: JSON. */
export interface CaseSnapshot {
  readonly state: string;
  readonly status: 'active' | 'done';
  readonly context: CaseContext;
}

export interface TimerRequest {
  /** Stable id: XState's delayed event id (`xstate.after.<delay>.<machine>.<state>`). */
  readonly id: string;
  readonly eventType: string;
  readonly dueAt: string;
}

export interface StepOutcome {
  readonly snapshot: CaseSnapshot;
  readonly effects: readonly Effect[];
  readonly schedule: readonly TimerRequest[];
  readonly cancel: readonly string[];
  readonly trace: readonly TraceEntry[];
  readonly authorization: Authorization;
  /** The payload after validation (defaults applied, values normalized). */
  readonly payload: Readonly<Record<string, Value>>;
}

/** The prefix of every timer event XState raises for an `after` clause. */
export const TIMER_EVENT_PREFIX = 'xstate.after.';

export function isTimerEvent(type: string): boolean {
  return type.startsWith(TIMER_EVENT_PREFIX);
}

function fieldErrors(errors: readonly FieldError[]): EngineError {
  return new EngineError('VALIDATION_FAILED', `Invalid ${errors.map((e) => e.path).join(', ')}: ${errors.map((e) => e.message).join('; ')}`, { fields: errors });
}

function toSnapshot(s: AnyMachineSnapshot): CaseSnapshot {
  return { state: String(s.value), status: s.status === 'done' ? 'done' : 'active', context: s.context as CaseContext };
}

interface ActionLike {
  readonly type: string;
  readonly params?: Record<string, unknown>;
}

function collect(actions: readonly ActionLike[], now: string): { effects: Effect[]; schedule: TimerRequest[]; cancel: string[] } {
  const effects: Effect[] = [];
  const schedule: TimerRequest[] = [];
  const cancel: string[] = [];
  const nowMs = Date.parse(now);
  for (const a of actions) {
    const p = a.params ?? {};
    if (a.type === 'xstate.raise' && typeof p['delay'] === 'number') {
      const ev = p['event'] as { type: string };
      const id = typeof p['id'] === 'string' ? p['id'] : ev.type;
      schedule.push({ id, eventType: ev.type, dueAt: new Date(nowMs + p['delay']).toISOString() });
    } else if (a.type === 'xstate.cancel' && typeof p['sendId'] === 'string') {
      cancel.push(p['sendId']);
    } else if (a.type === 'xstate.emit') {
      const e = p['event'] as EffectEvent | undefined;
      if (e?.type === 'effect') effects.push(e.effect);
    }
  }
  // A timer cancelled and scheduled again in one step (re-entering a state) is a reschedule.
  const scheduled = new Set(schedule.map((t) => t.id));
  return { effects, schedule, cancel: cancel.filter((id) => !scheduled.has(id)) };
}

/**
 * Starts a case: checks who may start it and the case data, and enters the start state.
 * @example const out = startCase(rt, { data, actor: '居民王', unit: '永乐社区', now, oracle }, org);
 */
export function startCase(rt: Runtime, input: Omit<StartInput, 'trace'>, org: OrgView): StepOutcome {
  const def = rt.definition;
  const { value: data, errors } = validateRecord(def.caseFields, input.data, {});
  if (errors.length > 0) throw fieldErrors(errors);
  const ctx: CaseContext = { data, unit: input.unit, submitter: input.actor, due: {}, multi: null, keepDue: false };
  const probe: CaseEvent = { type: 'xstate.init', actor: input.actor, now: input.now, oracle: input.oracle };
  const authorization = authorize(rt, null, def.start.who, ctx, probe, org);
  const trace: TraceEntry[] = [];
  const [snap, actions] = rt.initialTransition({ ...input, data, trace });
  const { effects, schedule, cancel } = collect(actions as readonly ActionLike[], input.now);
  return { snapshot: toSnapshot(snap), effects, schedule, cancel, trace, authorization, payload: {} };
}

/** The events a case accepts now, by name (timers excluded). */
export function acceptedEvents(rt: Runtime, snapshot: CaseSnapshot): string[] {
  if (snapshot.status === 'done') return [];
  const state = rt.definition.states[snapshot.state];
  if (state === undefined) return [];
  const multi = snapshot.context.multi;
  return Object.keys(state.events).filter((e) => {
    // A multi-unit step accepts its event only while some unit has not yet acted.
    if (state.multi?.event === e) return multi !== null && multi.state === snapshot.state && multi.items.some((u) => multi.done[u] === undefined);
    return true;
  });
}

/**
 * Applies one event to a case. Throws `EngineError` NOT_POSSIBLE (wrong state, or its conditions
 * do not hold), NOT_ALLOWED (wrong sender) or VALIDATION_FAILED (payload or resulting data).
 * @example const out = applyEvent(rt, snapshot, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, now, oracle }, org);
 */
export function applyEvent(rt: Runtime, snapshot: CaseSnapshot, event: Omit<CaseEvent, 'trace'>, org: OrgView): StepOutcome {
  const def = rt.definition;
  const stateSpec = def.states[snapshot.state];
  const accepted = acceptedEvents(rt, snapshot);
  const notPossible = (why: string): EngineError => new EngineError('NOT_POSSIBLE', why, { state: snapshot.state, allowedEvents: accepted });

  let authorization: Authorization = { role: null, unit: null, instance: null, clause: 'anyone' };
  let payload: Readonly<Record<string, Value>> = {};
  let instance: string | null = null;

  if (isTimerEvent(event.type)) {
    const mine = stateSpec?.timers.some((t) => event.type.startsWith(`${TIMER_EVENT_PREFIX}${t.delay}.`)) ?? false;
    if (!mine || snapshot.status === 'done') throw notPossible(`Timer ${event.type} does not belong to state "${snapshot.state}".`);
  } else {
    const spec = stateSpec?.events[event.type];
    if (spec === undefined || !accepted.includes(event.type)) {
      throw notPossible(snapshot.status === 'done'
        ? `The case is closed (${snapshot.state}); it accepts no events.`
        : `"${event.type}" is not possible in state "${snapshot.state}". Possible now: ${accepted.join(', ') || 'none'}.`);
    }
    const m = snapshot.context.multi;
    const multi = stateSpec?.multi?.event === event.type && m !== null && m.state === snapshot.state && spec.instanceVariable !== undefined
      ? { pending: m.items.filter((u) => m.done[u] === undefined), variable: spec.instanceVariable, done: m.items.filter((u) => m.done[u] !== undefined) }
      : undefined;
    authorization = authorize(rt, snapshot.state, spec.who, snapshot.context, { ...event, type: event.type } as CaseEvent, org, multi);
    instance = authorization.instance;
    if (multi !== undefined && instance === null) {
      throw notPossible(`${event.actor ?? 'This sender'} has no pending unit to act for in "${snapshot.state}".`);
    }
    const checked = validateRecord(spec.payload, event.payload ?? {}, {});
    if (checked.errors.length > 0) throw fieldErrors(checked.errors);
    payload = checked.value;
  }

  const trace: TraceEntry[] = [];
  const full: CaseEvent = { ...event, payload, instance, trace };
  const current = machineSnapshotOf(rt, snapshot);
  const [next, actions] = rt.transition(current, full);
  const took = (actions as readonly ActionLike[]).length > 0 || next.value !== current.value || next.context !== current.context;
  if (!took) {
    const failed = rt.failedRequires(snapshot.state, snapshot.context, full);
    throw new EngineError('NOT_POSSIBLE', failed.length > 0 ? failed.join(' ') : `No transition of "${event.type}" applies in "${snapshot.state}" now.`,
      { state: snapshot.state, allowedEvents: accepted, failed });
  }
  const out = toSnapshot(next);
  const dataCheck = validateRecord(def.caseFields, out.context.data, {});
  if (dataCheck.errors.length > 0) throw fieldErrors(dataCheck.errors);
  const { effects, schedule, cancel } = collect(actions as readonly ActionLike[], event.now);
  return { snapshot: out, effects, schedule, cancel, trace, authorization, payload };
}

// ---- replay ------------------------------------------------------------------------------

/** What replay needs of a stored event row (a structural subset of the store's `EventRecord`). */
export interface RecordedEvent {
  readonly seq: number;
  readonly type: string;
  readonly actorId: string | null;
  readonly onBehalfOf: string | null;
  readonly orgUnitId: string | null;
  readonly payload: unknown;
  /** ISO-8601 UTC, as the engine wrote it. */
  readonly recordedAt: string;
  /** `{ oracle, authorization }` for machine events; `{ system: true, definitionId }` for system events. */
  readonly facts: unknown;
}

/** The outcome of replaying one event: what `applyEvent` would have returned, less the checks. */
export type ReplayedStep = Omit<StepOutcome, 'authorization' | 'payload'>;

function recordedFacts(facts: unknown): { oracle: Partial<Facts>; instance: string | null } {
  const f = (typeof facts === 'object' && facts !== null ? facts : {}) as { oracle?: unknown; authorization?: unknown };
  const auth = (typeof f.authorization === 'object' && f.authorization !== null ? f.authorization : {}) as { instance?: unknown };
  const oracle = typeof f.oracle === 'object' && f.oracle !== null ? f.oracle as Partial<Facts> : NO_FACTS;
  return { oracle, instance: typeof auth.instance === 'string' ? auth.instance : null };
}

function recordedPayload(payload: unknown): Record<string, Value> {
  return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as Record<string, Value> : {};
}

/**
 * Re-runs one recorded event through the same XState transition code as `startCase`/`applyEvent`,
 * without asking anyone anything: the time is the recorded time, the oracle answers from the
 * recorded facts, the multi-unit instance is the recorded one and the payload is taken as
 * recorded (it was validated when it was written). Authorization and payload checks are not
 * repeated: they were decided against the org tree of the time, which may have changed since.
 * A 'start' record (seq 1) starts the case from its recorded data, unit and actor; `snapshot`
 * is ignored for it. System events (`case.*`) are not machine transitions and are not handled here.
 * @example
 * let s: CaseSnapshot | null = null;
 * for (const e of events) s = replayEvent(rt, s, e).snapshot;
 */
export function replayEvent(rt: Runtime, snapshot: CaseSnapshot | null, record: RecordedEvent): ReplayedStep {
  const trace: TraceEntry[] = [];
  const current = snapshot === null ? null : machineSnapshotOf(rt, snapshot);
  const [next, actions] = replayTransition(rt, current, record, trace);
  return { snapshot: toSnapshot(next), trace, ...collect(actions as readonly ActionLike[], record.recordedAt) };
}

/**
 * `replayEvent` for a loop over a whole log: takes and returns XState's own snapshot, so the next
 * event need not rebuild it from the stored form, and collects no effects or timers (replay checks
 * states, not side effects). Null `current` is before the start.
 * @example
 * let m: AnyMachineSnapshot | null = null;
 * for (const e of events) { m = replayMachineStep(rt, m, e); check(caseSnapshotOf(m), e); }
 */
export function replayMachineStep(rt: Runtime, current: AnyMachineSnapshot | null, record: RecordedEvent): AnyMachineSnapshot {
  // No trace: replay checks the states, and the decisions it would trace are the recorded ones.
  return replayTransition(rt, current, record, undefined)[0];
}

/** The stored form of a machine snapshot. */
export function caseSnapshotOf(s: AnyMachineSnapshot): CaseSnapshot {
  return toSnapshot(s);
}

/** A stored snapshot as XState's, to go on replaying from (after a system event changed it). */
export function machineSnapshotOf(rt: Runtime, snapshot: CaseSnapshot): AnyMachineSnapshot {
  return rt.machine.resolveState({ value: snapshot.state, context: snapshot.context });
}

function replayTransition(rt: Runtime, current: AnyMachineSnapshot | null, record: RecordedEvent, trace: TraceEntry[] | undefined): [AnyMachineSnapshot, readonly unknown[]] {
  const { oracle: facts, instance } = recordedFacts(record.facts);
  const oracle = replayOracle(facts);
  const now = record.recordedAt;
  if (record.type === 'start') {
    // The start record keeps the data as sent; the machine started from it after defaults were applied.
    const { value: data } = validateRecord(rt.definition.caseFields, recordedPayload(record.payload), {});
    return rt.initialTransition({ data, actor: record.actorId, unit: record.orgUnitId, now, oracle, trace });
  }
  if (current === null) throw new Error(`Event ${record.seq} (${record.type}) has no case to apply to: the log does not begin with a start event.`);
  // One object of one shape per event (no spreads): it is made for every event a replay runs.
  const event: { -readonly [K in keyof CaseEvent]: CaseEvent[K] } = { type: record.type, payload: recordedPayload(record.payload), actor: record.actorId, instance, now, oracle };
  if (trace !== undefined) event.trace = trace;
  if (record.onBehalfOf !== null) event.onBehalfOf = record.onBehalfOf;
  return rt.transition(current, event);
}
