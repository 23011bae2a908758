/**
 * The outbox worker: applies the effects events asked for (notify, credit points, webhooks, and the
 * escalated/reassigned/missed records) after their event has committed, at least once.
 *
 * Delivery is at least once: a worker claims due effects under a lease, applies each, then marks
 * it delivered; if it dies in between, the lease runs out and another attempt applies it again.
 * So every handler must be idempotent by the effect's key (case, event seq, effect number): the
 * ledger entry number and the notification key are derived from it, and webhook receivers get it
 * as `Idempotency-Key`. A failing effect is retried with capped exponential backoff and, after
 * `maxAttempts`, moves to the dead-letter list, from which an operator can send it again. No row
 * is ever deleted.
 */
import type { Effect } from '../dsl/runtime.ts';
import type { Clock, EngineLogger } from './engine.ts';
import { EngineError } from './errors.ts';
import {
  claimOutbox, insertLedgerEntry, insertNotifications, ledgerTotals, listDeadLetters, listNotifications, markOutboxDelivered,
  markOutboxFailed, retryDeadLetters,
  type DeadLetterFilter, type DeadLetterPage, type NotificationFilter, type NotificationRow, type NotificationWrite, type OutboxKey, type OutboxRow,
} from './store/outbox.ts';
import type { OpenedDatabase } from './store/open.ts';

export type { DeadLetterFilter, DeadLetterPage, NotificationFilter, NotificationRow, OutboxKey, OutboxRow } from './store/outbox.ts';

/** One effect being delivered, as a handler sees it. */
export interface OutboxEntry extends OutboxKey {
  /** One of `Effect['kind']` for rows the engine wrote; anything a custom handler is registered for otherwise. */
  readonly kind: string;
  /** The stored effect. Typed as the engine's `Effect`; a row of another kind carries whatever its writer stored (with that `kind`). */
  readonly effect: Effect;
  /** 1 on the first attempt; counts attempts cut short by a crash too. */
  readonly attempt: number;
  /** When the event that produced it was committed (database time). */
  readonly createdAt: string;
}

/** What a handler may use besides the entry. `now` is the worker's clock at the start of the attempt. */
export interface HandlerContext {
  readonly store: OpenedDatabase;
  readonly now: string;
}

/**
 * Applies one effect; throws to have it retried. Must be idempotent by the entry's key, because
 * an effect applied just before a crash is applied again.
 *
 * @example
 * ```ts
 * const sms: EffectHandler = async (entry) => { if (entry.effect.kind === 'notify') await smsGateway.send(entry.effect.message); };
 * ```
 */
export type EffectHandler = (entry: OutboxEntry, context: HandlerContext) => Promise<void>;

/**
 * Where `webhook` effects (`emit "topic"` in a workflow) are POSTed. A topic with neither its own
 * URL nor a default has no subscriber: its effects are marked delivered without a request.
 *
 * @example
 * ```ts
 * const webhooks: WebhookOptions = { urls: { '五单.已评单': 'https://kpi.example/hooks/rated' }, defaultUrl: 'https://bus.example/wf' };
 * ```
 */
export interface WebhookOptions {
  /** URL per topic. */
  readonly urls?: Readonly<Record<string, string>>;
  /** URL for topics not in `urls`. */
  readonly defaultUrl?: string;
  /** A request that takes longer fails (and is retried). Default 10 s; keep it well under the worker's lease. */
  readonly timeoutMs?: number;
  /** Sent with every request, e.g. an authorization token. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Options of {@link OutboxWorker}.
 *
 * @example
 * ```ts
 * const options: OutboxWorkerOptions = { store, clock: engine.clock, maxAttempts: 8, webhooks: { defaultUrl: 'http://127.0.0.1:9000/wf' } };
 * ```
 */
export interface OutboxWorkerOptions {
  readonly store: OpenedDatabase;
  readonly clock?: Clock;
  readonly logger?: EngineLogger;
  /** Handlers per effect kind, replacing or adding to the defaults of {@link defaultHandlers}. */
  readonly handlers?: Readonly<Record<string, EffectHandler>>;
  readonly webhooks?: WebhookOptions;
  /** Effects claimed per run (default 50). */
  readonly batchSize?: number;
  /** How long a claim lasts before the effects come due again for another worker (default 60 s). */
  readonly leaseMs?: number;
  /** Attempts before an effect is dead (default 12: about an hour with the default backoff). */
  readonly maxAttempts?: number;
  /** The wait after failed attempt n is `min(maxMs, baseMs · 2^(n−1))` (defaults 2 s and 30 min). */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
}

/** What one {@link OutboxWorker.runOnce} did. */
export interface OutboxRunResult {
  readonly claimed: number;
  readonly delivered: number;
  /** Failed and due again later. */
  readonly retrying: number;
  /** Failed for the last time: now in the dead-letter list. */
  readonly dead: number;
}

const defaultClock: Clock = { now: () => Date.now() };

/** Why an outbox row cannot be handed to a handler; retried like any failure, so it ends as a dead letter an operator can see. */
class MalformedEffect extends Error {}

/**
 * The ledger entry number of a `credit` effect: `seq · 1000 + effect_no`. Derived from the outbox
 * key so that a redelivered credit hits the same (case_id, entry_no) and is not written twice.
 *
 * @throws Error when the effect number or sequence is out of the range the scheme can encode.
 * @example
 * ```ts
 * ledgerEntryNo({ caseId: 'c1', seq: 6, effectNo: 3 }); // 6003
 * ```
 */
export function ledgerEntryNo(key: OutboxKey): number {
  const entryNo = key.seq * 1000 + key.effectNo;
  if (!Number.isSafeInteger(entryNo) || key.effectNo < 1 || key.effectNo > 999 || entryNo > 2_147_483_647) {
    throw new MalformedEffect(`credit ${key.caseId}/${key.seq}/${key.effectNo}: a ledger entry number needs 1 ≤ effect number ≤ 999 and seq ≤ 2,147,482`);
  }
  return entryNo;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

const creditHandler: EffectHandler = async (entry, { store, now }) => {
  const effect = entry.effect;
  if (effect.kind !== 'credit') throw new MalformedEffect(`credit handler given a ${effect.kind} effect`);
  // `credit … to case.党员` while nobody holds that field: there is nobody to credit, which is not
  // something a retry can change.
  if (effect.actor === null) return;
  if (!isFiniteNumber(effect.points) || !isFiniteNumber(effect.hours)) {
    throw new MalformedEffect(`credit ${entry.caseId}/${entry.seq}/${entry.effectNo}: points and hours must be finite numbers`);
  }
  await insertLedgerEntry(store, {
    caseId: entry.caseId,
    entryNo: ledgerEntryNo(entry),
    actorId: effect.actor,
    points: effect.points,
    hours: effect.hours,
    reason: effect.reason ?? '积分',
    eventSeq: entry.seq,
    createdAt: now,
  });
};

function notification(entry: OutboxEntry, now: string, recipientNo: number, who: Pick<NotificationWrite, 'role' | 'orgUnitId' | 'personId'>, message: string, reason: string | null): NotificationWrite {
  return { caseId: entry.caseId, seq: entry.seq, effectNo: entry.effectNo, recipientNo, kind: entry.kind, ...who, message, reason, payload: entry.effect, createdAt: now };
}

const unitOnly = (unit: string | null): Pick<NotificationWrite, 'role' | 'orgUnitId' | 'personId'> => ({ role: null, orgUnitId: unit, personId: null });

/** The notifications an effect leaves in inboxes; one per recipient. */
function notificationsOf(entry: OutboxEntry, now: string): NotificationWrite[] {
  const effect = entry.effect;
  switch (effect.kind) {
    case 'notify':
      // No role and no person (e.g. `notify submitter` of an anonymous 码上办 case) still records
      // the message on the case, where whoever views it sees it.
      return [notification(entry, now, 1, { role: effect.role ?? null, orgUnitId: effect.unit ?? null, personId: effect.person ?? null }, effect.message, effect.reason)];
    case 'escalated':
      return [notification(entry, now, 1, unitOnly(effect.to), `案件已从 ${effect.from ?? '（无）'} 上报至 ${effect.to ?? '（无）'}`, 'escalated')];
    case 'reassigned':
      return [notification(entry, now, 1, unitOnly(effect.to), `案件已从 ${effect.from ?? '（无）'} 改由 ${effect.to ?? '（无）'} 负责`, 'reassigned')];
    case 'missed':
      return effect.units.map((unit, i) => notification(entry, now, i + 1, unitOnly(unit), `「${effect.state}」未在时限内报到`, 'missed'));
    default:
      throw new MalformedEffect(`no notification for a ${effect.kind} effect`);
  }
}

const notificationHandler: EffectHandler = async (entry, { store, now }) => {
  await insertNotifications(store, notificationsOf(entry, now));
};

/** The effect's key as one string, e.g. for the webhook `Idempotency-Key`. */
export function effectKey(key: OutboxKey): string {
  return `${key.caseId}/${key.seq}/${key.effectNo}`;
}

function webhookHandler(options: WebhookOptions): EffectHandler {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return async (entry, { now }) => {
    const effect = entry.effect;
    if (effect.kind !== 'webhook') throw new MalformedEffect(`webhook handler given a ${effect.kind} effect`);
    const url = options.urls !== undefined && Object.hasOwn(options.urls, effect.topic) ? options.urls[effect.topic] : options.defaultUrl;
    if (url === undefined) return;
    const id = effectKey(entry);
    const body = JSON.stringify({ id, topic: effect.topic, caseId: entry.caseId, seq: entry.seq, effectNo: entry.effectNo, payload: effect.payload, attempt: entry.attempt, sentAt: now });
    const response = await fetch(url, {
      method: 'POST',
      // Header values must be Latin-1; case ids chosen by callers may not be.
      headers: { ...options.headers, 'content-type': 'application/json', 'idempotency-key': encodeURIComponent(id) },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Read the body either way so the connection goes back to the pool.
    const text = await response.text().catch(() => '');
    if (!response.ok) throw new Error(`webhook ${effect.topic}: ${url} answered HTTP ${response.status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`);
  };
}

/**
 * The handlers the worker uses unless told otherwise: `credit` → the points ledger; `notify`,
 * `escalated`, `reassigned`, `missed` → the notifications table (inboxes); `webhook` → an HTTP POST
 * per {@link WebhookOptions}.
 *
 * @example
 * ```ts
 * const handlers = defaultHandlers({ defaultUrl: 'http://127.0.0.1:9000/wf' });
 * await handlers.credit(entry, { store, now }); // what the worker does for a credit effect
 * ```
 */
export function defaultHandlers(webhooks: WebhookOptions = {}): Readonly<Record<Effect['kind'], EffectHandler>> {
  return {
    credit: creditHandler,
    notify: notificationHandler,
    escalated: notificationHandler,
    reassigned: notificationHandler,
    missed: notificationHandler,
    webhook: webhookHandler(webhooks),
  };
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new EngineError('VALIDATION_FAILED', `Outbox option ${name} must be a whole number ≥ 1, got ${String(v)}.`, { fields: [{ path: name, code: 'range', message: 'must be a whole number ≥ 1' }] });
  }
  return v;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function messageOf(error: unknown): string {
  const text = error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
  return text.slice(0, 2000);
}

/**
 * Delivers outbox effects. Run one per process (or several: claims never overlap); `runOnce` is
 * the unit of work, `start`/`stop` poll it. Times (due, lease, backoff) follow the injected clock.
 *
 * @example
 * ```ts
 * const worker = new OutboxWorker({ store, clock: engine.clock, webhooks: { defaultUrl: process.env.WEBHOOK_URL } });
 * worker.start(1_000);
 * // … on shutdown:
 * await worker.stop();
 * const { items } = await worker.deadLetters({ kind: 'webhook' });
 * for (const dead of items) await worker.retry(dead);
 * ```
 */
export class OutboxWorker {
  readonly store: OpenedDatabase;
  readonly clock: Clock;
  private readonly logger: EngineLogger | undefined;
  private readonly handlers: Readonly<Record<string, EffectHandler>>;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private running = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: OutboxWorkerOptions) {
    this.store = options.store;
    this.clock = options.clock ?? defaultClock;
    this.logger = options.logger;
    this.handlers = { ...defaultHandlers(options.webhooks), ...options.handlers };
    this.batchSize = positiveInteger('batchSize', options.batchSize, 50);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs, 60_000);
    this.maxAttempts = positiveInteger('maxAttempts', options.maxAttempts, 12);
    this.baseMs = positiveInteger('backoff.baseMs', options.backoff?.baseMs, 2_000);
    this.maxMs = positiveInteger('backoff.maxMs', options.backoff?.maxMs, 30 * 60_000);
  }

  /** The wait before attempt `attempt + 1` after attempt `attempt` failed. */
  backoffMs(attempt: number): number {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.max(0, attempt - 1));
  }

  /**
   * Claims one batch of due effects and delivers them: effects of one case in order, different
   * cases side by side. Rejects only if the database fails; handler failures are counted.
   */
  async runOnce(): Promise<OutboxRunResult> {
    const start = this.clock.now();
    const rows = await claimOutbox(this.store, { now: iso(start), leaseUntil: iso(start + this.leaseMs), limit: this.batchSize });
    const byCase = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const list = byCase.get(row.caseId);
      if (list === undefined) byCase.set(row.caseId, [row]);
      else list.push(row);
    }
    const counts = { claimed: rows.length, delivered: 0, retrying: 0, dead: 0 };
    const settled = await Promise.allSettled([...byCase.values()].map(async (list) => {
      for (const row of list) counts[await this.deliver(row)]++;
    }));
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    // A row whose outcome could not be recorded keeps its lease and comes due again.
    if (failure !== undefined) throw failure.reason;
    return counts;
  }

  private async deliver(row: OutboxRow): Promise<'delivered' | 'retrying' | 'dead'> {
    try {
      const handler = Object.hasOwn(this.handlers, row.kind) ? this.handlers[row.kind] : undefined;
      if (handler === undefined) throw new MalformedEffect(`no handler for effect kind ${JSON.stringify(row.kind)}`);
      const effect = row.payload;
      if (typeof effect !== 'object' || effect === null || (effect as { kind?: unknown }).kind !== row.kind) {
        throw new MalformedEffect(`outbox payload is not a ${row.kind} effect`);
      }
      // The engine writes outbox rows only from `Effect` values (see engine/store/cases.ts).
      const entry: OutboxEntry = { caseId: row.caseId, seq: row.seq, effectNo: row.effectNo, kind: row.kind, effect: effect as Effect, attempt: row.attempts, createdAt: row.createdAt };
      await handler(entry, { store: this.store, now: iso(this.clock.now()) });
    } catch (error) {
      const now = this.clock.now();
      const retryAt = row.attempts >= this.maxAttempts ? null : iso(now + this.backoffMs(row.attempts));
      const message = messageOf(error);
      const outcome = await markOutboxFailed(this.store, row, { attempt: row.attempts, error: message, now: iso(now), retryAt });
      const fields = { caseId: row.caseId, seq: row.seq, effectNo: row.effectNo, kind: row.kind, attempt: row.attempts, error: message };
      if (outcome === 'dead') {
        this.logger?.error(fields, 'outbox effect failed for the last time; it is in the dead-letter list');
        return 'dead';
      }
      this.logger?.warn({ ...fields, retryAt }, 'outbox effect failed; will retry');
      return 'retrying';
    }
    await markOutboxDelivered(this.store, row, iso(this.clock.now()));
    return 'delivered';
  }

  /**
   * Runs {@link runOnce} every `intervalMs` (real time) until {@link stop}; a full batch is followed
   * at once by the next. Database errors are logged and the loop goes on.
   */
  start(intervalMs = 1_000): void {
    if (this.running) return;
    this.running = true;
    const tick = (): void => {
      this.timer = undefined;
      this.loop = this.runOnce().then(
        (result) => result.claimed >= this.batchSize,
        (error: unknown) => {
          this.logger?.error({ err: error }, 'outbox run failed');
          return false;
        },
      ).then((full) => {
        this.loop = undefined;
        if (!this.running) return;
        this.timer = setTimeout(tick, full ? 0 : intervalMs);
        // Polling alone should not keep a process alive.
        this.timer.unref();
      });
    };
    tick();
  }

  /** Stops polling and waits for the run in progress, if any, to finish. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.loop;
  }

  /**
   * The dead-letter list, a page at a time.
   *
   * @example
   * ```ts
   * const { items, next } = await worker.deadLetters({ caseId }, { limit: 20 });
   * ```
   */
  deadLetters(filter: DeadLetterFilter = {}, page: { readonly limit?: number; readonly after?: OutboxKey } = {}): Promise<DeadLetterPage> {
    return listDeadLetters(this.store, filter, page);
  }

  /**
   * Sends dead letters again: one effect by its key, or all matching a filter. They are due at
   * once with a fresh set of attempts. Returns how many went back (0 if the key is not dead).
   *
   * @example
   * ```ts
   * await worker.retry({ caseId, seq: 6, effectNo: 3 });
   * await worker.retry({ kind: 'webhook' });
   * ```
   */
  retry(which: OutboxKey | DeadLetterFilter): Promise<number> {
    return retryDeadLetters(this.store, which, iso(this.clock.now()));
  }
}

/** An actor's points and time-bank hours. */
export interface PointsBalance {
  readonly points: number;
  readonly hours: number;
}

/**
 * An actor's balance: the sum of their points-ledger entries (credited by delivered `credit` effects).
 *
 * @example
 * ```ts
 * const { points, hours } = await pointsBalance(store, '党员李'); // { points: 10, hours: 3 }
 * ```
 */
export async function pointsBalance(store: OpenedDatabase, actorId: string): Promise<PointsBalance> {
  const totals = await ledgerTotals(store, actorId);
  return { points: Number(totals.points), hours: Number(totals.hours) };
}

/**
 * Delivered notifications, newest first: a person's (`personId`), a role's in a unit (`orgUnitId`
 * and `role`), a unit's, or a case's.
 *
 * @example
 * ```ts
 * const inbox = await notifications(store, { orgUnitId: '县卫健局', role: '单位书记', limit: 20 });
 * ```
 */
export function notifications(store: OpenedDatabase, filter: NotificationFilter): Promise<NotificationRow[]> {
  return listNotifications(store, filter);
}
