/**
 * The timer table's claims and inspection. Timers are written by the event statement in
 * `cases.ts` (scheduled, cancelled and marked fired there, in the same statement as the event);
 * this module claims due ones for a poller, gives up on those that no longer apply or keep
 * failing, and lists a case's timers. Every time comes from the caller's clock, never the
 * database's `now()`, so an injected clock moves due times and leases in tests exactly as real
 * time does in production.
 */
import type { OpenedDatabase } from './open.ts';
import { iso, isoOrNull } from './rows.ts';
import type { TimerState } from './tables.ts';

/** A timer this node has just claimed; see {@link claimDueTimers}. */
export interface ClaimedTimer {
  readonly caseId: string;
  /** XState's delayed-event id, e.g. `xstate.after.86400000.五单服务.待接单`. */
  readonly timerId: string;
  /** The event to send when it fires. */
  readonly eventType: string;
  /** ISO-8601 UTC. */
  readonly dueAt: string;
  /** Claims so far, this one included. */
  readonly attempts: number;
  /** When this claim lapses and any node may claim the timer again (ISO-8601 UTC). */
  readonly claimedUntil: string;
}

export interface ClaimTimersOptions {
  /** The caller's current time (ISO): timers due at or before it are claimed. */
  readonly now: string;
  /** Recorded in `claimed_by`; the event statement fires the timer only for this holder. */
  readonly nodeId: string;
  readonly limit: number;
  /** How long the claim holds: if this node dies, the timer is claimable again after it. */
  readonly leaseMs: number;
}

/** A timer row as read back for inspection. */
export interface TimerRow {
  readonly caseId: string;
  readonly timerId: string;
  readonly eventType: string;
  readonly dueAt: string;
  readonly state: TimerState;
  readonly claimedBy: string | null;
  readonly claimedUntil: string | null;
  readonly attempts: number;
}

// Two kinds of rows are claimable: claimed ones whose lease ran out (their holder died or stalled),
// then scheduled ones that are due, earliest first. Each arm walks its own partial index of
// migration 0001 in order and is read only as far as the outer LIMIT pulls, so a claim costs the
// same with a backlog of a million overdue timers as with ten, and the planner (generic plans
// included) knows the update touches at most `limit` rows. `skip locked` lets pollers on several
// nodes claim at once without waiting on or double-claiming each other's rows; the claim commits
// with this statement.
const CLAIM_SQL = `
with expired as (
  select case_id, timer_id from timers
  where state = 'claimed' and claimed_until < $1::timestamptz
  order by claimed_until
  limit $3
  for update skip locked
), due as (
  select case_id, timer_id from timers
  where state = 'scheduled' and due_at <= $1::timestamptz
  order by due_at
  limit $3
  for update skip locked
), picked as (
  select case_id, timer_id from expired
  union all
  select case_id, timer_id from due
  limit $3
)
update timers t set state = 'claimed', claimed_by = $2, claimed_until = $4::timestamptz, attempts = t.attempts + 1
from picked
where t.case_id = picked.case_id and t.timer_id = picked.timer_id
returning t.case_id, t.timer_id, t.event_type, t.due_at, t.attempts, t.claimed_until`;



/**
 * Claims up to `limit` timers, in one statement: first those whose previous claim lapsed before
 * `now`, then those due by `now`, earliest due first: each becomes `claimed` by `nodeId` until
 * `now + leaseMs`, with `attempts + 1`. The result is sorted by due time, so a case's reminder
 * comes before the deadline it belongs to.
 *
 * @example
 * ```ts
 * const due = await claimDueTimers(store, { now: new Date().toISOString(), nodeId: 'node-a', limit: 100, leaseMs: 60_000 });
 * for (const t of due) await engine.fireTimer(t.caseId, t.timerId, t.eventType, 'node-a');
 * ```
 */
export async function claimDueTimers(store: OpenedDatabase, options: ClaimTimersOptions): Promise<ClaimedTimer[]> {
  const nowMs = Date.parse(options.now);
  if (!Number.isFinite(nowMs)) throw new RangeError(`claimDueTimers: now must be an ISO time, got ${JSON.stringify(options.now)}.`);
  if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new RangeError(`claimDueTimers: limit must be a whole number ≥ 1, got ${options.limit}.`);
  if (!Number.isFinite(options.leaseMs) || options.leaseMs <= 0) throw new RangeError(`claimDueTimers: leaseMs must be > 0, got ${options.leaseMs}.`);
  const until = new Date(nowMs + options.leaseMs).toISOString();
  const rows = await store.query<Record<string, unknown>>(CLAIM_SQL, [new Date(nowMs).toISOString(), options.nodeId, options.limit, until], 'wf_timers_claim');
  return rows
    .map((r) => ({
      caseId: String(r['case_id']),
      timerId: String(r['timer_id']),
      eventType: String(r['event_type']),
      dueAt: iso(r['due_at']),
      attempts: Number(r['attempts']),
      claimedUntil: iso(r['claimed_until']),
    }))
    .sort((a, b) => a.dueAt.localeCompare(b.dueAt) || compare(a.caseId, b.caseId) || compare(a.timerId, b.timerId));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Cancels a timer this node holds a claim on: it no longer applies (the case moved on without
 * cancelling it) or it has failed too often. Nothing changes if the claim was lost meanwhile —
 * another node reclaimed it, or the case rescheduled it — and then it returns false.
 *
 * @example
 * ```ts
 * if (!(await engine.fireTimer(t.caseId, t.timerId, t.eventType, nodeId))) await releaseTimer(store, t, nodeId);
 * ```
 */
export async function releaseTimer(store: OpenedDatabase, timer: { readonly caseId: string; readonly timerId: string }, nodeId: string): Promise<boolean> {
  const rows = await store.query(
    `update timers set state = 'cancelled', claimed_until = null
     where case_id = $1 and timer_id = $2 and state = 'claimed' and claimed_by = $3
     returning timer_id`,
    [timer.caseId, timer.timerId, nodeId], 'wf_timers_release');
  return rows.length === 1;
}

/**
 * Whether `nodeId` still holds its claim on a timer (it may have lapsed and been taken by
 * another node, or the timer may have been fired, rescheduled or cancelled since).
 *
 * @example
 * ```ts
 * if (!(await holdsTimer(store, t, nodeId))) logger.info({ timer: t }, 'claim lost; another node has it');
 * ```
 */
export async function holdsTimer(store: OpenedDatabase, timer: { readonly caseId: string; readonly timerId: string }, nodeId: string): Promise<boolean> {
  const rows = await store.query(
    `select 1 as held from timers where case_id = $1 and timer_id = $2 and state = 'claimed' and claimed_by = $3`,
    [timer.caseId, timer.timerId, nodeId], 'wf_timers_holds');
  return rows.length === 1;
}

const TIMER_COLUMNS = 'case_id, timer_id, event_type, due_at, state, claimed_by, claimed_until, attempts';

function toTimerRow(r: Record<string, unknown>): TimerRow {
  return {
    caseId: String(r['case_id']),
    timerId: String(r['timer_id']),
    eventType: String(r['event_type']),
    dueAt: iso(r['due_at']),
    state: String(r['state']) as TimerState,
    claimedBy: r['claimed_by'] === null || r['claimed_by'] === undefined ? null : String(r['claimed_by']),
    claimedUntil: isoOrNull(r['claimed_until']),
    attempts: Number(r['attempts']),
  };
}

/**
 * A case's timers that may still fire (scheduled, or claimed and not yet fired), earliest first.
 *
 * @example
 * ```ts
 * const [next] = await pendingTimers(store, caseId); // next?.dueAt
 * ```
 */
export async function pendingTimers(store: OpenedDatabase, caseId: string): Promise<TimerRow[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select ${TIMER_COLUMNS} from timers where case_id = $1 and state in ('scheduled', 'claimed') order by due_at, timer_id`,
    [caseId], 'wf_timers_pending');
  return rows.map(toTimerRow);
}

/**
 * Every timer a case has had, whatever became of it (a timer id is reused when its state is
 * entered again, so this is the latest incarnation of each), earliest due first.
 *
 * @example
 * ```ts
 * const states = (await caseTimers(store, caseId)).map((t) => t.state); // ['fired', 'cancelled', …]
 * ```
 */
export async function caseTimers(store: OpenedDatabase, caseId: string): Promise<TimerRow[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select ${TIMER_COLUMNS} from timers where case_id = $1 order by due_at, timer_id`,
    [caseId], 'wf_timers_of_case');
  return rows.map(toTimerRow);
}
