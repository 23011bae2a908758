/**
 * What is waiting in the background queues, for the metrics scrape: due timers not yet fired and
 * outbox effects not yet delivered. Each count walks a partial index of those rows only (migrations
 * 0001 and 0003), so a scrape costs in proportion to the backlog, not to the history.
 */
import type { OpenedDatabase } from './open.ts';

export interface Backlog {
  /** Scheduled timers due by `now` that no poller has claimed yet. */
  readonly timersDue: number;
  /** Timers claimed by a poller and not yet fired (in flight, or their holder died). */
  readonly timersClaimed: number;
  /** Outbox effects not yet delivered (waiting, or retrying after a failure). */
  readonly outboxPending: number;
  /** Seconds since the oldest undelivered effect was written; 0 when none waits. */
  readonly outboxLagSeconds: number;
  /** Effects that gave up (the dead-letter list). */
  readonly outboxDead: number;
}

/**
 * Reads the backlog in one statement. `now` is the engine's clock (timers are due by it); the
 * outbox age is measured on the database's clock, which wrote `created_at`.
 * @example const b = await readBacklog(store, new Date().toISOString()); // { timersDue: 0, … }
 */
export async function readBacklog(store: OpenedDatabase, now: string): Promise<Backlog> {
  const rows = await store.query<Record<string, unknown>>(
    `select (select count(*) from timers where state = 'scheduled' and due_at <= $1::timestamptz)::int as timers_due,
            (select count(*) from timers where state = 'claimed')::int as timers_claimed,
            (select count(*) from outbox where status = 'pending')::int as outbox_pending,
            (select coalesce(extract(epoch from now() - min(created_at)), 0) from outbox where status = 'pending')::float8 as outbox_lag,
            (select count(*) from outbox where status = 'dead')::int as outbox_dead`,
    [now], 'wf_backlog');
  const r = rows[0] ?? {};
  return {
    timersDue: Number(r['timers_due'] ?? 0),
    timersClaimed: Number(r['timers_claimed'] ?? 0),
    outboxPending: Number(r['outbox_pending'] ?? 0),
    outboxLagSeconds: Math.max(0, Number(r['outbox_lag'] ?? 0)),
    outboxDead: Number(r['outbox_dead'] ?? 0),
  };
}
