/**
 * History for auditors: `verify` proves a case's stored events are the ones the engine wrote (the
 * per-case hash chain), `replay` proves the stored states follow from them (every event re-run
 * through the stored machine), and `stateAt` shows a case as it was at any past time.
 *
 * Replay needs nothing but the log and the stored definitions: each machine event carries the
 * facts its step used (org-tree answers, working-day deadlines) and its recorded time, so a case
 * replays the same after the org tree, the roles or the holiday calendar have changed. Events
 * that are not machine transitions (`case.*`: suspend, reassign, migrate…) are replayed by the
 * functions their writers register in {@link systemEventReplayers}.
 */
import type { Runtime } from '../dsl/runtime.ts';
import type { AnyMachineSnapshot } from 'xstate';
import type { Engine } from './engine.ts';
import { EngineError } from './errors.ts';
import { canonicalJson, chainHash, sha256Hex, type JsonValue } from './hash.ts';
import { caseSnapshotOf, machineSnapshotOf, replayMachineStep, type CaseSnapshot } from './step.ts';
import { adminReplayers } from './admin.ts';
import { loadCaseRows, loadReplayLogs, type ReplayRow } from './store/audit.ts';
import type { AuditEvent, SystemEventReplayer } from './system-events.ts';
import { loadCase, loadEvents, loadEventsOfCases, type CaseRow, type EventRecord } from './store/cases.ts';
import type { OpenedDatabase } from './store/open.ts';
import { ThreadPool, ThreadPoolError } from './thread-pool.ts';

// ---- verify ------------------------------------------------------------------------------

/** What is wrong with a chain: an event changed in place, one that should not be there, one that is gone, or a case row whose head does not match its log. */
export type VerifyProblem = 'altered' | 'inserted' | 'missing' | 'head-mismatch';

export type VerifyResult =
  | { readonly ok: true; readonly events: number; readonly headHash: string | null }
  | { readonly ok: false; readonly firstBadSeq: number; readonly problem: VerifyProblem; readonly message: string };

/** What the case row says the log should end with. */
export interface ChainHead {
  readonly version: number;
  readonly headHash: string | null;
}

/**
 * The canonical text an event's hash covers: exactly the body `Engine.eventRecord` hashed. Read
 * back from `jsonb` the key order and number spelling may differ from what was written, which is
 * why the hash is over the canonical form and not over the stored text.
 * @example chainHash(e.prevHash, hashedBody(e)) === e.hash
 */
export function hashedBody(e: EventRecord, seq: number = e.seq): string {
  return canonicalJson({
    caseId: e.caseId, seq, type: e.type, actorId: e.actorId, onBehalfOf: e.onBehalfOf, role: e.role, orgUnitId: e.orgUnitId,
    payload: e.payload, recordedAt: e.recordedAt, facts: e.facts, resultingState: e.resultingState, decision: e.decision,
  });
}

/** Whether the row's own hash matches its content (as if it had sequence number `seq`). */
function selfConsistent(e: EventRecord, seq: number = e.seq): boolean {
  try {
    return chainHash(e.prevHash, hashedBody(e, seq)) === e.hash;
  } catch {
    return false; // a prev_hash that is not a hash, or content JSON cannot hold
  }
}

function bad(firstBadSeq: number, problem: VerifyProblem, message: string): VerifyResult {
  return { ok: false, firstBadSeq, problem, message };
}

/**
 * Checks a case's events (in seq order) against the hash chain and, when given, the case row's
 * head, and names the first problem by sequence number. A row whose content no longer matches its
 * hash is `altered`; a break in the links is told apart by what the rows around it still prove:
 * a row the chain goes around, or one renumbered up, is `inserted`; a gap in the numbers, or a row
 * renumbered down, is `missing`; a row whose successor links to a hash no row has was rewritten
 * with a recomputed hash (`altered`). Rows past the head the case row names are `inserted`.
 *
 * A hash chain proves the log is the one whose head is known; someone who can rewrite the rows
 * and the case row and knows the algorithm can forge a consistent log. Keep head hashes elsewhere
 * (an export, a tombstone) to anchor it.
 * @example const r = verifyChain(await loadEvents(store, id), { version: row.version, headHash: row.headHash });
 */
export function verifyChain(events: readonly EventRecord[], head?: ChainHead): VerifyResult {
  const seqOfHash = new Map<string, number>();
  let prev: string | null = null;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as EventRecord;
    const expected = i + 1;
    if (e.seq !== expected) {
      return bad(expected, 'missing', e.seq > expected
        ? `Event ${expected} is missing: after event ${expected - 1} the next stored event is ${e.seq}.`
        : `Event ${e.seq} is stored out of order (expected ${expected}).`);
    }
    const selfOk = selfConsistent(e);
    if (e.prevHash === prev) {
      if (!selfOk) return bad(e.seq, 'altered', `Event ${e.seq} (${e.type}) was altered: its content no longer matches its hash.`);
      seqOfHash.set(e.hash, e.seq);
      prev = e.hash;
      continue;
    }
    // The link to the previous row is broken: work out which row does not belong.
    const next = events[i + 1];
    if (next !== undefined && next.prevHash === prev && next.prevHash !== null) {
      return bad(e.seq, 'inserted', `Event ${e.seq} (${e.type}) was inserted: event ${next.seq} links past it to event ${e.seq - 1}.`);
    }
    if (!selfOk) {
      for (let d = 1; d <= 3; d++) {
        if (selfConsistent(e, e.seq + d)) {
          return bad(e.seq, 'missing', `Event ${e.seq} is missing: the event now numbered ${e.seq} was written as ${e.seq + d} and renumbered after ${d === 1 ? 'an event was' : `${d} events were`} removed.`);
        }
      }
      if (e.seq > 1 && selfConsistent(e, e.seq - 1)) {
        return bad(e.seq - 1, 'inserted', `Event ${e.seq - 1} was inserted: the event now numbered ${e.seq} was written as ${e.seq - 1} and renumbered to make room.`);
      }
      return bad(e.seq, 'altered', `Event ${e.seq} (${e.type}) was altered: neither its content nor its link to event ${e.seq - 1} match its hashes.`);
    }
    const linked = e.prevHash === null ? undefined : seqOfHash.get(e.prevHash);
    if (linked !== undefined) {
      return bad(linked + 1, 'inserted', `Event ${linked + 1} was inserted: event ${e.seq} links to event ${linked}, skipping ${e.seq - linked - 1} event(s).`);
    }
    if (e.seq === 1) return bad(1, 'altered', 'Event 1 was altered: the first event must not link to an earlier one.');
    return bad(e.seq - 1, 'altered', `Event ${e.seq - 1} was altered: event ${e.seq} links to a hash no stored event has, so event ${e.seq - 1} was rewritten (its hash recomputed) or replaced.`);
  }
  if (head === undefined) return { ok: true, events: events.length, headHash: prev };
  const n = events.length;
  if (head.headHash === prev && head.version === n) return { ok: true, events: n, headHash: prev };
  if (head.headHash !== prev && head.headHash !== null) {
    const at = seqOfHash.get(head.headHash);
    if (at !== undefined) {
      return bad(at + 1, 'inserted', `Event ${at + 1} was inserted: the case row's head is event ${at}, but the log goes on to event ${n}.`);
    }
  }
  if (head.version > n) {
    return bad(n + 1, 'missing', `Event ${n + 1} is missing: the case row counts ${head.version} events, the log ends at ${n}.`);
  }
  return bad(n, 'head-mismatch', head.headHash === prev
    ? `The case row counts ${head.version} events but the log has ${n}.`
    : `The case row's head hash ${head.headHash ?? 'null'} is not the hash of the last event (${n}), ${prev ?? 'null'}.`);
}

/**
 * Recomputes a case's hash chain from the stored rows and checks it against the case row.
 * @example
 * const r = await verify(engine, caseId);
 * if (!r.ok) console.log(`${r.problem} at event ${r.firstBadSeq}: ${r.message}`);
 */
export async function verify(engine: Engine, caseId: string): Promise<VerifyResult> {
  const row = await loadCase(engine.store, caseId);
  if (row === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${caseId}.`, { caseId });
  return verifyStored(row, await loadEvents(engine.store, caseId));
}

/** The chain of a case's stored events against its row; an archived case has no events left to check. */
function verifyStored(row: CaseRow, events: readonly EventRecord[]): VerifyResult {
  if (row.status === 'archived' && events.length === 0) {
    return bad(1, 'missing', `Case ${row.id} is archived: its events were removed after export; verify the export against head ${row.headHash ?? 'null'}.`);
  }
  return verifyChain(events, { version: row.version, headHash: row.headHash });
}

/** How far a bulk check has come: cases done (found or not) and the events in them. */
export interface AuditProgress {
  readonly cases: number;
  readonly events: number;
}

/** The ids in batches of `size` (default 100). */
function batchesOf(ids: readonly string[], size = 100): string[][] {
  const n = Math.max(1, size);
  const out: string[][] = [];
  for (let i = 0; i < ids.length; i += n) out.push(ids.slice(i, i + n));
  return out;
}

const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---- replay ------------------------------------------------------------------------------

export type { AuditEvent, SystemEventReplayer } from './system-events.ts';

/**
 * Replayers of system events by type: those of the module that writes them (admin.ts), and any
 * an embedding application adds. Replay reports an unregistered type as a mismatch.
 * @example systemEventReplayers['case.noted'] = (s) => s;
 */
export const systemEventReplayers: Record<string, SystemEventReplayer> = { ...adminReplayers };

export type ReplayResult =
  | { readonly ok: true; readonly events: number; readonly definitionId: string; readonly snapshot: CaseSnapshot }
  | ReplayMismatch;

/** `expected` is what is stored (the event's resulting state, or the case row); `got` is what replay computed. */
export interface ReplayMismatch {
  readonly ok: false;
  readonly firstBadSeq: number;
  readonly expected: JsonValue;
  readonly got: JsonValue;
  readonly message: string;
}

interface SystemFacts {
  readonly system?: unknown;
  readonly definitionId?: unknown;
}

function factsOf(e: AuditEvent): SystemFacts {
  return typeof e.facts === 'object' && e.facts !== null ? e.facts as SystemFacts : {};
}

function isSystemEvent(e: AuditEvent): boolean {
  return e.type.startsWith('case.') || factsOf(e).system === true;
}

/** The definitions a log runs on: where it starts, and each one a system event moves it to. */
function definitionsOf(events: readonly AuditEvent[], fallback: string): { start: string; all: Set<string> } {
  const first = events[0];
  const recorded = first === undefined ? undefined : factsOf(first).definitionId;
  // Starts written before the start event recorded its definition: the case row's (right unless migrated).
  const start = typeof recorded === 'string' ? recorded : fallback;
  const all = new Set([start]);
  for (const e of events) {
    const d = factsOf(e).definitionId;
    if (isSystemEvent(e) && typeof d === 'string') all.add(d);
  }
  return { start, all };
}

interface ResultingState {
  readonly state: string;
  readonly status: string;
  readonly context: string;
}

function resultingStateOf(s: CaseSnapshot, canonicalContext: string): ResultingState {
  return { state: s.state, status: s.status, context: sha256Hex(canonicalContext) };
}

function asJson(v: unknown): JsonValue {
  return v === undefined ? null : v as JsonValue;
}

function mismatch(seq: number, expected: unknown, got: unknown, message: string): ReplayMismatch {
  return { ok: false, firstBadSeq: seq, expected: asJson(expected), got: asJson(got), message };
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Re-runs a log (in seq order) and, with `check`, compares each event's stored resulting state
 * with the recomputed one. Synchronous: every definition the log names must be in `runtimes`.
 * With `check`, also returns the final context's canonical JSON, for the comparison with the case row.
 */
function replayLog(events: readonly AuditEvent[], startDefinition: string, runtimes: ReadonlyMap<string, Runtime>, check: boolean): [ReplayResult, string?] {
  const runtimeOf = (id: string): Runtime => {
    const rt = runtimes.get(id);
    if (rt === undefined) throw new Error(`Definition ${id} is not stored.`);
    return rt;
  };
  let definitionId = startDefinition;
  let snapshot: CaseSnapshot | null = null;
  // XState's form of `snapshot`, carried from event to event; null after a system event changed it.
  let machine: AnyMachineSnapshot | null = null;
  let canonical: string | undefined;
  for (const e of events) {
    let next: CaseSnapshot;
    try {
      if (isSystemEvent(e)) {
        const replayer = systemEventReplayers[e.type];
        if (snapshot === null) throw new Error(`System event ${e.type} comes before the case was started.`);
        if (replayer === undefined) {
          return [mismatch(e.seq, e.resultingState, null, `Event ${e.seq} is a system event of type ${e.type}, which no replayer is registered for (systemEventReplayers), so the log cannot be replayed past it.`)];
        }
        next = replayer(snapshot, e, runtimeOf);
        machine = null;
        const moved = factsOf(e).definitionId;
        if (typeof moved === 'string') definitionId = moved;
      } else {
        const rt = runtimeOf(definitionId);
        if (machine === null && snapshot !== null && e.type !== 'start') machine = machineSnapshotOf(rt, snapshot);
        machine = replayMachineStep(rt, machine, e);
        next = caseSnapshotOf(machine);
      }
    } catch (err) {
      return [mismatch(e.seq, e.resultingState, null, `Event ${e.seq} (${e.type}) cannot be replayed: ${describeError(err)}`)];
    }
    snapshot = next;
    if (!check) continue;
    canonical = canonicalJson(next.context);
    const got = resultingStateOf(next, canonical);
    const stored = (typeof e.resultingState === 'object' && e.resultingState !== null ? e.resultingState : {}) as Partial<ResultingState>;
    if (stored.state !== got.state || stored.status !== got.status || stored.context !== got.context) {
      const what = stored.state !== got.state
        ? `state ${String(stored.state)}, replay gives ${got.state}`
        : stored.status !== got.status ? `status ${String(stored.status)}, replay gives ${got.status}` : 'a different context (case data or bookkeeping) than replay gives';
      return [mismatch(e.seq, e.resultingState, got, `Event ${e.seq} (${e.type}) does not replay: the log records ${what}.`)];
    }
  }
  if (snapshot === null) return [mismatch(1, null, null, 'The case has no events.')];
  return [{ ok: true, events: events.length, definitionId, snapshot }, canonical];
}

/** Compares the case row with the replayed final snapshot; names the first columns that differ. */
function compareRow(row: CaseRow, final: Extract<ReplayResult, { ok: true }>, finalCanonical: string | undefined, lastSeq: number): ReplayMismatch | undefined {
  const { data, ...rest } = final.snapshot.context;
  const unitOk = final.snapshot.context.unit === null || row.orgUnitId === final.snapshot.context.unit;
  const statusOk = (row.status !== 'active' && row.status !== 'done') || row.status === final.snapshot.status;
  // The common case in one serialization: the row's context as a whole equals the replayed one.
  if (row.state === final.snapshot.state && statusOk && unitOk && row.definitionId === final.definitionId && !('data' in row.snapshot)
    && canonicalJson({ ...row.snapshot, data: row.data }) === (finalCanonical ?? canonicalJson(final.snapshot.context))) return undefined;
  const diffs: string[] = [];
  if (row.state !== final.snapshot.state) diffs.push(`state (${String(row.state)} ≠ ${final.snapshot.state})`);
  // A suspended case is 'stopped' whatever its machine status; that is the system events' business.
  if ((row.status === 'active' || row.status === 'done') && row.status !== final.snapshot.status) diffs.push(`status (${row.status} ≠ ${final.snapshot.status})`);
  if (row.definitionId !== final.definitionId) diffs.push(`definition (${row.definitionId} ≠ ${final.definitionId})`);
  if (canonicalJson(row.data) !== canonicalJson(data)) {
    const keys = new Set([...Object.keys(row.data), ...Object.keys(data)]);
    const fields = [...keys].filter((k) => canonicalJson(row.data[k] ?? null) !== canonicalJson(data[k] ?? null));
    diffs.push(`data (${fields.join(', ') || 'shape'})`);
  }
  if (canonicalJson(row.snapshot) !== canonicalJson(rest)) {
    const restRecord = rest as unknown as Record<string, unknown>;
    const keys = new Set([...Object.keys(row.snapshot), ...Object.keys(restRecord)]);
    const fields = [...keys].filter((k) => canonicalJson(row.snapshot[k] ?? null) !== canonicalJson(restRecord[k] ?? null));
    diffs.push(`snapshot (${fields.join(', ') || 'shape'})`);
  }
  if (final.snapshot.context.unit !== null && row.orgUnitId !== final.snapshot.context.unit) diffs.push(`org_unit_id (${row.orgUnitId} ≠ ${final.snapshot.context.unit})`);
  if (diffs.length === 0) return undefined;
  return mismatch(lastSeq,
    { state: row.state, status: row.status, definitionId: row.definitionId, data: row.data, snapshot: row.snapshot } as JsonValue,
    { state: final.snapshot.state, status: final.snapshot.status, definitionId: final.definitionId, data, snapshot: rest } as unknown as JsonValue,
    `The case row differs from the state its log replays to after event ${lastSeq}: ${diffs.join('; ')}.`);
}

async function runtimesFor(engine: ReplayHost, ids: Iterable<string>): Promise<Map<string, Runtime> | string> {
  const out = new Map<string, Runtime>();
  for (const id of ids) {
    try {
      out.set(id, (await engine.loadDefinition(id)).runtime);
    } catch (err) {
      return `Definition ${id} cannot be loaded: ${describeError(err)}`;
    }
  }
  return out;
}

async function replayLoaded(engine: ReplayHost, row: CaseRow, events: readonly AuditEvent[]): Promise<ReplayResult> {
  if (events.length === 0) return mismatch(1, null, null, `Case ${row.id} has no events${row.status === 'archived' ? ' (archived)' : ''}.`);
  const defs = definitionsOf(events, row.definitionId);
  const runtimes = await runtimesFor(engine, defs.all);
  if (typeof runtimes === 'string') return mismatch(1, null, null, runtimes);
  const [result, finalCanonical] = replayLog(events, defs.start, runtimes, true);
  if (!result.ok) return result;
  return compareRow(row, result, finalCanonical, (events[events.length - 1] as AuditEvent).seq) ?? result;
}

/**
 * Re-runs a case's log on its stored definitions and checks every event's stored resulting state,
 * then the case row (state, data and the rest of the context) against the final replayed state.
 * Names the first mismatch by sequence number; a case row that differs is named as the last event.
 * @example
 * const r = await replay(engine, caseId);
 * if (!r.ok) console.log(`event ${r.firstBadSeq}: ${r.message}`, r.expected, r.got);
 */
export async function replay(engine: Engine, caseId: string): Promise<ReplayResult> {
  const row = await loadCase(engine.store, caseId);
  if (row === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${caseId}.`, { caseId });
  return replayLoaded(engine, row, await loadEvents(engine.store, caseId));
}

export interface BulkReplayResult {
  readonly cases: number;
  readonly events: number;
  /** Cases whose whole log and row replayed. */
  readonly ok: number;
  readonly mismatches: readonly ({ readonly caseId: string } & ReplayMismatch)[];
  readonly notFound: readonly string[];
}

/**
 * What replay needs of an engine: the store and the stored definitions as runtimes. An `Engine`
 * is one; a replay worker thread builds a lighter one (without the compiler).
 */
export type ReplayHost = Pick<Engine, 'store' | 'loadDefinition'>;

/** Options of {@link replayCases} and {@link auditCases}. */
export interface ReplayCasesOptions {
  /** Cases read per query (default 100); the next batch is read while the current one is checked. */
  readonly batchSize?: number;
  /**
   * Threads to work on (default 0: this one), started for this call and stopped after it. On
   * Postgres, each worker thread opens its own connections and takes the next batch whenever it
   * has room. Ignored on PGlite, whose database lives in this thread, and when replayers of
   * system events were added at run time (a worker has only the built-in ones). Starting a
   * thread costs a few hundred milliseconds and its first batches run cold: for repeated calls,
   * keep a {@link ReplayPool} and pass it as `pool`.
   */
  readonly workers?: number;
  /** Threads already started (see {@link ReplayPool}); takes the place of `workers`. */
  readonly pool?: ReplayPool;
  /** Hears after each batch (on worker threads, after each batch of any thread) how far the work has come. */
  readonly onProgress?: (p: AuditProgress) => void;
}

/** What {@link auditCases} answers: replay's figures and, for the same cases, their chains'. */
export interface BulkAuditResult extends BulkReplayResult {
  /** Cases whose hash chain and head are intact. */
  readonly verified: number;
  readonly problems: readonly ({ readonly caseId: string } & Extract<VerifyResult, { ok: false }>)[];
}

/**
 * Replays many cases, reading the events and rows of `batchSize` cases per query (the next batch
 * is read while the current one replays), on this thread or on worker threads.
 * @example const { ok, mismatches } = await replayCases(engine, ids, { workers: os.availableParallelism() });
 */
export async function replayCases(engine: ReplayHost, caseIds: readonly string[], options: ReplayCasesOptions = {}): Promise<BulkReplayResult> {
  const { verified: _verified, problems: _problems, ...replayed } = await checkCases(engine, caseIds, options, false);
  return replayed;
}

/**
 * `verify` and `replay` for many cases, each batch read once (the events whole, as the chain needs
 * them), on this thread or on worker threads.
 * @example const r = await auditCases(engine, ids); r.problems.length + r.mismatches.length === 0
 */
export function auditCases(engine: ReplayHost, caseIds: readonly string[], options: ReplayCasesOptions = {}): Promise<BulkAuditResult> {
  return checkCases(engine, caseIds, options, true);
}

/** A batch's case rows and logs, as read for replay, or with `chains` the events whole, for verify too. */
export type BatchRead =
  | { readonly chains: false; readonly rows: Map<string, CaseRow>; readonly logs: Map<string, ReplayRow[]> }
  | { readonly chains: true; readonly rows: Map<string, CaseRow>; readonly logs: Map<string, EventRecord[]> };

/**
 * Reads a batch: the case rows and, for replay alone, only the event columns it uses (not the
 * hashes and the decision trace); for an audit, the events whole, as the chain needs them.
 */
export async function readBatch(store: OpenedDatabase, ids: readonly string[], chains: boolean): Promise<BatchRead> {
  if (chains) {
    const [rows, logs] = await Promise.all([loadCaseRows(store, ids), loadEventsOfCases(store, ids)]);
    return { chains, rows, logs };
  }
  const [rows, logs] = await Promise.all([loadCaseRows(store, ids), loadReplayLogs(store, ids)]);
  return { chains, rows, logs };
}

/** Batches' results as one, in the batches' order. */
function combined(results: readonly BulkAuditResult[]): BulkAuditResult {
  const sum = (f: (r: BulkAuditResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  return {
    cases: sum((r) => r.cases), events: sum((r) => r.events), ok: sum((r) => r.ok), verified: sum((r) => r.verified),
    mismatches: results.flatMap((r) => r.mismatches), notFound: results.flatMap((r) => r.notFound), problems: results.flatMap((r) => r.problems),
  };
}

/**
 * Replays (and with `chains` verifies) the cases of one batch already read, in the batch's order.
 * Yields to the event loop between cases, so the next batch's rows are read off the socket as
 * they arrive: a batch replays in microtasks only, and the database stalls once the socket's
 * buffers are full.
 */
export async function checkBatch(engine: ReplayHost, ids: readonly string[], read: BatchRead): Promise<BulkAuditResult> {
  let ok = 0;
  let verified = 0;
  let events = 0;
  const mismatches: ({ caseId: string } & ReplayMismatch)[] = [];
  const problems: ({ caseId: string } & Extract<VerifyResult, { ok: false }>)[] = [];
  const notFound: string[] = [];
  for (const id of ids) {
    const row = read.rows.get(id);
    if (row === undefined) {
      notFound.push(id);
      continue;
    }
    const log = read.logs.get(id) ?? [];
    events += log.length;
    if (read.chains) {
      const v = verifyStored(row, read.logs.get(id) ?? []);
      if (v.ok) verified++;
      else problems.push({ caseId: id, ...v });
    }
    const r = await replayLoaded(engine, row, log);
    if (r.ok) ok++;
    else mismatches.push({ caseId: id, ...r });
    await yieldToIo();
  }
  return { cases: ids.length - notFound.length, events, ok, mismatches, notFound, verified, problems };
}

/** Replays, and with `chains` verifies, many cases, here or on worker threads. */
async function checkCases(engine: ReplayHost, caseIds: readonly string[], options: ReplayCasesOptions, chains: boolean): Promise<BulkAuditResult> {
  const size = Math.max(1, options.batchSize ?? 100);
  const batches = batchesOf(caseIds, size);
  const { store } = engine;
  const threadsAllowed = store.connectionString !== null && onlyBuiltInReplayers();
  if (options.pool !== undefined && threadsAllowed) {
    if (!options.pool.reads(store.connectionString as string, store.schema)) {
      throw new ThreadPoolError('POOL_STORE_MISMATCH', `This ReplayPool reads another database or schema than the store's (${store.schema}): start one with the store's connectionString and schema.`);
    }
    return options.pool.check(batches, chains, options.onProgress);
  }
  const workers = Math.min(Math.floor(options.workers ?? 0), batches.length);
  if (workers > 1 && threadsAllowed) {
    const pool = new ReplayPool({ connectionString: store.connectionString as string, schema: store.schema, threads: workers });
    try {
      return await pool.check(batches, chains, options.onProgress);
    } finally {
      await pool.close();
    }
  }
  const results: BulkAuditResult[] = [];
  let done = 0;
  let events = 0;
  // The next batch is read while this one is checked.
  let pending = batches[0] === undefined ? undefined : readBatch(store, batches[0], chains);
  for (let b = 0; b < batches.length; b++) {
    const read = await (pending as Promise<BatchRead>);
    const following = batches[b + 1];
    pending = following === undefined ? undefined : readBatch(store, following, chains);
    const batch = batches[b] as readonly string[];
    const r = await checkBatch(engine, batch, read);
    results.push(r);
    done += batch.length;
    events += r.events;
    options.onProgress?.({ cases: done, events });
  }
  return combined(results);
}

/** What a replay worker thread is given when it starts. */
export interface ReplayWorkerSettings {
  readonly connectionString: string;
  readonly schema: string;
}

/** A replay worker thread's task: one batch of cases, replayed and with `chains` verified. */
export interface ReplayTask {
  readonly caseIds: readonly string[];
  readonly chains: boolean;
}

/** Where the store is and how many threads to start. */
export interface ReplayPoolOptions extends ReplayWorkerSettings {
  readonly threads: number;
}

/** Whether the replayers are the built-in ones a worker thread has (none added or replaced). */
function onlyBuiltInReplayers(): boolean {
  return Object.keys(systemEventReplayers).every((k) => systemEventReplayers[k] === adminReplayers[k]);
}

/**
 * A young generation of this size (MiB) per replay thread. Replay allocates ~20 KB per event
 * that dies within the event (XState's snapshots, the canonical text of each context); with
 * V8's default the scavenger ran every few milliseconds and copied the batch being replayed
 * each time.
 */
const REPLAY_YOUNG_GENERATION_MB = 96;

/**
 * Replay worker threads on a Postgres store, started once and kept for many calls of
 * {@link replayCases} and {@link auditCases} (`{ pool }`): each thread opens its own connections,
 * loads the stored definitions it meets once, and warms up once. Each takes a batch whenever it
 * has room for one (two at a time: it reads the next while it replays the current), and the
 * answers are merged in the order of the ids. Calls on one pool run one after another.
 * @example
 * const pool = new ReplayPool({ connectionString, schema, threads: os.availableParallelism() });
 * try { await replayCases(engine, ids, { pool }); } finally { await pool.close(); }
 */
export class ReplayPool {
  private readonly threads: ThreadPool<ReplayTask, BulkAuditResult>;
  private readonly settings: ReplayWorkerSettings;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: ReplayPoolOptions) {
    this.settings = { connectionString: options.connectionString, schema: options.schema };
    // Sources run through a TypeScript loader (tests, the CLI); the built package runs plain JS.
    const script = new URL(import.meta.url.endsWith('.ts') ? './replay-worker.ts' : './replay-worker.js', import.meta.url);
    this.threads = new ThreadPool({ script, threads: options.threads, workerData: this.settings, resourceLimits: { maxYoungGenerationSizeMb: REPLAY_YOUNG_GENERATION_MB } });
  }

  /** Whether the threads read this database and schema. */
  reads(connectionString: string, schema: string): boolean {
    return this.settings.connectionString === connectionString && this.settings.schema === schema;
  }

  /** The batches checked on the pool's threads, after any call already running on it. */
  check(batches: readonly (readonly string[])[], chains: boolean, onProgress?: (p: AuditProgress) => void): Promise<BulkAuditResult> {
    const run = async (): Promise<BulkAuditResult> => {
      // Progress counts the batches answered so far, whichever thread answered them.
      let cases = 0;
      let events = 0;
      const results = await this.threads.run(batches.map((caseIds) => ({ caseIds, chains })), (index, r) => {
        cases += (batches[index] as readonly string[]).length;
        events += r.events;
        onProgress?.({ cases, events });
      });
      return combined(results);
    };
    const mine = this.queue.then(run, run);
    this.queue = mine.catch(() => undefined);
    return mine;
  }

  /** Stops the threads once the calls already made have finished; they close their connections. */
  async close(): Promise<void> {
    await this.queue;
    await this.threads.close();
  }
}

// ---- state at a time ---------------------------------------------------------------------

/** A case as it was at a past time. */
export interface CaseAtTime {
  readonly caseId: string;
  /** The time asked about. */
  readonly at: string;
  /** The last event recorded up to then. */
  readonly seq: number;
  readonly lastEvent: { readonly type: string; readonly recordedAt: string };
  readonly definitionId: string;
  readonly state: string;
  readonly status: 'active' | 'done';
  readonly data: CaseSnapshot['context']['data'];
  readonly unit: string | null;
  readonly submitter: string | null;
  readonly due: CaseSnapshot['context']['due'];
  readonly multi: CaseSnapshot['context']['multi'];
}

/**
 * The case as it stood at `time`: its log replayed up to the last event recorded at or before it.
 * Null when the case did not exist yet. It does not check the stored states; `replay` does.
 * @throws {EngineError} CASE_NOT_FOUND; VALIDATION_FAILED for a time that is not one;
 *   HISTORY_NOT_REPLAYABLE, naming the first event that does not replay, when the log up to then
 *   does not (an event its machine does not take there, or a definition that cannot be loaded).
 * @example const then = await stateAt(engine, caseId, '2026-03-03T10:00:00+08:00'); then?.state
 */
export async function stateAt(engine: Engine, caseId: string, time: string | Date | number): Promise<CaseAtTime | null> {
  const at = typeof time === 'number' ? time : typeof time === 'string' ? Date.parse(time) : time.getTime();
  if (!Number.isFinite(at)) throw new EngineError('VALIDATION_FAILED', `Invalid time ${String(time)}.`, { fields: [{ path: 'time', code: 'type', message: 'must be an ISO-8601 time' }] });
  const row = await loadCase(engine.store, caseId);
  if (row === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${caseId}.`, { caseId });
  const all = await loadEvents(engine.store, caseId);
  // The prefix, not a filter on time: the log's order is its sequence, whatever the clocks said.
  let n = 0;
  while (n < all.length && Date.parse((all[n] as EventRecord).recordedAt) <= at) n++;
  if (n === 0) return null;
  const events = all.slice(0, n);
  const defs = definitionsOf(all, row.definitionId);
  const runtimes = await runtimesFor(engine, defs.all);
  const when = new Date(at).toISOString();
  if (typeof runtimes === 'string') {
    throw new EngineError('HISTORY_NOT_REPLAYABLE', `Case ${caseId} cannot be replayed to ${when}: ${runtimes}`, { caseId, firstBadSeq: 1, at: when });
  }
  const [r] = replayLog(events, defs.start, runtimes, false);
  if (!r.ok) throw new EngineError('HISTORY_NOT_REPLAYABLE', `Case ${caseId} cannot be replayed to ${when}: ${r.message}`, { caseId, firstBadSeq: r.firstBadSeq, at: when });
  const last = events[n - 1] as EventRecord;
  const ctx = r.snapshot.context;
  return {
    caseId, at: new Date(at).toISOString(), seq: last.seq, lastEvent: { type: last.type, recordedAt: last.recordedAt }, definitionId: r.definitionId,
    state: r.snapshot.state, status: r.snapshot.status, data: ctx.data, unit: ctx.unit, submitter: ctx.submitter, due: ctx.due, multi: ctx.multi,
  };
}
