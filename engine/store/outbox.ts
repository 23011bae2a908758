/**
 * The outbox's reads and writes: claiming due effects under a lease, recording each attempt's
 * outcome, the dead-letter list, and the tables delivered effects land in (the points ledger and
 * notifications). Every time comes from the caller's clock, never the database's `now()`, so an
 * injected clock moves leases and backoff in tests exactly as real time does in production.
 */
import type { OpenedDatabase } from './open.ts';
import { iso, isoOrNull } from './rows.ts';
import type { OutboxStatus } from './tables.ts';

/** The key of one effect: the event that produced it and its position among that event's effects. */
export interface OutboxKey {
  readonly caseId: string;
  readonly seq: number;
  readonly effectNo: number;
}

/** An outbox row as read back. */
export interface OutboxRow extends OutboxKey {
  readonly kind: string;
  /** The effect as the event wrote it (an `Effect` of dsl/runtime.ts, with its `kind`). */
  readonly payload: unknown;
  readonly status: OutboxStatus;
  /** Attempts so far, counting the one in progress if the row is claimed. */
  readonly attempts: number;
  /** For a pending row: when it is next due (or, while claimed, when its lease runs out). */
  readonly nextAttemptAt: string;
  readonly lastError: string | null;
  readonly createdAt: string;
  readonly deliveredAt: string | null;
  readonly deadAt: string | null;
}

export interface ClaimOptions {
  /** The caller's current time (ISO): rows due at or before it are claimed. */
  readonly now: string;
  /** Where the claimed rows' next_attempt_at moves: if the claimer dies, they are due again then. */
  readonly leaseUntil: string;
  readonly limit: number;
}

const COLUMNS = 'case_id, seq, effect_no, kind, payload, status, attempts, next_attempt_at, last_error, created_at, delivered_at, dead_at';

const CLAIM_SQL = `
with due as (
  select case_id, seq, effect_no from outbox
  where status = 'pending' and next_attempt_at <= $1::timestamptz
  order by next_attempt_at
  limit $3
  for update skip locked
)
update outbox o set attempts = o.attempts + 1, next_attempt_at = $2::timestamptz
from due
where o.case_id = due.case_id and o.seq = due.seq and o.effect_no = due.effect_no
returning ${COLUMNS.split(', ').map((c) => `o.${c}`).join(', ')}`;



function toRow(r: Record<string, unknown>): OutboxRow {
  return {
    caseId: String(r['case_id']),
    seq: Number(r['seq']),
    effectNo: Number(r['effect_no']),
    kind: String(r['kind']),
    payload: r['payload'],
    status: String(r['status']) as OutboxStatus,
    attempts: Number(r['attempts']),
    nextAttemptAt: iso(r['next_attempt_at']),
    lastError: r['last_error'] === null || r['last_error'] === undefined ? null : String(r['last_error']),
    createdAt: iso(r['created_at']),
    deliveredAt: isoOrNull(r['delivered_at']),
    deadAt: isoOrNull(r['dead_at']),
  };
}

/**
 * Claims up to `limit` pending effects due by `now`, oldest first, and takes a lease on them: each
 * gets `attempts + 1` and `next_attempt_at = leaseUntil`. `FOR UPDATE SKIP LOCKED` lets several
 * workers claim at once without waiting on or double-claiming each other's rows; a worker that
 * dies leaves its rows to come due again when the lease runs out.
 *
 * @example
 * ```ts
 * const rows = await claimOutbox(store, { now, leaseUntil: new Date(Date.parse(now) + 60_000).toISOString(), limit: 50 });
 * ```
 */
export async function claimOutbox(store: OpenedDatabase, options: ClaimOptions): Promise<OutboxRow[]> {
  const rows = await store.query<Record<string, unknown>>(CLAIM_SQL, [options.now, options.leaseUntil, options.limit], 'wf_outbox_claim');
  return rows.map(toRow).sort(byKey);
}

function byKey(a: OutboxKey, b: OutboxKey): number {
  return a.caseId < b.caseId ? -1 : a.caseId > b.caseId ? 1 : a.seq - b.seq || a.effectNo - b.effectNo;
}

/**
 * Marks a claimed effect delivered. Whoever applied it may say so, even a worker whose lease ran
 * out meanwhile: the effect has happened either way. False if it was not pending.
 *
 * @example
 * ```ts
 * await markOutboxDelivered(store, { caseId, seq: 5, effectNo: 1 }, now);
 * ```
 */
export async function markOutboxDelivered(store: OpenedDatabase, key: OutboxKey, now: string): Promise<boolean> {
  const rows = await store.query(
    `update outbox set status = 'delivered', delivered_at = $4::timestamptz
     where case_id = $1 and seq = $2 and effect_no = $3 and status = 'pending' returning seq`,
    [key.caseId, key.seq, key.effectNo, now], 'wf_outbox_delivered');
  return rows.length === 1;
}

/** The outcome of a failed attempt, for {@link markOutboxFailed}. */
export interface FailedAttempt {
  /** The `attempts` value of the claim that failed: the write applies only if nobody has claimed the row since. */
  readonly attempt: number;
  readonly error: string;
  readonly now: string;
  /** When to try again; `null` gives up and moves the effect to the dead-letter list. */
  readonly retryAt: string | null;
}

/**
 * Records a failed attempt: the row is due again at `retryAt`, or dead. Returns what the row
 * became, or `'stale'` when another worker has claimed it since (its lease ran out), in which case
 * nothing changes.
 *
 * @example
 * ```ts
 * await markOutboxFailed(store, row, { attempt: row.attempts, error: 'HTTP 502', now, retryAt: later });
 * ```
 */
export async function markOutboxFailed(store: OpenedDatabase, key: OutboxKey, failed: FailedAttempt): Promise<'pending' | 'dead' | 'stale'> {
  const rows = await store.query<{ status: string }>(
    `update outbox
     set last_error = $5,
         status = case when $6::timestamptz is null then 'dead' else 'pending' end,
         next_attempt_at = coalesce($6::timestamptz, next_attempt_at),
         dead_at = case when $6::timestamptz is null then $7::timestamptz end
     where case_id = $1 and seq = $2 and effect_no = $3 and status = 'pending' and attempts = $4
     returning status`,
    [key.caseId, key.seq, key.effectNo, failed.attempt, failed.error, failed.retryAt, failed.now], 'wf_outbox_failed');
  const status = rows[0]?.status;
  return status === 'dead' ? 'dead' : status === 'pending' ? 'pending' : 'stale';
}

/** Which dead letters to list or retry. */
export interface DeadLetterFilter {
  readonly caseId?: string;
  readonly kind?: string;
}

/** A page of the dead-letter list; see {@link listDeadLetters}. */
export interface DeadLetterPage {
  readonly items: readonly OutboxRow[];
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: OutboxKey;
}

/**
 * Lists effects that gave up, in key order (case, event, effect), a page at a time.
 *
 * @example
 * ```ts
 * let page = await listDeadLetters(store, { kind: 'webhook' }, { limit: 20 });
 * if (page.next) page = await listDeadLetters(store, { kind: 'webhook' }, { limit: 20, after: page.next });
 * ```
 */
export async function listDeadLetters(
  store: OpenedDatabase,
  filter: DeadLetterFilter = {},
  page: { readonly limit?: number; readonly after?: OutboxKey } = {},
): Promise<DeadLetterPage> {
  const limit = page.limit ?? 50;
  const after = page.after;
  const rows = await store.query<Record<string, unknown>>(
    `select ${COLUMNS} from outbox
     where status = 'dead'
       and ($1::text is null or case_id = $1)
       and ($2::text is null or kind = $2)
       and ($3::text is null or (case_id, seq, effect_no) > ($3::text, $4::int, $5::int))
     order by case_id, seq, effect_no
     limit $6`,
    [filter.caseId ?? null, filter.kind ?? null, after?.caseId ?? null, after?.seq ?? null, after?.effectNo ?? null, limit + 1],
    'wf_outbox_dead_list');
  const items = rows.slice(0, limit).map(toRow);
  const last = items[items.length - 1];
  return rows.length > limit && last !== undefined ? { items, next: { caseId: last.caseId, seq: last.seq, effectNo: last.effectNo } } : { items };
}

/**
 * Puts dead letters back in the queue, due at `now` with their attempts reset (the last error is
 * kept until the next attempt replaces it). A single key retries that effect; a filter retries
 * every dead letter it matches. Returns how many went back.
 *
 * @example
 * ```ts
 * await retryDeadLetters(store, { caseId, seq: 6, effectNo: 3 }, now); // one
 * await retryDeadLetters(store, { kind: 'webhook' }, now);             // all dead webhooks
 * ```
 */
export async function retryDeadLetters(store: OpenedDatabase, which: OutboxKey | DeadLetterFilter, now: string): Promise<number> {
  const key = 'seq' in which ? which : undefined;
  const filter: DeadLetterFilter = key === undefined ? which : {};
  const rows = await store.query(
    `update outbox set status = 'pending', attempts = 0, next_attempt_at = $1::timestamptz, dead_at = null
     where status = 'dead'
       and ($2::text is null or case_id = $2)
       and ($3::int is null or (seq = $3 and effect_no = $4))
       and ($5::text is null or kind = $5)
     returning seq`,
    [now, key?.caseId ?? filter.caseId ?? null, key?.seq ?? null, key?.effectNo ?? null, filter.kind ?? null], 'wf_outbox_retry');
  return rows.length;
}

/**
 * Every outbox row of a case, in key order: what its events asked for and how delivery went.
 *
 * @example
 * ```ts
 * const rows = await outboxOfCase(store, caseId); // [{ kind: 'notify', status: 'delivered', … }, …]
 * ```
 */
export async function outboxOfCase(store: OpenedDatabase, caseId: string): Promise<OutboxRow[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select ${COLUMNS} from outbox where case_id = $1 order by seq, effect_no`, [caseId], 'wf_outbox_of_case');
  return rows.map(toRow);
}

// ---- where delivered effects land -----------------------------------------------------------

/** One points-ledger entry to write. */
export interface LedgerEntry {
  readonly caseId: string;
  /** Unique per case; derived from the outbox key so that a redelivery writes the same entry. */
  readonly entryNo: number;
  readonly actorId: string;
  readonly points: number;
  readonly hours: number;
  readonly reason: string;
  readonly eventSeq: number;
  readonly createdAt: string;
}

/**
 * Writes a ledger entry unless one with the same (case, entry number) exists; true if written.
 *
 * @example
 * ```ts
 * await insertLedgerEntry(store, { caseId, entryNo: 6003, actorId: '党员李', points: 10, hours: 0, reason: '五单服务积分', eventSeq: 6, createdAt: now });
 * ```
 */
export async function insertLedgerEntry(store: OpenedDatabase, entry: LedgerEntry): Promise<boolean> {
  const rows = await store.query(
    `insert into points_ledger (case_id, entry_no, actor_id, points, hours, reason, event_seq, created_at)
     values ($1, $2, $3, $4::numeric, $5::numeric, $6, $7, $8::timestamptz)
     on conflict (case_id, entry_no) do nothing returning entry_no`,
    [entry.caseId, entry.entryNo, entry.actorId, String(entry.points), String(entry.hours), entry.reason, entry.eventSeq, entry.createdAt],
    'wf_ledger_insert');
  return rows.length === 1;
}

/** An actor's totals; `numeric` sums read as strings, so no precision is lost before the caller decides. */
export interface LedgerTotals {
  readonly points: string;
  readonly hours: string;
}

/**
 * Sums an actor's ledger entries.
 *
 * @example
 * ```ts
 * const { points, hours } = await ledgerTotals(store, '党员李'); // { points: '10', hours: '3' }
 * ```
 */
export async function ledgerTotals(store: OpenedDatabase, actorId: string): Promise<LedgerTotals> {
  const rows = await store.query<{ points: unknown; hours: unknown }>(
    'select coalesce(sum(points), 0)::text as points, coalesce(sum(hours), 0)::text as hours from points_ledger where actor_id = $1',
    [actorId], 'wf_ledger_totals');
  const r = rows[0];
  return { points: String(r?.points ?? '0'), hours: String(r?.hours ?? '0') };
}

/** One notification to write. Who receives it: a person, or a role in a unit (or a whole unit when `role` is null). */
export interface NotificationWrite {
  readonly caseId: string;
  readonly seq: number;
  readonly effectNo: number;
  readonly recipientNo: number;
  readonly kind: string;
  readonly role: string | null;
  readonly orgUnitId: string | null;
  readonly personId: string | null;
  readonly message: string;
  readonly reason: string | null;
  readonly payload: unknown;
  readonly createdAt: string;
}

/**
 * Writes notifications, skipping any already written for the same (case, event, effect,
 * recipient); returns how many were new.
 *
 * @example
 * ```ts
 * await insertNotifications(store, [{ caseId, seq: 2, effectNo: 1, recipientNo: 1, kind: 'notify', role: '单位书记', orgUnitId: '县卫健局', personId: null, message: '有新的群众心愿待接单', reason: 'event', payload: effect, createdAt: now }]);
 * ```
 */
export async function insertNotifications(store: OpenedDatabase, rows: readonly NotificationWrite[]): Promise<number> {
  if (rows.length === 0) return 0;
  const inserted = await store.query(
    `insert into notifications (case_id, seq, effect_no, recipient_no, kind, role, org_unit_id, person_id, message, reason, payload, created_at)
     select n.case_id, n.seq, n.effect_no, n.recipient_no, n.kind, n.role, n.org_unit_id, n.person_id, n.message, n.reason, n.payload, n.created_at
     from jsonb_to_recordset($1::jsonb) as n(case_id text, seq int, effect_no int, recipient_no int, kind text, role text, org_unit_id text,
                                             person_id text, message text, reason text, payload jsonb, created_at timestamptz)
     on conflict (case_id, seq, effect_no, recipient_no) do nothing
     returning seq`,
    [JSON.stringify(rows.map((n) => ({
      case_id: n.caseId, seq: n.seq, effect_no: n.effectNo, recipient_no: n.recipientNo, kind: n.kind, role: n.role, org_unit_id: n.orgUnitId,
      person_id: n.personId, message: n.message, reason: n.reason, payload: n.payload ?? null, created_at: n.createdAt,
    })))],
    'wf_notifications_insert');
  return inserted.length;
}

/** A stored notification: what was written. */
export type NotificationRow = NotificationWrite;

/** Which notifications to read: any combination narrows the list. */
export interface NotificationFilter {
  readonly caseId?: string;
  readonly personId?: string;
  readonly orgUnitId?: string;
  readonly role?: string;
  readonly limit?: number;
}

/**
 * Notifications, newest first.
 *
 * @example
 * ```ts
 * const inbox = await listNotifications(store, { orgUnitId: '县卫健局', role: '单位书记', limit: 20 });
 * ```
 */
export async function listNotifications(store: OpenedDatabase, filter: NotificationFilter): Promise<NotificationRow[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select case_id, seq, effect_no, recipient_no, kind, role, org_unit_id, person_id, message, reason, payload, created_at
     from notifications
     where ($1::text is null or case_id = $1)
       and ($2::text is null or person_id = $2)
       and ($3::text is null or org_unit_id = $3)
       and ($4::text is null or role = $4)
     order by created_at desc, case_id, seq desc, effect_no desc, recipient_no
     limit $5`,
    [filter.caseId ?? null, filter.personId ?? null, filter.orgUnitId ?? null, filter.role ?? null, filter.limit ?? 100],
    'wf_notifications_list');
  return rows.map((r) => ({
    caseId: String(r['case_id']),
    seq: Number(r['seq']),
    effectNo: Number(r['effect_no']),
    recipientNo: Number(r['recipient_no']),
    kind: String(r['kind']),
    role: (r['role'] as string | null) ?? null,
    orgUnitId: (r['org_unit_id'] as string | null) ?? null,
    personId: (r['person_id'] as string | null) ?? null,
    message: String(r['message']),
    reason: (r['reason'] as string | null) ?? null,
    payload: r['payload'],
    createdAt: iso(r['created_at']),
  }));
}
