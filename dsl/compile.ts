/**
 * The compiler: a checked `Model` → a `CompiledDefinition`, which is plain JSON: the XState v5
 * machine config (guards, actions and delays referred to by name) plus the table of those named
 * implementations, each kept as expression trees. `runtime.ts` turns it back into a running
 * machine. Because the stored definition carries its own expressions, a case replays on the
 * definition it ran on, whatever the compiler has become since.
 */
import type * as A from './ast.ts';
import type { Model } from './check.ts';
import type { TableSignature } from './expr-check.ts';
import type { FieldType } from './types.ts';

/** Bumped when the shape of `CompiledDefinition` or the meaning of its parts changes. */
export const COMPILER_VERSION = '1.0.0';

export type WhoSpec =
  | { readonly kind: 'role'; readonly role: string; readonly of?: A.Expr }
  | { readonly kind: 'person'; readonly expr: A.Expr }
  | { readonly kind: 'anyone' };

/** An event a state accepts, as front ends and the engine see it. */
export interface EventSpec {
  readonly label?: string;
  readonly who: readonly WhoSpec[];
  readonly payload: Readonly<Record<string, FieldType>>;
  readonly requires: readonly { readonly test: A.Expr; readonly message?: string }[];
  /** For a multi-unit step: the name the unit is known by inside the clause. */
  readonly instanceVariable?: string;
}

export interface TimerSpec {
  /** Key of the due time in the case's `due` map: `<state>/t0`, `<state>/r0_1`, `<state>/w`. */
  readonly key: string;
  readonly kind: 'deadline' | 'reminder' | 'join-deadline';
  /** Delay name in the machine config; the same as the key, so names are unique across states. */
  readonly delay: string;
  readonly duration?: A.Expr;
  /** For reminders: the share of the deadline, and the deadline's key. */
  readonly percent?: number;
  readonly of?: string;
}

export interface MultiSpec {
  readonly variable: string;
  readonly items: A.Expr;
  readonly event: string;
  readonly join: { readonly kind: 'all' | 'any' } | { readonly kind: 'atLeast'; readonly count: A.Expr };
}

export interface StateSpec {
  readonly label?: string;
  readonly final: boolean;
  readonly events: Readonly<Record<string, EventSpec>>;
  readonly timers: readonly TimerSpec[];
  readonly multi?: MultiSpec;
}

/** Where an expression is evaluated: which event's payload and which locals are in scope. */
export interface ScopeRef {
  readonly state?: string;
  readonly event?: string;
}

export type GuardSpec =
  | { readonly kind: 'transition'; readonly scope: ScopeRef; readonly requires: readonly A.Expr[]; readonly when?: A.Expr }
  | { readonly kind: 'instance'; readonly scope: ScopeRef; readonly requires: readonly A.Expr[] }
  | { readonly kind: 'joined'; readonly scope: ScopeRef; readonly when?: A.Expr };

export type ActionSpec =
  | { readonly kind: 'arm'; readonly state: string }
  | { readonly kind: 'set'; readonly scope: ScopeRef; readonly field: string; readonly value: A.Expr }
  | { readonly kind: 'notify'; readonly scope: ScopeRef; readonly who: WhoSpec; readonly message: string; readonly reason: 'event' | 'reminder' | 'timeout' }
  | { readonly kind: 'credit'; readonly scope: ScopeRef; readonly amount: A.Expr; readonly unit: 'points' | 'hours'; readonly to: A.Expr; readonly reason?: string }
  | { readonly kind: 'emit'; readonly scope: ScopeRef; readonly topic: string; readonly payload?: A.Expr }
  | { readonly kind: 'escalate'; readonly scope: ScopeRef }
  | { readonly kind: 'reassign'; readonly scope: ScopeRef; readonly to: A.Expr }
  | { readonly kind: 'extend'; readonly scope: ScopeRef; readonly state: string; readonly by: A.Expr }
  | { readonly kind: 'recordInstance'; readonly scope: ScopeRef }
  | { readonly kind: 'recordMissed'; readonly state: string };

export interface TransitionConfig {
  readonly target?: string;
  readonly reenter?: boolean;
  readonly guard?: string;
  readonly actions: readonly string[];
}

export interface StateConfig {
  readonly type?: 'final';
  readonly entry?: readonly string[];
  readonly on?: Readonly<Record<string, readonly TransitionConfig[]>>;
  readonly after?: Readonly<Record<string, readonly TransitionConfig[]>>;
  readonly always?: readonly TransitionConfig[];
}

export interface MachineConfig {
  readonly id: string;
  readonly initial: string;
  readonly states: Readonly<Record<string, StateConfig>>;
}

export interface CompiledTable {
  readonly decl: A.RulesDecl;
  readonly signature: TableSignature;
}

/** A deployable definition: JSON all the way down. */
export interface CompiledDefinition {
  readonly format: 1;
  readonly compilerVersion: string;
  readonly name: string;
  readonly label?: string;
  readonly roles: Readonly<Record<string, { readonly label?: string }>>;
  readonly caseFields: Readonly<Record<string, FieldType>>;
  readonly start: { readonly state: string; readonly who: readonly WhoSpec[] };
  readonly states: Readonly<Record<string, StateSpec>>;
  readonly tables: Readonly<Record<string, CompiledTable>>;
  readonly machine: MachineConfig;
  readonly guards: Readonly<Record<string, GuardSpec>>;
  readonly actions: Readonly<Record<string, ActionSpec>>;
}

/**
 * Compiles a checked model.
 * @example
 * const { model } = checkSource(source, file);
 * if (model) console.log(JSON.stringify(compile(model).machine));
 */
export function compile(model: Model): CompiledDefinition {
  return new Compiler(model).run();
}

function whoSpec(w: A.Who, persons: ReadonlySet<A.RoleWho>): WhoSpec {
  switch (w.kind) {
    case 'role':
      if (persons.has(w)) return { kind: 'person', expr: { kind: 'ref', name: w.role, span: w.span } };
      return w.of === undefined ? { kind: 'role', role: w.role.text } : { kind: 'role', role: w.role.text, of: w.of };
    case 'person': return { kind: 'person', expr: w.expr };
    case 'anyone': return { kind: 'anyone' };
  }
}

class Compiler {
  private readonly guards: Record<string, GuardSpec> = {};
  private readonly actions: Record<string, ActionSpec> = {};
  private counter = 0;

  constructor(private readonly model: Model) {}

  private guard(spec: GuardSpec): string {
    const name = `g${this.counter++}`;
    this.guards[name] = spec;
    return name;
  }

  private action(spec: ActionSpec): string {
    const name = `${spec.kind}${this.counter++}`;
    this.actions[name] = spec;
    return name;
  }

  run(): CompiledDefinition {
    const m = this.model;
    const states: Record<string, StateSpec> = {};
    const configs: Record<string, StateConfig> = {};
    for (const [name, s] of m.states) {
      const { spec, config } = this.state(name, s);
      states[name] = spec;
      configs[name] = config;
    }
    const tables: Record<string, CompiledTable> = {};
    for (const [name, t] of m.tables) tables[name] = { decl: t.decl, signature: t.signature };
    const roles: Record<string, { label?: string }> = {};
    for (const [name, r] of m.roles) roles[name] = r;
    return {
      format: 1,
      compilerVersion: COMPILER_VERSION,
      name: m.name,
      ...(m.label === undefined ? {} : { label: m.label }),
      roles,
      caseFields: m.caseFields,
      start: { state: m.start.state.text, who: m.start.who.map((w) => whoSpec(w, m.persons)) },
      states,
      tables,
      machine: { id: m.name, initial: m.start.state.text, states: configs },
      guards: this.guards,
      actions: this.actions,
    };
  }

  private state(name: string, s: A.StateDecl): { spec: StateSpec; config: StateConfig } {
    if (s.final) {
      // Entering a final state still clears the due times left by the state before it.
      return {
        spec: { ...(s.label === undefined ? {} : { label: s.label.value }), final: true, events: {}, timers: [] },
        config: { type: 'final', entry: [this.action({ kind: 'arm', state: name })] },
      };
    }
    const events: Record<string, EventSpec> = {};
    const timers: TimerSpec[] = [];
    const on: Record<string, TransitionConfig[]> = {};
    const after: Record<string, TransitionConfig[]> = {};
    let always: TransitionConfig[] | undefined;
    let multi: MultiSpec | undefined;

    s.clauses.forEach((c, i) => {
      switch (c.kind) {
        case 'on': {
          const scope: ScopeRef = { state: name, event: c.event.text };
          events[c.event.text] = this.eventSpec(c);
          on[c.event.text] = this.eventTransitions(name, c, scope);
          break;
        }
        case 'after': {
          const key = `${name}/t${i}`;
          const delay = key;
          timers.push({ key, kind: 'deadline', delay, duration: c.duration });
          const scope: ScopeRef = { state: name };
          const acts = this.actionList(c.actions, scope, name, 'timeout');
          after[delay] = this.targets(c.targets, scope, [], acts, name, 'timeout');
          c.reminders.forEach((r, j) => {
            const rdelay = `${name}/r${i}_${j}`;
            timers.push({ key: rdelay, kind: 'reminder', delay: rdelay, percent: r.percent, of: key });
            after[rdelay] = [{ actions: this.actionList(r.actions, scope, name, 'reminder') }];
          });
          break;
        }
        case 'each': {
          const scope: ScopeRef = { state: name, event: c.on.event.text };
          events[c.on.event.text] = { ...this.eventSpec(c.on), instanceVariable: c.variable.text };
          multi = {
            variable: c.variable.text,
            items: c.items,
            event: c.on.event.text,
            join: c.join.kind === 'atLeast' ? { kind: 'atLeast', count: c.join.count } : { kind: c.join.kind },
          };
          const record = this.action({ kind: 'recordInstance', scope });
          on[c.on.event.text] = [{
            guard: this.guard({ kind: 'instance', scope, requires: c.on.requires.map((r) => r.test) }),
            actions: [record, ...this.actionList(c.on.actions, scope, name, 'event')],
          }];
          always = c.targets.map((t) => {
            const guard = this.guard(t.when === undefined ? { kind: 'joined', scope: { state: name } } : { kind: 'joined', scope: { state: name }, when: t.when });
            return { target: t.state.text, reenter: true, guard, actions: this.actionList(t.actions, { state: name }, name, 'event') };
          });
          if (c.within !== undefined) {
            timers.push({ key: `${name}/w`, kind: 'join-deadline', delay: `${name}/w`, duration: c.within });
            const missed = this.action({ kind: 'recordMissed', state: name });
            const tscope: ScopeRef = { state: name };
            after[`${name}/w`] = this.targets(c.timeoutTargets, tscope, [], [missed, ...this.actionList(c.timeoutActions, tscope, name, 'timeout')], name, 'timeout');
          }
          break;
        }
      }
    });

    const spec: StateSpec = {
      ...(s.label === undefined ? {} : { label: s.label.value }),
      final: false,
      events,
      timers,
      ...(multi === undefined ? {} : { multi }),
    };
    const config: StateConfig = {
      entry: [this.action({ kind: 'arm', state: name })],
      ...(Object.keys(on).length > 0 ? { on } : {}),
      ...(Object.keys(after).length > 0 ? { after } : {}),
      ...(always === undefined || always.length === 0 ? {} : { always }),
    };
    return { spec, config };
  }

  private eventSpec(c: A.OnClause): EventSpec {
    return {
      ...(c.label === undefined ? {} : { label: c.label.value }),
      who: c.who.map((w) => whoSpec(w, this.model.persons)),
      payload: this.model.payloads.get(c) ?? {},
      requires: c.requires.map((r) => (r.message === undefined ? { test: r.test } : { test: r.test, message: r.message.value })),
    };
  }

  private eventTransitions(state: string, c: A.OnClause, scope: ScopeRef): TransitionConfig[] {
    const requires = c.requires.map((r) => r.test);
    const acts = this.actionList(c.actions, scope, state, 'event');
    const extend = c.actions.some((a) => a.kind === 'extend');
    if (c.targets.length === 0) {
      const guard = requires.length === 0 ? undefined : this.guard({ kind: 'transition', scope, requires });
      // Extending re-enters the state so its timers are cancelled and armed again at the new due time.
      const base: TransitionConfig = extend ? { target: state, reenter: true, actions: acts } : { actions: acts };
      return [guard === undefined ? base : { ...base, guard }];
    }
    return this.targets(c.targets, scope, requires, acts, state, 'event');
  }

  private targets(targets: readonly A.Target[], scope: ScopeRef, requires: readonly A.Expr[], actions: readonly string[], state: string, reason: 'event' | 'timeout'): TransitionConfig[] {
    if (targets.length === 0) {
      const guard = requires.length === 0 ? undefined : this.guard({ kind: 'transition', scope, requires });
      return [guard === undefined ? { actions } : { guard, actions }];
    }
    return targets.map((t) => {
      const needsGuard = requires.length > 0 || t.when !== undefined;
      const spec: GuardSpec = t.when === undefined ? { kind: 'transition', scope, requires } : { kind: 'transition', scope, requires, when: t.when };
      const base: TransitionConfig = { target: t.state.text, reenter: true, actions: [...actions, ...this.actionList(t.actions, scope, state, reason)] };
      return needsGuard ? { ...base, guard: this.guard(spec) } : base;
    });
  }

  private actionList(actions: readonly A.Action[], scope: ScopeRef, state: string, reason: 'event' | 'reminder' | 'timeout'): string[] {
    return actions.map((a): string => {
      switch (a.kind) {
        case 'set': {
          const field = a.target.kind === 'member' ? a.target.property.text : '';
          return this.action({ kind: 'set', scope, field, value: a.value });
        }
        case 'notify': return this.action({ kind: 'notify', scope, who: whoSpec(a.who, this.model.persons), message: a.message.value, reason });
        case 'credit': return this.action(a.reason === undefined
          ? { kind: 'credit', scope, amount: a.amount, unit: a.unit, to: a.to }
          : { kind: 'credit', scope, amount: a.amount, unit: a.unit, to: a.to, reason: a.reason.value });
        case 'emit': return this.action(a.payload === undefined ? { kind: 'emit', scope, topic: a.topic.value } : { kind: 'emit', scope, topic: a.topic.value, payload: a.payload });
        case 'escalate': return this.action({ kind: 'escalate', scope });
        case 'reassign': return this.action({ kind: 'reassign', scope, to: a.to });
        case 'extend': return this.action({ kind: 'extend', scope, state, by: a.by });
      }
    });
  }
}
