/**
 * An engine that keeps cases in memory: the same pure step, authorization and timers as the
 * Postgres engine, with a clock the caller moves. It runs `wf test` scenarios and the seed
 * workflows' path tests, so a draft can be tried before it is deployed.
 */
import type { CompiledDefinition } from '../dsl/compile.ts';
import { instantiate, type Effect, type Runtime, type TraceEntry } from '../dsl/runtime.ts';
import type { Value } from '../dsl/types.ts';
import type { Calendar } from './calendar.ts';
import { EngineError } from './errors.ts';
import { liveOracle, type Facts, type OrgView } from './org.ts';
import { applyEvent, startCase, type CaseSnapshot, type StepOutcome } from './step.ts';

export interface MemoryEvent {
  readonly seq: number;
  readonly type: string;
  readonly actor: string | null;
  readonly payload: Readonly<Record<string, Value>>;
  readonly at: string;
  readonly state: string;
  readonly facts: Partial<Facts>;
  readonly trace: readonly TraceEntry[];
}

export interface MemoryCase {
  readonly id: string;
  snapshot: CaseSnapshot;
  readonly events: MemoryEvent[];
  readonly effects: Effect[];
}

interface PendingTimer {
  readonly caseId: string;
  readonly id: string;
  readonly eventType: string;
  readonly dueAt: number;
  /** Order of scheduling, so timers due at the same instant fire in a stable order. */
  readonly order: number;
}

export interface SendInput {
  readonly type: string;
  readonly actor: string | null;
  readonly payload?: Readonly<Record<string, Value>>;
  readonly instance?: string | null;
}

/**
 * @example
 * const engine = new MemoryEngine(org, calendar, Date.parse('2026-03-02T09:00:00+08:00'));
 * const id = engine.start(def, { actor: '居民王', unit: '永乐社区', data });
 * engine.send(id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
 * engine.advance(2 * 86_400_000); // fires due timers in order
 */
export class MemoryEngine {
  private readonly cases = new Map<string, MemoryCase>();
  private readonly runtimes = new Map<string, Runtime>();
  private readonly caseRuntime = new Map<string, Runtime>();
  private timers: PendingTimer[] = [];
  private order = 0;
  private nextId = 1;

  constructor(private readonly org: OrgView, private readonly calendar: Calendar, private nowMs: number) {}

  now(): number {
    return this.nowMs;
  }

  private runtime(def: CompiledDefinition): Runtime {
    const key = def.name;
    let rt = this.runtimes.get(key);
    if (rt === undefined || rt.definition !== def) {
      rt = instantiate(def);
      this.runtimes.set(key, rt);
    }
    return rt;
  }

  start(def: CompiledDefinition, input: { readonly actor: string | null; readonly unit: string | null; readonly data: Readonly<Record<string, Value>> }): string {
    const rt = this.runtime(def);
    const oracle = liveOracle(this.org, this.calendar);
    const at = new Date(this.nowMs).toISOString();
    const out = startCase(rt, { data: input.data, actor: input.actor, unit: input.unit, now: at, oracle }, this.org);
    const id = `case-${this.nextId++}`;
    const c: MemoryCase = { id, snapshot: out.snapshot, events: [], effects: [] };
    this.cases.set(id, c);
    this.caseRuntime.set(id, rt);
    this.record(c, out, { type: 'xstate.init', actor: input.actor, payload: input.data }, at, oracle.facts());
    return id;
  }

  get(id: string): MemoryCase {
    const c = this.cases.get(id);
    if (c === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${id}.`, { caseId: id });
    return c;
  }

  runtimeOf(id: string): Runtime {
    const rt = this.caseRuntime.get(id);
    if (rt === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${id}.`, { caseId: id });
    return rt;
  }

  send(id: string, input: SendInput): StepOutcome {
    const c = this.get(id);
    const rt = this.runtimeOf(id);
    const oracle = liveOracle(this.org, this.calendar);
    const at = new Date(this.nowMs).toISOString();
    const out = applyEvent(rt, c.snapshot, {
      type: input.type,
      actor: input.actor,
      payload: input.payload ?? {},
      ...(input.instance === undefined ? {} : { instance: input.instance }),
      now: at,
      oracle,
    }, this.org);
    this.record(c, out, { type: input.type, actor: input.actor, payload: out.payload }, at, oracle.facts());
    return out;
  }

  /** Moves the clock forward, firing every timer that falls due on the way, each at its due time. */
  advance(ms: number): void {
    this.advanceTo(this.nowMs + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      const next = this.timers
        .filter((t) => t.dueAt <= target)
        .sort((a, b) => a.dueAt - b.dueAt || a.order - b.order)[0];
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.nowMs = Math.max(this.nowMs, next.dueAt);
      this.send(next.caseId, { type: next.eventType, actor: null });
    }
    this.nowMs = Math.max(this.nowMs, target);
  }

  pendingTimers(id?: string): readonly { readonly caseId: string; readonly eventType: string; readonly dueAt: string }[] {
    return this.timers
      .filter((t) => id === undefined || t.caseId === id)
      .map((t) => ({ caseId: t.caseId, eventType: t.eventType, dueAt: new Date(t.dueAt).toISOString() }));
  }

  private record(c: MemoryCase, out: StepOutcome, ev: { type: string; actor: string | null; payload: Readonly<Record<string, Value>> }, at: string, facts: Partial<Facts>): void {
    c.snapshot = out.snapshot;
    c.effects.push(...out.effects);
    c.events.push({ seq: c.events.length + 1, type: ev.type, actor: ev.actor, payload: ev.payload, at, state: out.snapshot.state, facts, trace: out.trace });
    const cancelled = new Set(out.cancel);
    const rescheduled = new Set(out.schedule.map((t) => t.id));
    this.timers = this.timers.filter((t) => t.caseId !== c.id || (!cancelled.has(t.id) && !rescheduled.has(t.id)));
    for (const t of out.schedule) {
      this.timers.push({ caseId: c.id, id: t.id, eventType: t.eventType, dueAt: Date.parse(t.dueAt), order: this.order++ });
    }
  }
}
