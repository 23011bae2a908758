/**
 * Turns a `CompiledDefinition` (JSON) into an XState v5 machine built with `setup()`: every guard,
 * action and delay is a named implementation, made of closures over the stored expression trees.
 *
 * The machine is pure: whatever a step needs from outside — the time, the actor, org-tree facts,
 * the working-day calendar — comes in on the event (`CaseEvent.now`, `.actor`, `.oracle`), and
 * whatever it wants done outside — notifications, points, webhooks — goes out as emitted
 * `effect` events, which XState's `transition()` returns as actions without running them.
 */
import { assign, createActor, emit, enqueueActions, setup, type AnyActorRef, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, type ExecutableActionObject } from 'xstate';
import type * as A from './ast.ts';
import type { ActionSpec, CompiledDefinition, GuardSpec, ScopeRef, WhoSpec } from './compile.ts';
import { compileExpr, type EvalEnv, type Evaluator, type Oracle } from './expr-eval.ts';
import type { ExprScope, TableSignature } from './expr-check.ts';
import { compileRulesTraced } from './rules.ts';
import type { DurationValue, FieldType, Value } from './types.ts';

/** One line of the decision trace recorded with every event: which guard or rule decided what. */
export type TraceEntry =
  | { readonly kind: 'guard'; readonly guard: string; readonly result: boolean }
  | { readonly kind: 'rule'; readonly table: string; readonly rows: readonly number[] };

/** An event as the machine receives it. Everything beyond the type and payload is supplied by the runner. */
export interface CaseEvent {
  readonly type: string;
  readonly payload?: Readonly<Record<string, Value>>;
  /** Who sent it; null for a timer. */
  readonly actor?: string | null;
  /** The resident an actor acts for (代办). */
  readonly onBehalfOf?: string | null;
  /** For a multi-unit step: the unit this actor acts for. */
  readonly instance?: string | null;
  /** The event's recorded time, ISO-8601 UTC. */
  readonly now: string;
  readonly oracle: Oracle;
  /** When present, guards and rule tables append what they decided. */
  readonly trace?: TraceEntry[];
}

/** What starting a case needs. */
export interface StartInput {
  readonly data: Readonly<Record<string, Value>>;
  readonly actor: string | null;
  /** The case's responsible org unit. */
  readonly unit: string | null;
  readonly now: string;
  readonly oracle: Oracle;
  readonly trace?: TraceEntry[];
}

/** The progress of a multi-unit step (吹哨报到). */
export interface MultiProgress {
  readonly state: string;
  readonly items: readonly string[];
  readonly done: Readonly<Record<string, { readonly actor: string | null; readonly at: string }>>;
  readonly missed: readonly string[];
}

/** The machine's context: the case's data and the engine's bookkeeping, all JSON. */
export interface CaseContext {
  readonly data: Readonly<Record<string, Value>>;
  readonly unit: string | null;
  readonly submitter: string | null;
  /** Due times of the current state's timers, by timer key. */
  readonly due: Readonly<Record<string, string>>;
  readonly multi: MultiProgress | null;
  /** Set by `extend` so the re-entered state keeps its (moved) due times. */
  readonly keepDue: boolean;
}

/** Work for the engine to carry out after the step commits. */
export type Effect =
  | { readonly kind: 'notify'; readonly role?: string; readonly unit?: string | null; readonly person?: string | null; readonly message: string; readonly reason: 'event' | 'reminder' | 'timeout' }
  | { readonly kind: 'credit'; readonly actor: string | null; readonly points: number; readonly hours: number; readonly reason?: string }
  | { readonly kind: 'webhook'; readonly topic: string; readonly payload: Value }
  | { readonly kind: 'escalated'; readonly from: string | null; readonly to: string | null }
  | { readonly kind: 'reassigned'; readonly from: string | null; readonly to: string | null }
  | { readonly kind: 'missed'; readonly state: string; readonly units: readonly string[] };

export interface EffectEvent {
  readonly type: 'effect';
  readonly effect: Effect;
}

/** A definition ready to run: the machine and the evaluators the engine needs around it. */
export interface Runtime {
  readonly definition: CompiledDefinition;
  readonly machine: AnyStateMachine;
  /** Evaluates a `by … of <unit>` or person expression for authorization, in the case's current context. */
  readonly evalWho: (who: WhoSpec, state: string | null, ctx: CaseContext, event: CaseEvent) => Value;
  /** Messages of the `require` clauses that fail for this event, in order, for a clear refusal. */
  readonly failedRequires: (state: string, ctx: CaseContext, event: CaseEvent) => string[];
  /**
   * XState's pure `transition(machine, snapshot, event)`: the next snapshot and the actions to
   * carry out, none executed. Same machine code, without the throwaway actor per call (see `inertScope`).
   */
  readonly transition: (snapshot: AnyMachineSnapshot, event: CaseEvent) => [AnyMachineSnapshot, ExecutableActionObject[]];
  /** XState's pure `initialTransition(machine, input)`, likewise. */
  readonly initialTransition: (input: StartInput) => [AnyMachineSnapshot, ExecutableActionObject[]];
}

const NEVER_MS = 100 * 365 * 86_400_000;

function isInit(e: unknown): e is { type: 'xstate.init'; input: StartInput } {
  return typeof e === 'object' && e !== null && (e as { type?: unknown }).type === 'xstate.init';
}

type Envelope = { now: string; actor: string | null; oracle: Oracle; payload: Readonly<Record<string, Value>>; instance: string | null; trace: TraceEntry[] | undefined };

// Every guard, action and delay of a step asks for the envelope of the same (immutable) event
// object, several times each: keep the last one rather than building it again.
let lastEvent: unknown;
let lastEnvelope: Envelope | undefined;

/** The time, actor and oracle of whatever event XState passes in, including the init event. */
function envelope(e: unknown): Envelope {
  if (e === lastEvent && lastEnvelope !== undefined) return lastEnvelope;
  const env = makeEnvelope(e);
  lastEvent = e;
  lastEnvelope = env;
  return env;
}

const NO_PAYLOAD: Readonly<Record<string, Value>> = Object.freeze({});

// One object of one shape whichever the event (one made per step, read by every hook).
function makeEnvelope(e: unknown): Envelope {
  if (isInit(e)) {
    const i = e.input;
    return { now: i.now, actor: i.actor, oracle: i.oracle, payload: NO_PAYLOAD, instance: null, trace: i.trace };
  }
  const ev = e as CaseEvent;
  return { now: ev.now, actor: ev.actor ?? null, oracle: ev.oracle, payload: ev.payload ?? NO_PAYLOAD, instance: ev.instance ?? null, trace: ev.trace };
}

function addDuration(oracle: Oracle, fromIso: string, d: Value): string | null {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return null;
  const dv = d as DurationValue;
  if (!Number.isFinite(dv.ms) || !Number.isFinite(dv.workdays)) return null;
  return oracle.addDuration(fromIso, dv);
}

/**
 * Builds the runnable machine for a compiled definition.
 * @example
 * const rt = instantiate(compile(model));
 * const [snapshot, actions] = initialTransition(rt.machine, { data, actor, unit, now, oracle });
 */
export function instantiate(def: CompiledDefinition): Runtime {
  const tableSigs: Record<string, TableSignature> = {};
  for (const [name, t] of Object.entries(def.tables)) tableSigs[name] = t.signature;
  const tableFns: Record<string, ReturnType<typeof compileRulesTraced>> = {};
  for (const [name, t] of Object.entries(def.tables)) tableFns[name] = compileRulesTraced(t.decl, t.signature);

  const scopeCache = new Map<string, ExprScope>();
  const scopeOf = (ref: ScopeRef): ExprScope => {
    const key = `${ref.state ?? ''}\u0000${ref.event ?? ''}`;
    let s = scopeCache.get(key);
    if (s === undefined) {
      const ev = ref.state === undefined || ref.event === undefined ? undefined : def.states[ref.state]?.events[ref.event];
      const payload: Record<string, FieldType> | undefined = ev?.payload;
      const multi = ref.state === undefined ? undefined : def.states[ref.state]?.multi;
      const locals = multi === undefined ? undefined : { [multi.variable]: { kind: 'org' as const } };
      s = {
        caseFields: def.caseFields,
        ...(payload === undefined ? {} : { payload }),
        ...(locals === undefined ? {} : { locals }),
        tables: tableSigs,
      };
      scopeCache.set(key, s);
    }
    return s;
  };
  const exprCache = new Map<A.Expr, Evaluator>();
  const ev = (e: A.Expr, ref: ScopeRef): Evaluator => {
    let f = exprCache.get(e);
    if (f === undefined) {
      f = compileExpr(e, scopeOf(ref));
      exprCache.set(e, f);
    }
    return f;
  };

  // Rule tables are built once; the trace they append to is the current event's, set by envFor.
  // Evaluation is synchronous, so the one slot cannot be seen by another event's evaluation.
  let currentTrace: TraceEntry[] | undefined;
  const tables: Record<string, (args: readonly Value[]) => Value> = {};
  for (const [name, fn] of Object.entries(tableFns)) {
    tables[name] = (args) => {
      const r = fn(args);
      currentTrace?.push({ kind: 'rule', table: name, rows: r.hits.map((h) => h.index) });
      return r.value;
    };
  }
  const noLocals: Record<string, Value> = {};
  // Guards and actions of one step ask for the same environment many times: keep the last one.
  let last: { ctx: CaseContext; e: unknown; variable: string | undefined; env: EvalEnv } | undefined;
  const envFor = (ctx: CaseContext, e: unknown, ref: ScopeRef): EvalEnv => {
    const variable = ref.state === undefined ? undefined : def.states[ref.state]?.multi?.variable;
    if (last !== undefined && last.ctx === ctx && last.e === e && last.variable === variable) {
      currentTrace = envelope(e).trace;
      return last.env;
    }
    const env = envelope(e);
    const locals: Record<string, Value> = variable === undefined ? noLocals : { [variable]: env.instance };
    currentTrace = env.trace;
    const out: EvalEnv = { case: ctx.data, payload: env.payload, locals, actor: env.actor, submitter: ctx.submitter, unit: ctx.unit, now: env.now, oracle: env.oracle, tables };
    last = { ctx, e, variable, env: out };
    return out;
  };

  const truthy = (v: Value): boolean => v === true;

  const guards: Record<string, (a: { context: CaseContext; event: unknown }) => boolean> = {};
  for (const [name, g] of Object.entries(def.guards)) guards[name] = guardImpl(name, g);

  function guardImpl(name: string, g: GuardSpec): (a: { context: CaseContext; event: unknown }) => boolean {
    const decide = (context: CaseContext, event: unknown): boolean => {
      const env = envFor(context, event, g.scope);
      switch (g.kind) {
        case 'transition':
          return g.requires.every((r) => truthy(ev(r, g.scope)(env))) && (g.when === undefined || truthy(ev(g.when, g.scope)(env)));
        case 'instance': {
          const inst = envelope(event).instance;
          const m = context.multi;
          if (inst === null || m === null || !m.items.includes(inst) || m.done[inst] !== undefined) return false;
          return g.requires.every((r) => truthy(ev(r, g.scope)(env)));
        }
        case 'joined':
          return joined(context) && (g.when === undefined || truthy(ev(g.when, g.scope)(env)));
      }
    };
    return ({ context, event }) => {
      const result = decide(context, event);
      envelope(event).trace?.push({ kind: 'guard', guard: name, result });
      return result;
    };
  }

  function joined(ctx: CaseContext): boolean {
    const m = ctx.multi;
    if (m === null) return false;
    const spec = def.states[m.state]?.multi;
    if (spec === undefined) return false;
    const done = m.items.filter((u) => m.done[u] !== undefined).length;
    switch (spec.join.kind) {
      case 'all': return done === m.items.length;
      case 'any': return done >= 1;
      case 'atLeast': {
        const n = ev(spec.join.count, { state: m.state })(envFor(ctx, { type: 'join', now: '', oracle: NULL_ORACLE }, { state: m.state }));
        return typeof n === 'number' && done >= Math.min(n, m.items.length);
      }
    }
  }

  const whoEffect = (who: WhoSpec, ctx: CaseContext, e: unknown, ref: ScopeRef): { role?: string; unit?: string | null; person?: string | null } => {
    switch (who.kind) {
      case 'role': {
        const unit = who.of === undefined ? ctx.unit : ev(who.of, ref)(envFor(ctx, e, ref));
        return { role: who.role, unit: typeof unit === 'string' ? unit : null };
      }
      case 'person': {
        const p = ev(who.expr, ref)(envFor(ctx, e, ref));
        return { person: typeof p === 'string' ? p : null };
      }
      case 'anyone': return {};
    }
  };

  type Impl = Parameters<typeof setup>[0]['actions'];
  const actions: Record<string, unknown> = {};
  for (const [name, a] of Object.entries(def.actions)) actions[name] = actionImpl(a);

  function actionImpl(a: ActionSpec): unknown {
    switch (a.kind) {
      case 'arm': return assign(({ context, event }: { context: CaseContext; event: unknown }) => arm(a.state, context, event));
      case 'set': return assign(({ context, event }: { context: CaseContext; event: unknown }) => ({
        data: { ...context.data, [a.field]: ev(a.value, a.scope)(envFor(context, event, a.scope)) },
      }));
      case 'notify': return emit(({ context, event }: { context: CaseContext; event: unknown }) => ({
        type: 'effect' as const,
        effect: { kind: 'notify' as const, ...whoEffect(a.who, context, event, a.scope), message: a.message, reason: a.reason },
      }));
      case 'credit': return emit(({ context, event }: { context: CaseContext; event: unknown }) => {
        const env = envFor(context, event, a.scope);
        const amount = ev(a.amount, a.scope)(env);
        const to = ev(a.to, a.scope)(env);
        const hours = a.unit === 'hours' && amount !== null && typeof amount === 'object' && !Array.isArray(amount)
          ? ((amount as DurationValue).ms / 3_600_000) + (amount as DurationValue).workdays * 8 : 0;
        const effect: Effect = {
          kind: 'credit', actor: typeof to === 'string' ? to : null,
          points: a.unit === 'points' && typeof amount === 'number' ? amount : 0,
          hours,
          ...(a.reason === undefined ? {} : { reason: a.reason }),
        };
        return { type: 'effect' as const, effect };
      });
      case 'emit': return emit(({ context, event }: { context: CaseContext; event: unknown }) => ({
        type: 'effect' as const,
        effect: { kind: 'webhook' as const, topic: a.topic, payload: a.payload === undefined ? context.data : ev(a.payload, a.scope)(envFor(context, event, a.scope)) },
      }));
      case 'escalate': return enqueueActions(({ context, event, enqueue }: { context: CaseContext; event: unknown; enqueue: EnqueueLike }) => {
        const from = context.unit;
        const to = from === null ? null : envelope(event).oracle.parentOf(from);
        if (to === null) return; // already at the top of the tree: nothing above to escalate to
        enqueue.assign({ unit: to });
        enqueue.emit({ type: 'effect', effect: { kind: 'escalated', from, to } });
      });
      case 'reassign': return enqueueActions(({ context, event, enqueue }: { context: CaseContext; event: unknown; enqueue: EnqueueLike }) => {
        const to = ev(a.to, a.scope)(envFor(context, event, a.scope));
        if (typeof to !== 'string') return;
        enqueue.assign({ unit: to });
        enqueue.emit({ type: 'effect', effect: { kind: 'reassigned', from: context.unit, to } });
      });
      case 'extend': return assign(({ context, event }: { context: CaseContext; event: unknown }) => {
        const env = envFor(context, event, a.scope);
        const by = ev(a.by, a.scope)(env);
        const due: Record<string, string> = { ...context.due };
        for (const t of def.states[a.state]?.timers ?? []) {
          const current = due[t.key];
          if (current === undefined || t.kind === 'reminder') continue;
          const moved = addDuration(env.oracle, current, by);
          if (moved !== null) due[t.key] = moved;
        }
        // Reminders keep their share of the (longer) deadline.
        for (const t of def.states[a.state]?.timers ?? []) {
          if (t.kind !== 'reminder' || t.of === undefined || t.percent === undefined) continue;
          const end = due[t.of];
          if (end !== undefined) due[t.key] = shareOf(env.now, end, t.percent);
        }
        return { due, keepDue: true };
      });
      case 'recordInstance': return assign(({ context, event }: { context: CaseContext; event: unknown }) => {
        const m = context.multi;
        const env = envelope(event);
        if (m === null || env.instance === null) return {};
        return { multi: { ...m, done: { ...m.done, [env.instance]: { actor: env.actor, at: env.now } } } };
      });
      case 'recordMissed': return enqueueActions(({ context, enqueue }: { context: CaseContext; enqueue: EnqueueLike }) => {
        const m = context.multi;
        if (m === null) return;
        const missed = m.items.filter((u) => m.done[u] === undefined);
        enqueue.assign({ multi: { ...m, missed } });
        if (missed.length > 0) enqueue.emit({ type: 'effect', effect: { kind: 'missed', state: a.state, units: missed } });
      });
    }
  }

  function arm(state: string, ctx: CaseContext, e: unknown): Partial<CaseContext> {
    const spec = def.states[state];
    if (spec === undefined) return {};
    if (ctx.keepDue) return { keepDue: false };
    const env = envFor(ctx, e, { state });
    const due: Record<string, string> = {};
    const durations: Record<string, Value> = {};
    for (const t of spec.timers) {
      if (t.duration === undefined) continue;
      const d = ev(t.duration, { state })(env);
      durations[t.key] = d;
      const at = addDuration(env.oracle, env.now, d);
      if (at !== null) due[t.key] = at;
    }
    // A reminder at p% of a deadline is p% of its duration, so 80% of 2 working days counts in working days too.
    for (const t of spec.timers) {
      if (t.kind !== 'reminder' || t.of === undefined || t.percent === undefined || due[t.of] === undefined) continue;
      const at = addDuration(env.oracle, env.now, scaled(durations[t.of] ?? null, t.percent / 100));
      if (at !== null) due[t.key] = at;
    }
    // The last multi-unit step's record (who reported, who missed it) stays until another such step begins.
    if (spec.multi === undefined) return { due };
    const items = ev(spec.multi.items, { state })(env);
    const units = Array.isArray(items) ? [...new Set(items.filter((u): u is string => typeof u === 'string'))] : [];
    return { due, multi: { state, items: units, done: {}, missed: [] } };
  }

  const delays: Record<string, (a: { context: CaseContext; event: unknown }) => number> = {};
  for (const spec of Object.values(def.states)) {
    for (const t of spec.timers) {
      // The delay is what is left until the due time `arm` (or `extend`) stored under the same key.
      delays[t.delay] = ({ context, event }) => {
        const now = Date.parse(envelope(event).now);
        const at = Date.parse(context.due[t.key] ?? '');
        return Number.isFinite(at) && Number.isFinite(now) ? Math.max(0, at - now) : NEVER_MS;
      };
    }
  }

  const machine = setup({
    types: {} as { context: CaseContext; events: CaseEvent; input: StartInput; emitted: EffectEvent },
    guards: guards as never,
    actions: actions as Impl as never,
    delays: delays as never,
  }).createMachine({
    ...(def.machine as unknown as Record<string, unknown>),
    context: ({ input }: { input: StartInput }) => ({
      data: input.data, unit: input.unit, submitter: input.actor, due: {}, multi: null, keepDue: false,
    }),
  } as never) as unknown as AnyStateMachine;

  const evalWho = (who: WhoSpec, state: string | null, ctx: CaseContext, event: CaseEvent): Value => {
    const ref: ScopeRef = state === null ? {} : { state, event: event.type };
    if (who.kind === 'role') return who.of === undefined ? ctx.unit : ev(who.of, ref)(envFor(ctx, event, ref));
    if (who.kind === 'person') return ev(who.expr, ref)(envFor(ctx, event, ref));
    return null;
  };

  const failedRequires = (state: string, ctx: CaseContext, event: CaseEvent): string[] => {
    const spec = def.states[state]?.events[event.type];
    if (spec === undefined) return [];
    const ref: ScopeRef = { state, event: event.type };
    const env = envFor(ctx, event, ref);
    return spec.requires.filter((r) => !truthy(ev(r.test, ref)(env))).map((r) => r.message ?? 'A condition of this event does not hold.');
  };

  // XState's `transition()`/`initialTransition()` build a new inert actor for every call, and the
  // actor's constructor eagerly computes the machine's initial snapshot with no input, which makes
  // our context factory throw (caught and discarded by XState): over half the cost of a step. The
  // scope below is what those helpers pass to `machine.transition`/`getInitialSnapshot`, built
  // around one actor per runtime. Sharing its system is safe because these machines spawn and
  // invoke no children (the only reason XState gives each call a fresh one); actions are collected,
  // never executed, exactly as there.
  // One scope for every call: a step is synchronous and never nested, so the array its actions
  // are collected into can be swapped in per call rather than a scope built around each one.
  let collected: ExecutableActionObject[] = [];
  let scope: AnyActorScope | undefined;
  const noop = (): void => {};
  const inertScope = (into: ExecutableActionObject[]): AnyActorScope => {
    collected = into;
    if (scope === undefined) {
      const self: AnyActorRef = createActor(machine);
      scope = {
        self, id: '', sessionId: '', logger: noop, defer: noop, emit: noop, stopChild: noop,
        system: self.system, actionExecutor: (a) => { collected.push(a); },
      };
    }
    return scope;
  };
  const transition = (snapshot: AnyMachineSnapshot, event: CaseEvent): [AnyMachineSnapshot, ExecutableActionObject[]] => {
    const into: ExecutableActionObject[] = [];
    return [machine.transition(snapshot, event, inertScope(into)), into];
  };
  const initialTransition = (input: StartInput): [AnyMachineSnapshot, ExecutableActionObject[]] => {
    const into: ExecutableActionObject[] = [];
    return [machine.getInitialSnapshot(inertScope(into), input), into];
  };

  return { definition: def, machine, evalWho, failedRequires, transition, initialTransition };
}

function scaled(d: Value, k: number): Value {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return null;
  const dv = d as DurationValue;
  return { ms: Math.round(dv.ms * k), workdays: dv.workdays * k };
}

function shareOf(startIso: string, endIso: string, percent: number): string {
  const s = Date.parse(startIso);
  const e = Date.parse(endIso);
  return new Date(s + Math.round(((e - s) * percent) / 100)).toISOString();
}

interface EnqueueLike {
  assign(v: Partial<CaseContext>): void;
  emit(e: EffectEvent): void;
}

const NULL_ORACLE: Oracle = {
  parentOf: () => null,
  levelOf: () => null,
  addDuration: (from) => from,
  isWorkday: () => true,
};
