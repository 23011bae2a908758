/**
 * Case operations that are not workflow events — suspend and resume, reassign the responsible
 * unit, link cases, migrate cases to another definition version — each recorded in the case's
 * chained history as a `case.*` system event through `engine.writeSystemEvent`.
 *
 * Every event's effect on the snapshot is a pure function of the snapshot and the recorded
 * payload (`applySuspended`, `applyResumed`, `applyReassigned`, `applyLinked`, `applyMigrated`),
 * used both to write the event and to replay it ({@link adminReplayers}). Anything computed from
 * the outside world — remaining timer durations, new deadlines from the working-day calendar,
 * the units of a multi-unit step — is computed once and recorded in the payload, so replay needs
 * only the log.
 */
import { initialTransition } from 'xstate';
import type { CompiledDefinition } from '../dsl/compile.ts';
import { instantiate, type CaseContext, type MultiProgress, type Runtime } from '../dsl/runtime.ts';
import type { Value } from '../dsl/types.ts';
import { valuesEqual } from '../dsl/types.ts';
import { validateRecord } from '../dsl/values.ts';
import type { CaseView, Engine, StartInput, SystemEventChange, SystemEventInput, SystemEventState } from './engine.ts';
import type { AuditEvent, SystemEventReplayer } from './system-events.ts';
import { EngineError } from './errors.ts';
import { liveOracle } from './org.ts';
import { TIMER_EVENT_PREFIX, type CaseSnapshot, type TimerRequest } from './step.ts';
import { caseLinks, casesForMigration, hasEventWith, insertCaseLink, liveTimers, type CaseLinkRow, type CaseListRow } from './store/admin.ts';

// ---- payloads and their pure effects -----------------------------------------------------

/** A timer stopped by a suspension: what is left of it, and the `due` key it belongs to. */
export type PausedTimer = {
  readonly eventType: string;
  readonly remainingMs: number;
  /** Its key in the context's `due` map, or null when the state declares no such timer. */
  readonly key: string | null;
};

export type PausedTimers = { readonly [timerId: string]: PausedTimer };

/** The context of a suspended case: the paused timers are kept in it until resume. */
export type SuspendedContext = CaseContext & { readonly paused?: PausedTimers };

export type SuspendedPayload = { readonly reason: string | null; readonly paused: PausedTimers };

export type ResumedTimer = { readonly eventType: string; readonly key: string | null; readonly dueAt: string };

export type ResumedPayload = { readonly reason: string | null; readonly timers: { readonly [timerId: string]: ResumedTimer } };

export type ReassignedPayload = { readonly from: string | null; readonly to: string; readonly reason: string | null };

export type LinkedPayload = { readonly linkedCaseId: string; readonly kind: string };

/** `MultiProgress` as a JSON value (an interface is not assignable to `Value`; this alias is). */
export type MultiProgressJson = {
  readonly state: string;
  readonly items: readonly string[];
  readonly done: { readonly [unit: string]: { readonly actor: string | null; readonly at: string } };
  readonly missed: readonly string[];
};

export type MigratedPayload = {
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly fromState: string;
  readonly toState: string;
  /** 'done' when the target state is final. */
  readonly status: 'active' | 'done';
  /** The target state's due times, computed when the case entered it by migration. */
  readonly due: { readonly [key: string]: string };
  /** The multi-unit progress after migration (kept from the old step, fresh for a new one). */
  readonly multi: MultiProgressJson | null;
  /** Fields the target's case fields add or normalize (defaults, nulls for new optional fields). */
  readonly dataChanges: { readonly [field: string]: Value };
};

function withContext(snapshot: CaseSnapshot, context: SuspendedContext): CaseSnapshot {
  return { ...snapshot, context };
}

function withoutPaused(ctx: SuspendedContext): CaseContext {
  const { paused: _paused, ...rest } = ctx;
  return rest;
}

/**
 * The snapshot after `case.suspended`: the paused timers are kept in the context.
 * @example applySuspended(snapshot, { reason: '群众要求暂缓', paused: { [timerId]: { eventType, remainingMs: 3_600_000, key: '待派单/t2' } } })
 */
export function applySuspended(snapshot: CaseSnapshot, payload: SuspendedPayload): CaseSnapshot {
  return withContext(snapshot, { ...snapshot.context, paused: payload.paused });
}

/**
 * The snapshot after `case.resumed`: each re-armed timer's due time replaces the old one under its key,
 * and the paused timers are dropped.
 * @example applyResumed(snapshot, { reason: null, timers: { [timerId]: { eventType, key: '待派单/t2', dueAt: '2026-03-05T01:00:00.000Z' } } })
 */
export function applyResumed(snapshot: CaseSnapshot, payload: ResumedPayload): CaseSnapshot {
  const due: Record<string, string> = { ...snapshot.context.due };
  for (const t of Object.values(payload.timers)) if (t.key !== null) due[t.key] = t.dueAt;
  return withContext(snapshot, { ...withoutPaused(snapshot.context), due });
}

/**
 * The snapshot after `case.reassigned`: the responsible unit changes.
 * @example applyReassigned(snapshot, { from: '永乐社区', to: '滨江社区', reason: null })
 */
export function applyReassigned(snapshot: CaseSnapshot, payload: ReassignedPayload): CaseSnapshot {
  return withContext(snapshot, { ...snapshot.context, unit: payload.to });
}

/**
 * The snapshot after `case.linked`: unchanged; the link lives in `case_links` and in the history.
 * @example applyLinked(snapshot, { linkedCaseId: oldId, kind: 'recurrence_of' }) === snapshot
 */
export function applyLinked(snapshot: CaseSnapshot, _payload: LinkedPayload): CaseSnapshot {
  return snapshot;
}

/**
 * The snapshot after `case.migrated`: the mapped state, the data with the target's additions,
 * the new due times and multi-unit progress; paused timers (none: suspended cases are not moved) dropped.
 * @example applyMigrated(snapshot, { fromVersion: 1, toVersion: 2, fromState: '待抢单', toState: '待认领', status: 'active', due, multi: null, dataChanges: {} })
 */
export function applyMigrated(snapshot: CaseSnapshot, payload: MigratedPayload): CaseSnapshot {
  const ctx = withoutPaused(snapshot.context);
  return {
    state: payload.toState,
    status: payload.status,
    context: { ...ctx, data: { ...ctx.data, ...payload.dataChanges }, due: payload.due, multi: payload.multi, keepDue: false },
  };
}

/** The recorded payload, trusted as written (the hash chain vouches for it). */
function recorded<T>(record: AuditEvent): T {
  return record.payload as T;
}

/**
 * The replay of each system event this module writes, by event type.
 * @example const next = adminReplayers['case.suspended']?.(snapshot, record, runtimeOf);
 */
export const adminReplayers: Readonly<Record<string, SystemEventReplayer>> = {
  'case.suspended': (s, r) => applySuspended(s, recorded<SuspendedPayload>(r)),
  'case.resumed': (s, r) => applyResumed(s, recorded<ResumedPayload>(r)),
  'case.reassigned': (s, r) => applyReassigned(s, recorded<ReassignedPayload>(r)),
  'case.linked': (s, r) => applyLinked(s, recorded<LinkedPayload>(r)),
  'case.migrated': (s, r) => applyMigrated(s, recorded<MigratedPayload>(r)),
};

// Registered where they are written (audit.ts asks this of every writer of system events): any
// process that can write these events can replay them.

// ---- writing at a known version ----------------------------------------------------------

/** Thrown inside `compute` when the case is no longer at the version the payload was prepared from. */
const STALE = new Error('stale');
const MAX_ATTEMPTS = 8;

type CaseState = Awaited<ReturnType<Engine['caseState']>>;

/**
 * Writes a system event whose payload depends on the case (remaining times, the previous unit):
 * `prepare` reads the case and builds the payload; the write goes ahead only if the case is still
 * at the version read, else everything is read and prepared again.
 */
async function writePrepared(
  engine: Engine,
  caseId: string,
  prepare: (cs: CaseState) => Promise<{ input: SystemEventInput; change: (cur: SystemEventState) => SystemEventChange }>,
): Promise<CaseView> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const cs = await engine.caseState(caseId);
    try {
      const { input, change } = await prepare(cs);
      return await engine.writeSystemEvent(caseId, input, (cur) => {
        if (cur.version !== cs.version) throw STALE;
        return change(cur);
      });
    } catch (e) {
      if (e !== STALE) throw e;
    }
  }
  throw new EngineError('UNAVAILABLE', `Case ${caseId} is changing too fast; try again.`, { caseId });
}

function closedRefusal(caseId: string, snapshot: CaseSnapshot, what: string): EngineError {
  return new EngineError('NOT_POSSIBLE', `Case ${caseId} is closed (${snapshot.state}); it cannot be ${what}. A closed case stays closed: open a linked case instead.`, {
    caseId, state: snapshot.state, allowedEvents: [],
  });
}

// ---- suspend and resume ------------------------------------------------------------------

export interface AdminInput {
  /** Who does it; recorded with the event. */
  readonly actor: string | null;
  readonly reason?: string;
  /** The role the actor acts in, if the caller checked one; recorded with the event. */
  readonly role?: string | null;
}

/** The `due` key of a timer, found from its event type (`xstate.after.<key>.<machine>.<state>`). */
function dueKeyOf(rt: Runtime, state: string, eventType: string): string | null {
  const spec = rt.definition.states[state];
  return spec?.timers.find((t) => eventType.startsWith(`${TIMER_EVENT_PREFIX}${t.delay}.`))?.key ?? null;
}

/**
 * Suspends a case: it refuses events (CASE_SUSPENDED) until resumed, and its live timers are
 * cancelled, each one's remaining time kept in the snapshot (`paused`) and in the event.
 * Throws NOT_POSSIBLE if the case is closed or already suspended.
 * @example await suspendCase(engine, caseId, { actor: '街道书记赵', reason: '群众外出，暂缓办理' });
 */
export async function suspendCase(engine: Engine, caseId: string, input: AdminInput): Promise<CaseView> {
  return writePrepared(engine, caseId, async (cs) => {
    if (cs.suspended) throw new EngineError('NOT_POSSIBLE', `Case ${caseId} is already suspended.`, { caseId, state: cs.snapshot.state, allowedEvents: [] });
    if (cs.snapshot.status === 'done') throw closedRefusal(caseId, cs.snapshot, 'suspended');
    const live = await liveTimers(engine.store, caseId);
    if (live === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${caseId}.`, { caseId });
    if (live.version !== cs.version) throw STALE;
    const nowMs = engine.clock.now();
    const paused: Record<string, PausedTimer> = {};
    for (const t of live.timers) {
      paused[t.id] = { eventType: t.eventType, remainingMs: Math.max(0, Date.parse(t.dueAt) - nowMs), key: dueKeyOf(cs.runtime, cs.snapshot.state, t.eventType) };
    }
    const payload: SuspendedPayload = { reason: input.reason ?? null, paused };
    return {
      input: { type: 'case.suspended', actor: input.actor, role: input.role ?? null, payload },
      change: (cur) => ({ snapshot: applySuspended(cur.snapshot, payload), cancel: Object.keys(paused), suspended: true }),
    };
  });
}

/**
 * Resumes a suspended case: each paused timer is scheduled again at now + its remaining time
 * (clock time: the pause does not count), and the case accepts events again.
 * Throws NOT_POSSIBLE if it is not suspended.
 * @example await resumeCase(engine, caseId, { actor: '街道书记赵' });
 */
export async function resumeCase(engine: Engine, caseId: string, input: AdminInput): Promise<CaseView> {
  return writePrepared(engine, caseId, async (cs) => {
    if (!cs.suspended) throw new EngineError('NOT_POSSIBLE', `Case ${caseId} is not suspended.`, { caseId, state: cs.snapshot.state, allowedEvents: [] });
    const paused = (cs.snapshot.context as SuspendedContext).paused ?? {};
    const nowMs = engine.clock.now();
    const timers: Record<string, ResumedTimer> = {};
    for (const [id, t] of Object.entries(paused)) {
      timers[id] = { eventType: t.eventType, key: t.key, dueAt: new Date(nowMs + t.remainingMs).toISOString() };
    }
    const payload: ResumedPayload = { reason: input.reason ?? null, timers };
    const schedule: TimerRequest[] = Object.entries(timers).map(([id, t]) => ({ id, eventType: t.eventType, dueAt: t.dueAt }));
    return {
      input: { type: 'case.resumed', actor: input.actor, role: input.role ?? null, payload },
      change: (cur) => ({ snapshot: applyResumed(cur.snapshot, payload), schedule, suspended: false }),
    };
  });
}

// ---- reassign ----------------------------------------------------------------------------

/**
 * Makes another org unit responsible for a case (`case.reassigned`), with a `reassigned` effect
 * for the outbox. Who may act by role then follows the new unit (属地). Throws
 * ORG_UNIT_NOT_FOUND for an unknown unit, NOT_POSSIBLE if the case is closed or already there.
 * @example await reassignCase(engine, caseId, { actor: '街道书记赵', to: '滨江社区', reason: '属地调整' });
 */
export async function reassignCase(engine: Engine, caseId: string, input: AdminInput & { readonly to: string }): Promise<CaseView> {
  const org = await engine.org();
  if (org.unit(input.to) === undefined) throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${input.to}.`, { orgUnit: input.to });
  return writePrepared(engine, caseId, async (cs) => {
    if (cs.snapshot.status === 'done') throw closedRefusal(caseId, cs.snapshot, 'reassigned');
    const from = cs.snapshot.context.unit;
    if (from === input.to) throw new EngineError('NOT_POSSIBLE', `${input.to} is already responsible for case ${caseId}.`, { caseId, state: cs.snapshot.state, allowedEvents: [] });
    const payload: ReassignedPayload = { from, to: input.to, reason: input.reason ?? null };
    return {
      input: { type: 'case.reassigned', actor: input.actor, role: input.role ?? null, payload },
      change: (cur) => ({ snapshot: applyReassigned(cur.snapshot, payload), effects: [{ kind: 'reassigned', from, to: input.to }] }),
    };
  });
}

// ---- links -------------------------------------------------------------------------------

/** A link as `linksOf` reports it, from the point of view of the case asked about. */
export interface CaseLink extends CaseLinkRow {
  /** 'to': this case refers to `linkedCaseId`; 'from': `caseId` refers to this case. */
  readonly direction: 'to' | 'from';
}

/**
 * Links a (newer) case to another, e.g. a recurrence to the closed case it recurs from: a row in
 * `case_links` and a `case.linked` event on `caseId`. The linked case is not touched (a closed case
 * stays closed). Linking again is a no-op; a retry after a failure between the two writes
 * completes the missing one without recording the event twice.
 * @example await linkCases(engine, recurrenceId, closedId, 'recurrence_of', { actor: '专班谢' });
 */
export async function linkCases(engine: Engine, caseId: string, linkedCaseId: string, kind: string, by: Pick<AdminInput, 'actor' | 'role'> = { actor: null }): Promise<CaseView> {
  if (caseId === linkedCaseId) throw new EngineError('NOT_POSSIBLE', `A case cannot be linked to itself (${caseId}).`, { caseId, allowedEvents: [] });
  if (kind.trim() === '') throw new EngineError('VALIDATION_FAILED', 'The link kind is empty.', { fields: [{ path: 'kind', code: 'required', message: 'Give the kind of link, e.g. recurrence_of.' }] });
  await engine.getCase(linkedCaseId); // CASE_NOT_FOUND before anything is written
  const existing = await caseLinks(engine.store, caseId);
  if (existing.some((l) => l.caseId === caseId && l.linkedCaseId === linkedCaseId && l.kind === kind)) return engine.getCase(caseId);
  const payload: LinkedPayload = { linkedCaseId, kind };
  let view: CaseView;
  if (await hasEventWith(engine.store, caseId, 'case.linked', payload)) {
    view = await engine.getCase(caseId);
  } else {
    view = await engine.writeSystemEvent(caseId, { type: 'case.linked', actor: by.actor, role: by.role ?? null, payload },
      (cur) => ({ snapshot: applyLinked(cur.snapshot, payload) }));
  }
  await insertCaseLink(engine.store, { caseId, linkedCaseId, kind });
  return view;
}

/**
 * Starts a new case linked to an existing one (a recurrence in 动态调整 of a case already 销号).
 * Whatever the workflow keeps the link in (such as `关联案件`) goes in `start.data`.
 * @example
 * const again = await startLinkedCase(engine, closedId, { workflow: '五步闭环', orgUnit: '黎平县', actor: '专班谢',
 *   data: { 问题: '制度牌又挂上了', 来源: '督查检查', 关联案件: closedId } }, 'recurrence_of');
 */
export async function startLinkedCase(engine: Engine, fromCaseId: string, start: StartInput, kind: string): Promise<CaseView> {
  await engine.getCase(fromCaseId);
  const started = await engine.startCase(start);
  return linkCases(engine, started.id, fromCaseId, kind, { actor: start.actor });
}

/**
 * Every link of a case, in both directions, oldest first.
 * @example const links = await linksOf(engine, closedId); // [{ caseId: newId, linkedCaseId: closedId, kind: 'recurrence_of', direction: 'from', … }]
 */
export async function linksOf(engine: Engine, caseId: string): Promise<CaseLink[]> {
  await engine.getCase(caseId);
  const rows = await caseLinks(engine.store, caseId);
  return rows.map((r) => ({ ...r, direction: r.caseId === caseId ? 'to' : 'from' }));
}

// ---- versions ----------------------------------------------------------------------------

export interface MigrationFilter {
  readonly workflow: string;
  readonly fromVersion?: number;
  /** Only cases in this state (of their current version). */
  readonly state?: string;
  /** Only these cases. */
  readonly caseIds?: readonly string[];
}

export interface MigrationOptions {
  /** Report what would happen and write nothing. */
  readonly dryRun?: boolean;
  /** Who migrates; recorded with each `case.migrated` event. */
  readonly actor: string | null;
  readonly role?: string | null;
  /** Cases migrated at once (default 8). */
  readonly concurrency?: number;
}

/** Why a case stays where it is; stable, so a console can group them. */
export type MigrationRefusalCode =
  | 'not_found' | 'already_on_target' | 'closed' | 'suspended' | 'state_unmapped' | 'state_missing'
  | 'data_invalid' | 'multi_step' | 'moves_on';

export interface MigrationMove {
  readonly caseId: string;
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly fromState: string;
  readonly toState: string;
}

export interface MigrationRefusal {
  readonly caseId: string;
  readonly code: MigrationRefusalCode;
  readonly reason: string;
}

export interface MigrationReport {
  readonly moved: readonly MigrationMove[];
  readonly refused: readonly MigrationRefusal[];
}

/** Machines that start in a given state, to enter a state "as the machine would" when migrating into it. */
const entryMachines = new WeakMap<CompiledDefinition, Map<string, Runtime>>();

function entryRuntime(target: Runtime, state: string): Runtime {
  let byState = entryMachines.get(target.definition);
  if (byState === undefined) {
    byState = new Map();
    entryMachines.set(target.definition, byState);
  }
  let rt = byState.get(state);
  if (rt === undefined) {
    const def = target.definition;
    rt = instantiate({ ...def, machine: { ...def.machine, initial: state } });
    byState.set(state, rt);
  }
  return rt;
}

interface RaiseLike {
  readonly type: string;
  readonly params?: { readonly delay?: unknown; readonly id?: unknown; readonly event?: unknown };
}

type Plan =
  | { readonly ok: true; readonly payload: MigratedPayload; readonly schedule: readonly TimerRequest[]; readonly cancel: readonly string[] }
  | { readonly ok: false; readonly code: MigrationRefusalCode; readonly reason: string };

function refuse(code: MigrationRefusalCode, reason: string): Plan {
  return { ok: false, code, reason };
}

interface PlanInput {
  readonly source: Runtime;
  readonly sourceVersion: number;
  readonly sourceDefinitionId: string;
  readonly target: Runtime;
  readonly targetVersion: number;
  readonly targetDefinitionId: string;
  readonly snapshot: CaseSnapshot;
  readonly suspended: boolean;
  readonly mapping: Readonly<Record<string, string>>;
  readonly now: string;
  readonly oracle: ReturnType<typeof liveOracle>;
}

/**
 * What migrating one case would do, or why it cannot move. The target state is entered as the
 * machine enters it: a machine for the target definition that starts in that state runs the
 * state's entry (`arm`), which computes its deadlines from now with the working-day calendar and,
 * for a multi-unit step, its units; its delayed events are the timers to schedule. A case in the
 * middle of a multi-unit step moves only to a multi-unit step of the same event, and keeps its
 * progress (who has already acted); its deadlines start again from now.
 */
function planMigration(p: PlanInput): Plan {
  const { snapshot } = p;
  if (p.sourceDefinitionId === p.targetDefinitionId) return refuse('already_on_target', `The case is already on version ${p.targetVersion}.`);
  if (snapshot.status === 'done') return refuse('closed', `The case is closed (${snapshot.state}); a closed case stays on its version.`);
  if (p.suspended) return refuse('suspended', 'The case is suspended: its timers are paused. Resume it, then migrate.');
  const fromState = snapshot.state;
  const targetDef = p.target.definition;
  const mapped = Object.hasOwn(p.mapping, fromState) ? p.mapping[fromState] : undefined;
  if (mapped === undefined && targetDef.states[fromState] === undefined) {
    return refuse('state_unmapped', `State "${fromState}" does not exist in version ${p.targetVersion} and the mapping does not say where it goes. Add "${fromState}" to the mapping; the states of version ${p.targetVersion} are: ${Object.keys(targetDef.states).join(', ')}.`);
  }
  const toState = mapped ?? fromState;
  const toSpec = targetDef.states[toState];
  if (toSpec === undefined) {
    return refuse('state_missing', `The mapping sends "${fromState}" to "${toState}", which version ${p.targetVersion} does not have. Its states are: ${Object.keys(targetDef.states).join(', ')}.`);
  }
  const ctx = snapshot.context;
  const checked = validateRecord(targetDef.caseFields, ctx.data, {});
  if (checked.errors.length > 0) {
    return refuse('data_invalid', `The case data does not fit version ${p.targetVersion}: ${checked.errors.map((e) => e.message).join(' ')}`);
  }
  const fromSpec = p.source.definition.states[fromState];
  const midMulti = fromSpec?.multi !== undefined && ctx.multi !== null && ctx.multi.state === fromState;
  if (midMulti && (toSpec.multi === undefined || toSpec.multi.event !== fromSpec.multi?.event)) {
    return refuse('multi_step', `The case is in the middle of the multi-unit step "${fromState}" (${ctx.multi?.items.filter((u) => ctx.multi?.done[u] === undefined).join(', ') || 'nobody'} still to act); "${toState}" in version ${p.targetVersion} is not a multi-unit step of "${fromSpec?.multi?.event ?? ''}". Map it to such a step, or wait until the step is over.`);
  }
  const data = checked.value;
  const [entered, actions] = initialTransition(entryRuntime(p.target, toState).machine, {
    data, actor: ctx.submitter, unit: ctx.unit, now: p.now, oracle: p.oracle,
  });
  if (String(entered.value) !== toState) {
    return refuse('moves_on', `Entering "${toState}" in version ${p.targetVersion} would move the case straight on to "${String(entered.value)}"; map it to a state where it waits.`);
  }
  const enteredCtx = entered.context as CaseContext;
  const nowMs = Date.parse(p.now);
  const schedule: TimerRequest[] = [];
  for (const a of actions as readonly RaiseLike[]) {
    const delay = a.params?.delay;
    const ev = a.params?.event as { type?: unknown } | undefined;
    if (a.type !== 'xstate.raise' || typeof delay !== 'number' || typeof ev?.type !== 'string') continue;
    schedule.push({ id: typeof a.params?.id === 'string' ? a.params.id : ev.type, eventType: ev.type, dueAt: new Date(nowMs + delay).toISOString() });
  }
  const scheduled = new Set(schedule.map((t) => t.id));
  // The old state's timers, by the id XState gives an `after` event; the cancel skips fired ones.
  const cancel = (fromSpec?.timers ?? [])
    .map((t) => `${TIMER_EVENT_PREFIX}${t.delay}.${p.source.definition.machine.id}.${fromState}`)
    .filter((id) => !scheduled.has(id));
  const multi: MultiProgress | null = toSpec.multi === undefined
    ? ctx.multi
    : midMulti && ctx.multi !== null ? { ...ctx.multi, state: toState } : enteredCtx.multi;
  const dataChanges: Record<string, Value> = {};
  for (const [k, v] of Object.entries(data)) {
    const old = Object.hasOwn(ctx.data, k) ? ctx.data[k] : undefined;
    if (old === undefined || !valuesEqual(old, v)) dataChanges[k] = v;
  }
  return {
    ok: true,
    schedule,
    cancel,
    payload: {
      fromVersion: p.sourceVersion, toVersion: p.targetVersion, fromState, toState,
      status: entered.status === 'done' ? 'done' : 'active', due: enteredCtx.due, multi, dataChanges,
    },
  };
}

function snapshotOfRow(row: CaseListRow): CaseSnapshot {
  const context = { ...(row.snapshot as Omit<CaseContext, 'data'>), data: row.data as CaseContext['data'] };
  return { state: row.state, status: row.status === 'done' ? 'done' : 'active', context };
}

async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(width, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(lanes);
}

const PAGE = 500;

/**
 * Moves running cases of a workflow to another version with a state mapping (a state left out
 * of the mapping keeps its name, if the target has it). Reports the cases that cannot move and
 * why — state neither mapped nor present in the target, mapped to a state the target lacks, data
 * that does not fit the target's case fields, in the middle of a multi-unit step the target state
 * cannot continue, closed, suspended — and, unless `dryRun`, moves the rest: each gets a
 * `case.migrated` event (payload `{ fromVersion, toVersion, fromState, toState, … }`), the old
 * state's timers are cancelled and the new state's armed from now. Each case is checked again
 * against its state at the moment it is written. Cases not selected stay on their version.
 * @example
 * const dry = await migrateCases(engine, { workflow: '五单服务', fromVersion: 1 }, 2, { 待抢单: '待认领' }, { dryRun: true, actor: '管理员' });
 * if (dry.refused.length === 0) await migrateCases(engine, { workflow: '五单服务', fromVersion: 1 }, 2, { 待抢单: '待认领' }, { actor: '管理员' });
 */
export async function migrateCases(
  engine: Engine,
  filter: MigrationFilter,
  toVersion: number,
  stateMapping: Readonly<Record<string, string>>,
  options: MigrationOptions,
): Promise<MigrationReport> {
  const target = await engine.definition(filter.workflow, toVersion);
  const org = await engine.org();
  const moved: MigrationMove[] = [];
  const refused: MigrationRefusal[] = [];
  const seen = new Set<string>();
  const base = { target: target.runtime, targetVersion: target.row.version, targetDefinitionId: target.row.id, mapping: stateMapping };

  const migrateOne = async (row: CaseListRow): Promise<void> => {
    seen.add(row.id);
    if (options.dryRun === true) {
      const source = await engine.loadDefinition(row.definitionId);
      const plan = planMigration({
        ...base, source: source.runtime, sourceVersion: source.row.version, sourceDefinitionId: source.row.id,
        snapshot: snapshotOfRow(row), suspended: row.status === 'stopped', now: engine.now(), oracle: liveOracle(org, engine.workCalendar),
      });
      if (plan.ok) moved.push({ caseId: row.id, fromVersion: plan.payload.fromVersion, toVersion: plan.payload.toVersion, fromState: plan.payload.fromState, toState: plan.payload.toState });
      else refused.push({ caseId: row.id, code: plan.code, reason: plan.reason });
      return;
    }
    let done: MigratedPayload | undefined;
    try {
      await writePrepared(engine, row.id, async (cs) => {
        const plan = planMigration({
          ...base, source: cs.runtime, sourceVersion: cs.definition.version, sourceDefinitionId: cs.definition.id,
          snapshot: cs.snapshot, suspended: cs.suspended, now: engine.now(), oracle: liveOracle(org, engine.workCalendar),
        });
        if (!plan.ok) throw new EngineError('MIGRATION_REFUSED', plan.reason, { caseId: row.id, code: plan.code });
        return {
          input: { type: 'case.migrated', actor: options.actor, role: options.role ?? null, payload: plan.payload },
          change: (cur) => {
            done = plan.payload;
            return { snapshot: applyMigrated(cur.snapshot, plan.payload), schedule: plan.schedule, cancel: plan.cancel, definitionId: target.row.id };
          },
        };
      });
    } catch (e) {
      if (e instanceof EngineError && e.code === 'MIGRATION_REFUSED') {
        refused.push({ caseId: row.id, code: e.details['code'] as MigrationRefusalCode, reason: e.message });
        return;
      }
      if (e instanceof EngineError && e.code === 'CASE_NOT_FOUND') {
        refused.push({ caseId: row.id, code: 'not_found', reason: e.message });
        return;
      }
      throw e;
    }
    if (done !== undefined) moved.push({ caseId: row.id, fromVersion: done.fromVersion, toVersion: done.toVersion, fromState: done.fromState, toState: done.toState });
  };

  let after: string | null = null;
  for (;;) {
    const rows = await casesForMigration(engine.store, {
      workflow: filter.workflow, targetDefinitionId: target.row.id,
      ...(filter.fromVersion === undefined ? {} : { fromVersion: filter.fromVersion }),
      ...(filter.state === undefined ? {} : { state: filter.state }),
      ...(filter.caseIds === undefined ? {} : { caseIds: filter.caseIds }),
    }, after, PAGE);
    await pool(rows, options.concurrency ?? 8, migrateOne);
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1]?.id ?? null;
  }
  for (const id of filter.caseIds ?? []) {
    if (!seen.has(id)) {
      refused.push({ caseId: id, code: 'not_found', reason: `No case ${id} of workflow ${filter.workflow}${filter.fromVersion === undefined ? '' : ` version ${filter.fromVersion}`}${filter.state === undefined ? '' : ` in state ${filter.state}`}.` });
      seen.add(id);
    }
  }
  const byId = (a: { caseId: string }, b: { caseId: string }): number => (a.caseId < b.caseId ? -1 : a.caseId > b.caseId ? 1 : 0);
  return { moved: moved.sort(byId), refused: refused.sort(byId) };
}
