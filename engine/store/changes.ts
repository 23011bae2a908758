/**
 * The change feed's reads and its wake-up signal: the events of every case in one order that all
 * server processes agree on, a case's events after a seq, the cases a batch of changes touched,
 * and a Postgres NOTIFY / LISTEN pair so one process learns at once that another has written.
 *
 * The order is (tx, case_id, seq), tx being the id of the transaction that wrote the event
 * (migration 0005). Transaction ids are taken before commit, so they are not in commit order: a
 * transaction with a smaller id may still commit after a larger one became visible. A reader
 * therefore takes only events of transactions older than the oldest one still running (its
 * snapshot's xmin): those are all settled, so nothing can appear behind a position once it has
 * been read past. The price is that a long-running writing transaction holds the feed back until
 * it ends.
 */
import pg from 'pg';
import type { OpenedDatabase } from './open.ts';
import { iso } from './rows.ts';

/** A place in the global order of events. `tx` is a bigint as text. */
export interface ChangePosition {
  readonly tx: string;
  readonly caseId: string;
  readonly seq: number;
}

/** One event as a live reader sees it. */
export interface EventChange {
  readonly caseId: string;
  readonly seq: number;
  readonly type: string;
  /** The state after the event. */
  readonly state: string;
  /** After the event: `suspended` from a `case.suspended` until the `case.resumed` that ends it. */
  readonly status: 'active' | 'done' | 'suspended';
  readonly actor: string | null;
  /** The unit the event was sent for (where the sender's role was held). */
  readonly unit: string | null;
  /** The event's recorded time (ISO). */
  readonly at: string;
}

/** An event with its place in the global order. */
export interface FeedChange extends EventChange {
  readonly position: ChangePosition;
}

export interface ChangePage {
  readonly changes: readonly FeedChange[];
  /** Every event of a transaction older than this one is settled (a bigint as text). */
  readonly horizon: string;
  /** Committed events are held back behind the horizon (an older transaction is still running): read again soon. */
  readonly waiting: boolean;
}

// Whether the case is suspended after the event: the last suspend/resume at or before it decides.
// It walks that one case's events backwards by primary key, so it costs a few index entries.
const CHANGE_COLUMNS = `e.case_id, e.seq, e.type, e.actor_id, e.org_unit_id, e.recorded_at,
  e.resulting_state->>'state' as state, e.resulting_state->>'status' as status,
  coalesce((select s.type = 'case.suspended' from events s
             where s.case_id = e.case_id and s.seq <= e.seq and s.type in ('case.suspended', 'case.resumed')
             order by s.seq desc limit 1), false) as suspended`;

// `tx >= $1` lets the BRIN index of migration 0005 skip settled history; the row comparison then
// starts exactly after the position, with case ids compared bytewise (collation "C") so the order
// is the same whatever the database's default collation. The same bound on `waiting` (events at
// or past the position are the only ones a reader can still be given) is what lets it use the
// index too: against the horizon alone, which the planner cannot see, it scanned the whole table
// on every poll (200 ms at 336,000 events; 1 ms now).
const FEED_SQL = `
with h as (select (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint as horizon),
     w as (select exists (select 1 from events x, h where x.tx >= $1::bigint and x.tx >= h.horizon) as waiting)
select h.horizon::text as horizon, w.waiting, e.*
from h cross join w left join lateral (
  select e.tx::text as tx, ${CHANGE_COLUMNS}
  from events e
  where e.tx >= $1::bigint and e.tx < h.horizon
    and (e.tx, e.case_id collate "C", e.seq) > ($1::bigint, $2::text collate "C", $3::int)
  order by e.tx, e.case_id collate "C", e.seq
  limit $4
) e on true`;

const CASE_SQL = `
select ${CHANGE_COLUMNS}
from events e
where e.case_id = $1 and e.seq > $2
order by e.seq
limit $3`;

function toChange(r: Record<string, unknown>): EventChange {
  const status = r['suspended'] === true ? 'suspended' : r['status'] === 'done' ? 'done' : 'active';
  return {
    caseId: String(r['case_id']),
    seq: Number(r['seq']),
    type: String(r['type']),
    state: String(r['state']),
    status,
    actor: r['actor_id'] === null || r['actor_id'] === undefined ? null : String(r['actor_id']),
    unit: r['org_unit_id'] === null || r['org_unit_id'] === undefined ? null : String(r['org_unit_id']),
    at: iso(r['recorded_at']),
  };
}

/**
 * Up to `limit` settled events after `after`, in the global order, and the horizon they were read
 * up to.
 * @example const page = await changesAfter(store, { tx: '0', caseId: '', seq: 0 }, 500);
 */
export async function changesAfter(store: OpenedDatabase, after: ChangePosition, limit: number): Promise<ChangePage> {
  const rows = await store.query<Record<string, unknown>>(FEED_SQL, [after.tx, after.caseId, after.seq, limit]);
  const horizon = String(rows[0]?.['horizon'] ?? after.tx);
  const waiting = rows[0]?.['waiting'] === true;
  const changes: FeedChange[] = [];
  for (const r of rows) {
    if (r['case_id'] === null || r['case_id'] === undefined) continue;
    changes.push({ ...toChange(r), position: { tx: String(r['tx']), caseId: String(r['case_id']), seq: Number(r['seq']) } });
  }
  return { changes, horizon, waiting };
}

/**
 * The current horizon: every event of a transaction older than it is settled, so a reader that
 * starts "now" starts there.
 * @example const head = await changeHorizon(store); // '7321'
 */
export async function changeHorizon(store: OpenedDatabase): Promise<string> {
  const rows = await store.query<{ horizon: string }>('select ((pg_snapshot_xmin(pg_current_snapshot())::text)::bigint)::text as horizon', []);
  return String(rows[0]?.horizon ?? '0');
}

/**
 * A case's events after `afterSeq`, oldest first. Not held to the horizon: a case's events are
 * written one after another, so reading by seq never skips one.
 * @example const next = await caseChangesAfter(store, caseId, 4, 100);
 */
export async function caseChangesAfter(store: OpenedDatabase, caseId: string, afterSeq: number, limit: number): Promise<EventChange[]> {
  const rows = await store.query<Record<string, unknown>>(CASE_SQL, [caseId, afterSeq, limit], 'wf_changes_of_case');
  return rows.map(toChange);
}

/** The NOTIFY channel; the payload is the schema, so stores sharing a database do not wake each other. */
const CHANNEL = 'wf_changes';

/**
 * Tells the other server processes on this database that something was written (Postgres NOTIFY;
 * nothing on PGlite, which has one process). Its own small transaction, committed without waiting
 * for the WAL flush: a lost wake-up costs only latency (the readers also poll), so it need not be
 * durable, and it must not slow the writers' commits.
 * @example await announceChanges(store);
 */
export async function announceChanges(store: OpenedDatabase): Promise<void> {
  if (store.kind !== 'postgres') return;
  await store.query(`select set_config('synchronous_commit', 'off', true), pg_notify('${CHANNEL}', $1)`, [store.schema], 'wf_changes_notify');
}

/** An open LISTEN connection; see {@link listenForChanges}. */
export interface ChangeListener {
  close(): Promise<void>;
}

export interface ListenOptions {
  /** The database to listen on (any role that may connect will do: LISTEN needs no privilege). */
  readonly databaseUrl: string;
  /** The store's schema: only announcements for it count. */
  readonly schema: string;
  /** Called for each announcement. */
  readonly onChange: () => void;
  /** Called once if the connection fails or ends; the listener is then dead. */
  readonly onLost: (error: unknown) => void;
}

/**
 * Opens one connection that LISTENs for {@link announceChanges} of other processes. One per
 * process, whatever the number of streams it serves.
 * @example const l = await listenForChanges({ databaseUrl, schema: store.schema, onChange: () => feed.wake(), onLost: (e) => log(e) });
 */
export async function listenForChanges(options: ListenOptions): Promise<ChangeListener> {
  // Named with its schema, so an operator can tell in pg_stat_activity whose listener it is.
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: `closed-loop-listen ${options.schema}`.slice(0, 63), keepAlive: true });
  let closing = false;
  let lost = false;
  const fail = (error: unknown): void => {
    if (closing || lost) return;
    lost = true;
    options.onLost(error);
  };
  client.on('notification', (n) => {
    if (n.channel === CHANNEL && n.payload === options.schema) options.onChange();
  });
  client.on('error', fail);
  client.on('end', () => fail(new Error('the LISTEN connection ended')));
  try {
    await client.connect();
    await client.query(`listen ${CHANNEL}`);
  } catch (error) {
    closing = true;
    await client.end().catch(() => undefined);
    throw error;
  }
  return {
    async close() {
      if (closing) return;
      closing = true;
      await client.end().catch(() => undefined);
    },
  };
}
