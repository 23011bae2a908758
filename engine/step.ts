/**
 * The pure core of the engine: one step of a case on XState's `initialTransition`/`transition`,
 * with no long-lived actor. It checks the event against the state, the sender and the payload,
 * runs the machine, and returns the next snapshot with the work the store must do in the same
 * transaction (timers to schedule and cancel) and after it (effects).
 */
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import type { CaseContext, CaseEvent, Effect, EffectEvent, Runtime, StartInput, TraceEntry } from '../dsl/runtime.ts';
import type { Value } from '../dsl/types.ts';
import { validateRecord, type FieldError } from '../dsl/values.ts';
import { authorize, type Authorization } from './authorize.ts';
import { EngineError } from './errors.ts';
import type { OrgView } from './org.ts';

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
  const [snap, actions] = initialTransition(rt.machine, { ...input, data, trace });
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
  const current = rt.machine.resolveState({ value: snapshot.state, context: snapshot.context });
  const [next, actions] = transition(rt.machine, current, full);
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
