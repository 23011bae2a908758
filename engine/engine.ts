/**
 * The case engine on Postgres (or embedded PGlite): deploys definitions, starts cases and applies
 * events through the pure step, writing each event with everything it changes in one statement.
 *
 * Concurrency: each case row carries a version; an event is written only if the version it was
 * computed from is still current, so of two racing senders one wins and the other recomputes on
 * the new state (and, if the event no longer fits, gets NOT_POSSIBLE naming the state it moved to).
 * Snapshots are cached per case, so the common case costs one round trip.
 */
import { randomUUID } from 'node:crypto';
import { checkSource, type SourceLoader } from '../dsl/check.ts';
import { COMPILER_VERSION, compile } from '../dsl/compile.ts';
import type { Diagnostic } from '../dsl/diagnostics.ts';
import type { CaseContext, Runtime } from '../dsl/runtime.ts';
import type { Value } from '../dsl/types.ts';
import { createCalendar, type Calendar } from './calendar.ts';
import { definitionLoader, type LoadedDefinition } from './definitions.ts';
import { EngineError, type ErrorCode } from './errors.ts';
import { canonicalJson, canonicalObject, chainHash, sha256Hex } from './hash.ts';
import { liveOracle, MemoryOrg, type OrgLevel, type OrgView, type RoleGrant } from './org.ts';
import { applyEvent, startCase as startStep, type CaseSnapshot, type StepOutcome } from './step.ts';
import { AppendBatcher, insertCase, type PendingAppend, loadCase, recordRefusal, findPrior, type AppendResult, type EventRecord, type PreSerialized, type PriorAnswer } from './store/cases.ts';
import type { OpenedDatabase } from './store/open.ts';
import { holdsTimer } from './store/timers.ts';
import { findDefinition, insertDefinition, latestDefinition, loadOrg, type DefinitionRow } from './store/registry.ts';

/** The time source; tests inject one they can move. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface EngineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface EngineOptions {
  readonly store: OpenedDatabase;
  readonly clock?: Clock;
  readonly calendar?: Calendar;
  /** Identifies this process in timer claims. */
  readonly nodeId?: string;
  readonly logger?: EngineLogger;
  /** How long the in-memory org tree and role grants are trusted before they are read again (default 5 s). */
  readonly orgMaxAgeMs?: number;
  /** How many case snapshots to keep in memory (default 10,000). */
  readonly caseCacheSize?: number;
  /** Group commit: at most this many events in one statement (default 64)… */
  readonly maxBatch?: number;
  /**
   * …and at most this many such statements in flight at once (default 2: while the database writes
   * one batch, the next, once whole, is already on its way on another connection; see
   * `AppendBatcher`).
   */
  readonly batchesInFlight?: number;
}

/** A case as callers see it. */
export interface CaseView {
  readonly id: string;
  readonly workflow: string;
  readonly definitionVersion: number;
  readonly definitionId: string;
  readonly state: string;
  readonly status: 'active' | 'done' | 'suspended';
  readonly data: Readonly<Record<string, Value>>;
  /** The responsible org unit. */
  readonly unit: string | null;
  readonly submitter: string | null;
  /** Number of events in its history. */
  readonly version: number;
  readonly headHash: string | null;
  /** Due times of the current state's deadlines and reminders. */
  readonly due: Readonly<Record<string, string>>;
  readonly multi: CaseContext['multi'];
}

export interface StartInput {
  readonly workflow: string;
  /** Defaults to the newest version. */
  readonly version?: number;
  readonly orgUnit: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** Who starts it; null for an anonymous resident (码上办). */
  readonly actor: string | null;
  readonly onBehalfOf?: string | null;
  readonly idempotencyKey?: string;
  /** A case id chosen by the caller; otherwise one is made. */
  readonly caseId?: string;
}

/** A case as {@link Engine.caseState} reads it: what the step functions need, and its view. */
export interface CaseState {
  readonly runtime: Runtime;
  readonly snapshot: CaseSnapshot;
  readonly definition: DefinitionRow;
  readonly version: number;
  readonly suspended: boolean;
  readonly view: CaseView;
}

export interface SendInput {
  readonly type: string;
  readonly payload?: Readonly<Record<string, unknown>>;
  readonly actor: string | null;
  readonly onBehalfOf?: string | null;
  /** For a multi-unit step: the unit the sender acts for. */
  readonly instance?: string | null;
  readonly idempotencyKey?: string;
}

export interface DeployResult {
  readonly name: string;
  readonly version: number;
  readonly id: string;
  /** False when the source equals the newest version's, which is returned instead. */
  readonly created: boolean;
  readonly diagnostics: readonly Diagnostic[];
}

/** An event written by `writeSystemEvent`. Types are `case.<something>` so they never collide with a workflow's. */
export interface SystemEventInput {
  readonly type: string;
  readonly actor: string | null;
  readonly role?: string | null;
  readonly payload: Readonly<Record<string, Value>>;
}

export interface SystemEventState {
  readonly snapshot: CaseSnapshot;
  readonly runtime: Runtime;
  readonly definition: DefinitionRow;
  readonly suspended: boolean;
  /** Number of events so far. */
  readonly version: number;
  /** The event's recorded time. */
  readonly now: string;
}

export interface SystemEventChange {
  readonly snapshot: CaseSnapshot;
  readonly schedule?: StepOutcome['schedule'];
  readonly cancel?: readonly string[];
  readonly effects?: StepOutcome['effects'];
  readonly trace?: StepOutcome['trace'];
  readonly suspended?: boolean;
  /** Moves the case to this definition (migration). */
  readonly definitionId?: string;
}

interface CachedCase {
  readonly version: number;
  readonly snapshot: CaseSnapshot;
  readonly headHash: string | null;
  readonly definitionId: string;
  readonly suspended: boolean;
}

export type { LoadedDefinition } from './definitions.ts';

const MAX_ATTEMPTS = 8;

/** Errors from the driver that mean the connection, not the statement, failed. */
function isConnectionFailure(e: unknown): boolean {
  if (e instanceof EngineError) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^(08|57P0)/.test(code)) return true;
  const msg = e instanceof Error ? e.message : String(e);
  return /Connection terminated|ECONNRESET|EPIPE|socket hang up|Client has encountered a connection error|connection.*(closed|ended)/i.test(msg);
}

/**
 * @example
 * const engine = new Engine({ store: await openDatabase({ databaseUrl }) });
 * const { name, version } = await engine.deploy(source, 'workflows/五单服务.wf');
 * const c = await engine.startCase({ workflow: name, orgUnit: '永乐社区', actor: '居民王', data });
 * await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
 */
export class Engine {
  readonly store: OpenedDatabase;
  readonly clock: Clock;
  readonly nodeId: string;
  private calendar: Calendar;
  private readonly logger: EngineLogger | undefined;
  private readonly orgMaxAgeMs: number;
  private readonly caseCacheSize: number;
  private readonly cases = new Map<string, CachedCase>();
  /** The answers `startCase`/`sendEvent` gave from an idempotency record rather than by applying. */
  private readonly replayedAnswers = new WeakSet<CaseView>();
  private readonly loadStored: (id: string) => Promise<LoadedDefinition>;
  private readonly batcher: AppendBatcher;
  /** The tail of each case's queue of writes in this process: one event of a case at a time. */
  private readonly lanes = new Map<string, Promise<unknown>>();
  private readonly commitListeners = new Set<() => void>();
  private orgCache: { org: MemoryOrg; at: number } | undefined;
  private orgLoading: Promise<MemoryOrg> | undefined;

  constructor(options: EngineOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.calendar = options.calendar ?? createCalendar();
    this.nodeId = options.nodeId ?? `node-${randomUUID().slice(0, 8)}`;
    this.logger = options.logger;
    this.orgMaxAgeMs = options.orgMaxAgeMs ?? 5_000;
    this.caseCacheSize = options.caseCacheSize ?? 10_000;
    this.loadStored = definitionLoader(this.store);
    this.batcher = new AppendBatcher(this.store, options.maxBatch ?? 64, options.batchesInFlight ?? 2);
  }

  /** Runs `work` after every earlier write to the same case in this process has finished. */
  private serial<T>(caseId: string, work: () => Promise<T>): Promise<T> {
    const prev = this.lanes.get(caseId) ?? Promise.resolve();
    const run = prev.then(work, work);
    const tail = run.then(() => undefined, () => undefined);
    this.lanes.set(caseId, tail);
    void tail.then(() => {
      if (this.lanes.get(caseId) === tail) this.lanes.delete(caseId);
    });
    return run;
  }

  /** Replaces the working-day calendar (holidays change yearly); recorded deadlines keep their values. */
  setCalendar(calendar: Calendar): void {
    this.calendar = calendar;
  }

  /** The working-day calendar deadlines are computed with now (case operations that arm timers need it). */
  get workCalendar(): Calendar {
    return this.calendar;
  }

  now(): string {
    return new Date(this.clock.now()).toISOString();
  }

  // ---- definitions -----------------------------------------------------------------------

  /**
   * Checks and compiles a workflow and stores it as a new version, unless its source equals the
   * newest version's. Throws DEFINITION_INVALID with the diagnostics when it does not compile.
   */
  async deploy(source: string, file = '<deploy>', load?: SourceLoader): Promise<DeployResult> {
    const checked = checkSource(source, file, load === undefined ? {} : { load });
    if (checked.model === undefined) {
      throw new EngineError('DEFINITION_INVALID', `${file} does not compile: ${checked.diagnostics.filter((d) => d.severity === 'error').length} error(s).`, { diagnostics: checked.diagnostics });
    }
    const compiled = compile(checked.model);
    for (let attempt = 0; ; attempt++) {
      const latest = await latestDefinition(this.store, compiled.name);
      if (latest !== undefined && latest.source === source && latest.compilerVersion === COMPILER_VERSION) {
        return { name: latest.name, version: latest.version, id: latest.id, created: false, diagnostics: checked.diagnostics };
      }
      const version = (latest?.version ?? 0) + 1;
      const id = `${compiled.name}@${version}`;
      try {
        await insertDefinition(this.store, { id, name: compiled.name, version, source, compiled, compilerVersion: COMPILER_VERSION });
        return { name: compiled.name, version, id, created: true, diagnostics: checked.diagnostics };
      } catch (e) {
        // Another deployer took this version number first: look again.
        if ((e as { code?: unknown }).code !== '23505' || attempt > 5) throw e;
      }
    }
  }

  /** The stored definition and its running machine, cached per id. */
  loadDefinition(id: string): Promise<LoadedDefinition> {
    return this.loadStored(id);
  }

  async definition(workflow: string, version?: number): Promise<LoadedDefinition> {
    const row = version === undefined ? await latestDefinition(this.store, workflow) : await findDefinition(this.store, workflow, version);
    if (row === undefined) {
      throw new EngineError('DEFINITION_NOT_FOUND', version === undefined ? `No workflow named "${workflow}" is deployed.` : `Workflow "${workflow}" has no version ${version}.`, { workflow, version: version ?? null });
    }
    return this.loadDefinition(row.id);
  }

  // ---- org tree --------------------------------------------------------------------------

  /** The org tree and role grants, read again when older than `orgMaxAgeMs` or after `invalidateOrg`. */
  async org(): Promise<OrgView> {
    const c = this.orgCache;
    if (c !== undefined && Date.now() - c.at < this.orgMaxAgeMs) return c.org;
    this.orgLoading ??= loadOrg(this.store).then(({ units, grants }) => {
      const byActor: Record<string, RoleGrant[]> = {};
      for (const g of grants) (byActor[g.actor] ??= []).push({ role: g.role, unit: g.unit });
      const org = new MemoryOrg(units.map((u) => ({ id: u.id, parent: u.parent, level: u.level as OrgLevel, name: u.name })), byActor);
      this.orgCache = { org, at: Date.now() };
      return org;
    }).finally(() => {
      this.orgLoading = undefined;
    });
    return this.orgLoading;
  }

  invalidateOrg(): void {
    this.orgCache = undefined;
  }

  // ---- reading cases ---------------------------------------------------------------------

  /**
   * Calls `listener` after every event this engine commits (a start, an event, a timer firing, a
   * case operation), before the caller is answered; the server wakes its live streams with it.
   * Returns the function that stops the calls.
   * @example const stop = engine.onCommitted(() => feed.poke());
   */
  onCommitted(listener: () => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** An event of the case was committed: keep its new state and tell the listeners. */
  private committed(id: string, c: CachedCase): void {
    this.remember(id, c);
    for (const listener of this.commitListeners) listener();
  }

  private remember(id: string, c: CachedCase): void {
    this.cases.delete(id);
    this.cases.set(id, c);
    if (this.cases.size > this.caseCacheSize) {
      const oldest = this.cases.keys().next().value;
      if (oldest !== undefined) this.cases.delete(oldest);
    }
  }

  /** Drops a case from the cache, e.g. after another process changed it. */
  forget(id: string): void {
    this.cases.delete(id);
  }

  private async fetch(id: string, fresh: boolean): Promise<CachedCase> {
    if (!fresh) {
      const hit = this.cases.get(id);
      if (hit !== undefined) return hit;
    }
    const row = await loadCase(this.store, id);
    if (row === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${id}.`, { caseId: id });
    const context = { ...(row.snapshot as Omit<CaseContext, 'data'>), data: row.data as CaseContext['data'] };
    const c: CachedCase = {
      version: row.version,
      snapshot: { state: row.state, status: row.status === 'done' ? 'done' : 'active', context },
      headHash: row.headHash,
      definitionId: row.definitionId,
      suspended: row.status === 'stopped',
    };
    this.remember(id, c);
    return c;
  }

  private async view(id: string, c: CachedCase): Promise<CaseView> {
    const def = await this.loadDefinition(c.definitionId);
    return toView(id, c, def.row);
  }

  async getCase(id: string): Promise<CaseView> {
    return this.view(id, await this.fetch(id, true));
  }

  /**
   * The runtime and snapshot of a case, for callers that need both (available actions, migration),
   * with its view as `getCase` gives it, all from one read.
   */
  async caseState(id: string): Promise<CaseState> {
    const c = await this.fetch(id, true);
    const def = await this.loadDefinition(c.definitionId);
    return { runtime: def.runtime, snapshot: c.snapshot, definition: def.row, version: c.version, suspended: c.suspended, view: toView(id, c, def.row) };
  }

  // ---- writing ---------------------------------------------------------------------------

  /**
   * Starts a case. With an idempotency key the case id is derived from the actor and the key, so
   * a retry finds the first attempt's answer.
   */
  async startCase(input: StartInput): Promise<CaseView> {
    const def = await this.definition(input.workflow, input.version);
    const actor = input.actor;
    const key = input.idempotencyKey;
    const idemActor = actor ?? '';
    const caseId = input.caseId ?? (key === undefined ? randomUUID() : `c-${sha256Hex(`${idemActor}\u0000${key}`).slice(0, 32)}`);
    const requestHash = sha256Hex(canonicalJson({ op: 'start', workflow: input.workflow, version: input.version ?? null, orgUnit: input.orgUnit, data: input.data, onBehalfOf: input.onBehalfOf ?? null }));
    if (key !== undefined) {
      const prior = await findPrior(this.store, caseId, idemActor, key);
      if (prior !== null) return this.answer(prior, requestHash);
    }
    const org = await this.org();
    if (org.unit(input.orgUnit) === undefined) {
      throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${input.orgUnit}.`, { orgUnit: input.orgUnit });
    }
    const oracle = liveOracle(org, this.calendar);
    const now = this.now();
    let out: StepOutcome;
    try {
      out = startStep(def.runtime, { data: input.data as Record<string, Value>, actor, unit: input.orgUnit, now, oracle }, org);
    } catch (e) {
      if (e instanceof EngineError && key !== undefined) {
        const prior = await recordRefusal(this.store, caseId, { actorId: idemActor, key, requestHash, response: { error: e.toJSON() } });
        if (prior !== null) return this.answer(prior, requestHash);
      }
      throw e;
    }
    // The start records its definition, so replay knows where a migrated case began.
    const { event, json } = this.eventRecord(caseId, 1, null, {
      type: 'start', actor, onBehalfOf: input.onBehalfOf ?? null, role: out.authorization.role, orgUnit: input.orgUnit,
      payload: input.data as Record<string, Value>, now, facts: { oracle: oracle.facts(), authorization: out.authorization, definitionId: def.row.id }, out,
    });
    const cached: CachedCase = { version: 1, snapshot: out.snapshot, headHash: event.hash, definitionId: def.row.id, suspended: false };
    const view = toView(caseId, cached, def.row);
    let result: AppendResult;
    try {
      result = await insertCase(this.store, def.row.id, {
        caseId, state: out.snapshot.state, status: out.snapshot.status, orgUnitId: out.snapshot.context.unit ?? input.orgUnit, event, json,
        schedule: out.schedule.map((t) => ({ id: t.id, type: t.eventType, due: t.dueAt })),
        ...(key === undefined ? {} : { idempotency: { actorId: idemActor, key, requestHash, response: { case: view } } }),
      });
    } catch (e) {
      throw this.unknownOutcome(e, caseId);
    }
    if (!result.applied) {
      if (result.prior !== null) return this.answer(result.prior, requestHash);
      throw new EngineError('NOT_POSSIBLE', `A case with id ${caseId} already exists.`, { caseId });
    }
    this.committed(caseId, cached);
    return view;
  }

  /** Applies an event sent by a person. Timer events are the poller's alone: a person cannot fire a deadline early. */
  async sendEvent(caseId: string, input: SendInput): Promise<CaseView> {
    if (input.type.startsWith('xstate.')) {
      throw new EngineError('NOT_ALLOWED', `"${input.type}" is an internal event; only the timer poller may send it.`, { event: input.type, allowed: [] });
    }
    return this.apply(caseId, input, undefined);
  }

  /**
   * Fires a timer this node has claimed. Returns false when the timer no longer applies (the case
   * moved on, or the claim was lost), in which case nothing was written.
   */
  async fireTimer(caseId: string, timerId: string, eventType: string, claimedBy: string): Promise<boolean> {
    try {
      await this.apply(caseId, { type: eventType, actor: null }, { timerId, claimedBy });
      return true;
    } catch (e) {
      if (e instanceof EngineError && e.code === 'NOT_POSSIBLE') return false;
      throw e;
    }
  }

  private apply(caseId: string, input: SendInput, firing: { timerId: string; claimedBy: string } | undefined): Promise<CaseView> {
    return this.serial(caseId, () => this.applyNow(caseId, input, firing));
  }

  private async applyNow(caseId: string, input: SendInput, firing: { timerId: string; claimedBy: string } | undefined): Promise<CaseView> {
    const key = input.idempotencyKey;
    const idemActor = input.actor ?? '';
    const requestHash = key === undefined ? '' : sha256Hex(canonicalJson({ op: 'event', type: input.type, payload: input.payload ?? {}, onBehalfOf: input.onBehalfOf ?? null, instance: input.instance ?? null }));
    let fresh = false;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // Tell the batcher this event is on its way, so a batch may wait for it rather than leave lopsided.
      const pending = this.batcher.prepare();
      try {
        const outcome = await this.attempt(caseId, input, firing, fresh, pending, { key, idemActor, requestHash });
        if (outcome !== 'retry') return outcome;
      } finally {
        pending.withdraw();
      }
      fresh = true; // someone else wrote first: recompute on their result
    }
    throw new EngineError('UNAVAILABLE', `Case ${caseId} is changing too fast to apply "${input.type}"; try again.`, { caseId });
  }

  /** One try at applying an event: its view, or 'retry' when another writer got there first. */
  private async attempt(caseId: string, input: SendInput, firing: { timerId: string; claimedBy: string } | undefined, fresh: boolean,
    pending: PendingAppend, idem: { key: string | undefined; idemActor: string; requestHash: string }): Promise<CaseView | 'retry'> {
    const { key, idemActor, requestHash } = idem;
    const c = await this.fetch(caseId, fresh);
    const def = await this.loadDefinition(c.definitionId);
    if (c.suspended && firing === undefined) {
      throw new EngineError('CASE_SUSPENDED', `Case ${caseId} is suspended.`, { caseId });
    }
    const org = await this.org();
    const oracle = liveOracle(org, this.calendar);
    const now = this.now();
    let out: StepOutcome;
    try {
      out = applyEvent(def.runtime, c.snapshot, {
        type: input.type,
        actor: input.actor,
        payload: (input.payload ?? {}) as Record<string, Value>,
        ...(input.onBehalfOf === undefined ? {} : { onBehalfOf: input.onBehalfOf }),
        ...(input.instance === undefined ? {} : { instance: input.instance }),
        now,
        oracle,
      }, org);
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      // A cached snapshot may be behind another process's write: judge refusals on fresh data.
      if (!fresh && (e.code === 'NOT_POSSIBLE' || e.code === 'NOT_ALLOWED')) return 'retry';
      if (key !== undefined) {
        const prior = await recordRefusal(this.store, caseId, { actorId: idemActor, key, requestHash, response: { error: e.toJSON() } });
        if (prior !== null) return this.answer(prior, requestHash);
      }
      throw e;
    }
    const unit = out.snapshot.context.unit;
    if (unit !== null && org.unit(unit) === undefined) {
      // `reassign to "…"` may name a unit that does not exist; refuse rather than write a dangling unit.
      throw new EngineError('ORG_UNIT_NOT_FOUND', `"${input.type}" would make ${unit} responsible, but there is no such org unit.`, { orgUnit: unit });
    }
    const seq = c.version + 1;
    const { event, json } = this.eventRecord(caseId, seq, c.headHash, {
      type: input.type, actor: input.actor, onBehalfOf: input.onBehalfOf ?? null, role: out.authorization.role,
      orgUnit: out.authorization.instance ?? out.authorization.unit, payload: out.payload, now,
      facts: { oracle: oracle.facts(), authorization: out.authorization }, out,
    });
    const next: CachedCase = { version: seq, snapshot: out.snapshot, headHash: event.hash, definitionId: c.definitionId, suspended: c.suspended };
    const view = toView(caseId, next, def.row);
    const scheduled = new Set(out.schedule.map((t) => t.id));
    let result: AppendResult;
    try {
      result = await pending.append({
        caseId, expectedVersion: c.version, state: out.snapshot.state, status: c.suspended ? 'stopped' : out.snapshot.status,
        orgUnitId: out.snapshot.context.unit ?? '', event, json,
        schedule: dedupeTimers(out.schedule.map((t) => ({ id: t.id, type: t.eventType, due: t.dueAt }))),
        cancel: out.cancel.filter((id) => !scheduled.has(id) && id !== firing?.timerId),
        ...(firing === undefined ? {} : { firing: { ...firing, markFired: !scheduled.has(firing.timerId) } }),
        ...(key === undefined ? {} : { idempotency: { actorId: idemActor, key, requestHash, response: { case: view } } }),
      });
    } catch (e) {
      throw this.unknownOutcome(e, caseId);
    }
    if (result.applied) {
      this.committed(caseId, next);
      return view;
    }
    if (result.prior !== null) {
      this.forget(caseId);
      return this.answer(result.prior, requestHash);
    }
    if (firing !== undefined && !(await holdsTimer(this.store, { caseId, timerId: firing.timerId }, firing.claimedBy))) {
      // Another node holds the timer now (this one's lease ran out): it is theirs to fire.
      throw new EngineError('NOT_POSSIBLE', `Timer ${firing.timerId} is no longer claimed by ${firing.claimedBy}.`, { caseId, timerId: firing.timerId });
    }
    return 'retry'; // someone else wrote first: recompute on their result
  }

  /**
   * Writes an event that is not a machine transition — suspend, resume, reassign, link, migrate —
   * through the same chained, version-checked write. `compute` gets the current state and returns
   * the new snapshot and what else changes; it may throw an EngineError to refuse. It runs again
   * if another writer got there first.
   * @example
   * await engine.writeSystemEvent(id, { type: 'case.reassigned', actor: '街道书记赵', payload: { to: '县民政局' } },
   *   ({ snapshot }) => ({ snapshot: { ...snapshot, context: { ...snapshot.context, unit: '县民政局' } } }));
   */
  writeSystemEvent(caseId: string, input: SystemEventInput, compute: (current: SystemEventState) => SystemEventChange): Promise<CaseView> {
    return this.serial(caseId, () => this.writeSystemEventNow(caseId, input, compute));
  }

  private async writeSystemEventNow(caseId: string, input: SystemEventInput, compute: (current: SystemEventState) => SystemEventChange): Promise<CaseView> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const c = await this.fetch(caseId, attempt > 0);
      const def = await this.loadDefinition(c.definitionId);
      const now = this.now();
      const change = compute({ snapshot: c.snapshot, runtime: def.runtime, definition: def.row, suspended: c.suspended, version: c.version, now });
      const target = change.definitionId === undefined ? def : await this.loadDefinition(change.definitionId);
      const suspended = change.suspended ?? c.suspended;
      const seq = c.version + 1;
      const trace = change.trace ?? [];
      const out: StepOutcome = {
        snapshot: change.snapshot, effects: change.effects ?? [], schedule: change.schedule ?? [], cancel: change.cancel ?? [], trace,
        authorization: { role: input.role ?? null, unit: null, instance: null, clause: 'anyone' }, payload: input.payload,
      };
      const { event, json } = this.eventRecord(caseId, seq, c.headHash, {
        type: input.type, actor: input.actor, onBehalfOf: null, role: input.role ?? null, orgUnit: change.snapshot.context.unit,
        payload: input.payload, now, facts: { system: true, definitionId: target.row.id }, out,
      });
      const next: CachedCase = { version: seq, snapshot: change.snapshot, headHash: event.hash, definitionId: target.row.id, suspended };
      let result: AppendResult;
      try {
        result = await this.batcher.append({
          caseId, expectedVersion: c.version, state: change.snapshot.state, status: suspended ? 'stopped' : change.snapshot.status,
          orgUnitId: change.snapshot.context.unit ?? '', event, json,
          schedule: dedupeTimers((change.schedule ?? []).map((t) => ({ id: t.id, type: t.eventType, due: t.dueAt }))),
          cancel: change.cancel ?? [],
          ...(change.definitionId === undefined ? {} : { definitionId: change.definitionId }),
        });
      } catch (e) {
        throw this.unknownOutcome(e, caseId);
      }
      if (result.applied) {
        this.committed(caseId, next);
        return toView(caseId, next, target.row);
      }
    }
    throw new EngineError('UNAVAILABLE', `Case ${caseId} is changing too fast; try again.`, { caseId });
  }

  private unknownOutcome(e: unknown, caseId: string): unknown {
    this.forget(caseId);
    if (isConnectionFailure(e)) {
      this.logger?.warn({ err: e, caseId }, 'connection failed while writing an event; outcome unknown');
      return new EngineError('OUTCOME_UNKNOWN', 'The connection to the database failed while the change was being committed; it may or may not have been applied.', { caseId });
    }
    return e;
  }

  /** Replays a stored answer: the first response for this idempotency key. */
  private answer(prior: PriorAnswer, requestHash: string): CaseView {
    if (prior.requestHash !== requestHash) {
      throw new EngineError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was already used for a different request.', {});
    }
    const r = prior.response as { case?: CaseView; error?: { code: ErrorCode; message: string; details: Record<string, unknown> } };
    if (r.error !== undefined) throw new EngineError(r.error.code, r.error.message, { ...r.error.details, replayed: true });
    if (r.case === undefined) throw new EngineError('UNAVAILABLE', 'The stored answer for this key is unreadable.', {});
    const view = { ...r.case };
    this.replayedAnswers.add(view);
    return view;
  }

  /**
   * Whether a view `startCase` or `sendEvent` returned is a replayed answer: the first answer to a
   * retry under the same idempotency key, nothing applied this time (for metrics and logs that
   * count what was applied).
   * @example const view = await engine.sendEvent(id, input); if (!engine.isReplayed(view)) applied.inc();
   */
  isReplayed(view: CaseView): boolean {
    return this.replayedAnswers.has(view);
  }

  /**
   * The event record and its hash. Each part is serialized once, canonically: the hash is taken
   * over the canonical body, and the row is written from the same texts (`json`).
   */
  private eventRecord(caseId: string, seq: number, prevHash: string | null, e: {
    type: string; actor: string | null; onBehalfOf: string | null; role: string | null; orgUnit: string | null;
    payload: Readonly<Record<string, Value>>; now: string; facts: unknown; out: StepOutcome;
  }): { event: EventRecord; json: PreSerialized } {
    const ctx = e.out.snapshot.context as unknown as Record<string, unknown>;
    const ctxParts: Record<string, string | undefined> = {};
    for (const k of Object.keys(ctx)) ctxParts[k] = ctx[k] === undefined ? undefined : canonicalJson(ctx[k]);
    const { data: dataJson, ...restParts } = ctxParts;
    const resultingState = { state: e.out.snapshot.state, status: e.out.snapshot.status, context: sha256Hex(canonicalObject(ctxParts)) };
    const decision = { trace: e.out.trace, effects: e.out.effects };
    const json: PreSerialized = {
      data: dataJson ?? 'null', snapshot: canonicalObject(restParts), payload: canonicalJson(e.payload), facts: canonicalJson(e.facts),
      decision: canonicalJson(decision), resultingState: canonicalJson(resultingState),
    };
    const body = {
      caseId, seq, type: e.type, actorId: e.actor, onBehalfOf: e.onBehalfOf, role: e.role, orgUnitId: e.orgUnit,
      payload: e.payload, recordedAt: e.now, facts: e.facts, resultingState, decision,
    };
    // canonicalJson(body), with the parts already serialized taken as they are.
    const serialized: Record<string, string> = { payload: json.payload, facts: json.facts, resultingState: json.resultingState, decision: json.decision };
    const parts: Record<string, string> = {};
    for (const [k, v] of Object.entries(body)) parts[k] = serialized[k] ?? canonicalJson(v);
    const canonicalBody = canonicalObject(parts);
    const hash = chainHash(prevHash, canonicalBody);
    return { event: { ...body, prevHash, hash } as EventRecord, json };
  }
}

function dedupeTimers<T extends { id: string }>(ts: readonly T[]): T[] {
  const m = new Map<string, T>();
  for (const t of ts) m.set(t.id, t);
  return [...m.values()];
}

function toView(id: string, c: CachedCase, def: DefinitionRow): CaseView {
  const ctx = c.snapshot.context;
  return {
    id,
    workflow: def.name,
    definitionVersion: def.version,
    definitionId: def.id,
    state: c.snapshot.state,
    status: c.suspended ? 'suspended' : c.snapshot.status,
    data: ctx.data,
    unit: ctx.unit,
    submitter: ctx.submitter,
    version: c.version,
    headHash: c.headHash,
    due: ctx.due,
    multi: ctx.multi,
  };
}
