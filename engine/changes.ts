/**
 * Live changes of cases, for the HTTP streams (server-sent events and long-polls).
 *
 * One {@link ChangeFeed} per process reads the events every process writes, in the one global
 * order of engine/store/changes.ts, and hands each batch to the watches of this process; it polls
 * only while someone watches, and is woken early by an event this process commits ({@link ChangeFeed.poke}, from `Engine.onCommitted`)
 * or announced by another process (Postgres LISTEN, one connection per process). A watch turns the
 * batches into what one client should see and resumes from a position without loss or
 * duplicates: {@link watchCase} follows one case by event seq, {@link watchInbox} follows the
 * cases an actor can act on, or no longer can, by global position.
 */
import { actionContext, actionsFor, snapshotOf, type ActionContext, type AvailableAction } from './actions.ts';
import type { Value } from '../dsl/types.ts';
import type { Engine, EngineLogger } from './engine.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';
import { EngineError } from './errors.ts';
import { lineage, type OrgView } from './org.ts';
import { casesByIds, type CaseListRow } from './store/admin.ts';
import {
  announceChanges, caseChangesAfter, changeHorizon, changesAfter, listenForChanges,
  type ChangeListener, type ChangePage, type ChangePosition, type EventChange, type FeedChange,
} from './store/changes.ts';
import type { OpenedDatabase } from './store/open.ts';

export type { ChangePage, ChangePosition, EventChange, FeedChange } from './store/changes.ts';

// ---- positions ----------------------------------------------------------------------------------

/**
 * A position as the opaque cursor clients hold (an SSE `id`, a long-poll's `next`): ASCII only,
 * so it travels in a `Last-Event-ID` header.
 * @example encodePosition({ tx: '7321', caseId: 'c-1', seq: 3 }) // 'WyI3MzIxIiwiYy0xIiwzXQ'
 */
export function encodePosition(p: ChangePosition): string {
  return encodeCursor([p.tx, p.caseId, p.seq]);
}

/**
 * The position of a cursor from {@link encodePosition}; VALIDATION_FAILED for anything else.
 * @example decodePosition(encodePosition(p)) // p
 */
export function decodePosition(cursor: string): ChangePosition {
  return decodeCursor(cursor, { who: 'this stream', field: 'after', hint: 'Pass back an `id` (or `next`) this stream sent, unchanged.' }, (v) =>
    v.length === 3 && typeof v[0] === 'string' && /^[0-9]{1,19}$/.test(v[0]) && typeof v[1] === 'string' && Number.isSafeInteger(v[2]) && (v[2] as number) >= 0
      ? { tx: v[0], caseId: v[1], seq: v[2] as number } : undefined);
}

/**
 * Orders positions as the database does: by tx, then case id bytewise (collation "C"), then seq.
 * @example comparePositions(a, b) < 0 // a comes first
 */
export function comparePositions(a: ChangePosition, b: ChangePosition): number {
  const ta = BigInt(a.tx);
  const tb = BigInt(b.tx);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const c = Buffer.compare(Buffer.from(a.caseId, 'utf8'), Buffer.from(b.caseId, 'utf8'));
  if (c !== 0) return c;
  return a.seq - b.seq;
}

/** The position just before every event of transactions from `horizon` on. */
function before(horizon: string): ChangePosition {
  return { tx: horizon, caseId: '', seq: 0 };
}

// ---- the feed -------------------------------------------------------------------------------------

export interface ChangeFeedOptions {
  /** How often to look for changes while someone watches, if nothing wakes the feed sooner (default 1,000 ms). */
  readonly pollMs?: number;
  /** At least this long between two reads, and between two announcements to other processes (default 20 ms). */
  readonly minGapMs?: number;
  /** Events read per query (default 500). */
  readonly batch?: number;
  /**
   * Postgres, several server processes: announce this process's writes to the others (NOTIFY)
   * and listen for theirs on one connection of its own, so changes are seen at once rather than
   * at the next poll. Without it the feed only polls, and announces nothing.
   */
  readonly listen?: { readonly databaseUrl: string };
  /** How long to wait before connecting the listener again after it failed (default 5,000 ms). */
  readonly retryMs?: number;
  readonly logger?: EngineLogger;
}

/** Receives each batch of new events, in order. Must not throw or block; queue async work. */
export type ChangeSubscriber = (changes: readonly FeedChange[]) => void;

/** How soon to read again while committed events wait behind an older running transaction. */
const BLOCKED_RETRY_MS = 50;

const quietLogger: EngineLogger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * The process's one reader of new events. Stateless across processes: everything it hands out
 * comes from the events table, so several server processes on one database see the same changes.
 * @example
 * const feed = new ChangeFeed(store, { listen: { databaseUrl } });
 * const stop = feed.subscribe((changes) => console.log(changes.map((c) => `${c.caseId}#${c.seq}`)));
 * feed.poke(); // after a write: read now, and tell the other processes
 * stop(); await feed.close();
 */
export class ChangeFeed {
  private readonly subscribers = new Set<ChangeSubscriber>();
  private readonly pollMs: number;
  private readonly minGapMs: number;
  private readonly batch: number;
  private readonly retryMs: number;
  private readonly logger: EngineLogger;
  private position: ChangePosition | undefined;
  /** Bumped whenever reading stops, so a read that was in flight then is not delivered. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private blocked = false;
  private lastRead = 0;
  private listener: ChangeListener | undefined;
  private connecting: Promise<void> | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private announcing: Promise<void> | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private announceAgain = false;
  private lastAnnounce = 0;
  private closed = false;
  private started: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined;
  private readonly loads = new WeakMap<readonly FeedChange[], Promise<ReadonlyMap<string, CaseListRow>>>();

  constructor(readonly store: OpenedDatabase, private readonly options: ChangeFeedOptions = {}) {
    this.pollMs = options.pollMs ?? 1_000;
    this.minGapMs = options.minGapMs ?? 20;
    this.batch = options.batch ?? 500;
    this.retryMs = options.retryMs ?? 5_000;
    this.logger = options.logger ?? quietLogger;
    if (!(this.pollMs > 0) || !(this.minGapMs >= 0) || !Number.isSafeInteger(this.batch) || this.batch < 1) {
      throw new RangeError('ChangeFeed: pollMs must be > 0, minGapMs ≥ 0 and batch a whole number ≥ 1.');
    }
  }

  /** Number of subscribers (the streams and long-polls of this process). */
  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Hands every later batch of events to `fn`, from a position at or after "now"; returns the
   * unsubscribe function. The first subscriber starts the reading, the last one stops it.
   */
  subscribe(fn: ChangeSubscriber): () => void {
    if (this.closed) throw new EngineError('UNAVAILABLE', 'The change feed is closed (the server is shutting down).', {});
    this.subscribers.add(fn);
    if (this.subscribers.size === 1) this.start();
    return () => {
      if (!this.subscribers.delete(fn)) return;
      if (this.subscribers.size === 0) this.stop();
    };
  }

  /**
   * Resolves once the feed knows where it reads from. A watch reads its catch-up only after this:
   * the feed then hands it everything committed after that read, so nothing falls in between.
   */
  whenStarted(): Promise<void> {
    return this.started?.promise ?? Promise.resolve();
  }

  /** Where a reader that starts now starts. */
  async head(): Promise<ChangePosition> {
    return before(await changeHorizon(this.store));
  }

  /** Settled events after a position (for a watch catching up). */
  page(after: ChangePosition, limit: number): Promise<ChangePage> {
    return changesAfter(this.store, after, limit);
  }

  /** A case's events after a seq (for a case watch). */
  caseChanges(caseId: string, afterSeq: number, limit: number): Promise<EventChange[]> {
    return caseChangesAfter(this.store, caseId, afterSeq, limit);
  }

  /** The current rows of the cases a batch touched, read once however many watches ask. */
  cases(batch: readonly FeedChange[]): Promise<ReadonlyMap<string, CaseListRow>> {
    let p = this.loads.get(batch);
    if (p === undefined) {
      p = casesByIds(this.store, [...new Set(batch.map((c) => c.caseId))]).then((rows) => new Map(rows.map((r) => [r.id, r])));
      this.loads.set(batch, p);
    }
    return p;
  }

  /**
   * Something was written in this process: read now (if anyone watches) and, with `listen`, tell
   * the other processes, at most once per `minGapMs` each.
   */
  poke(): void {
    if (this.closed) return;
    this.wake();
    this.announce();
  }

  /** Read soon: another process announced a change, or a watch wants one. */
  wake(): void {
    if (this.closed || this.subscribers.size === 0) return;
    if (this.polling !== undefined) {
      this.again = true;
      return;
    }
    this.schedule(Math.max(0, this.lastRead + this.minGapMs - Date.now()));
  }

  /** Stops reading and listening; waits for what is in flight. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscribers.clear();
    this.stop();
    clearTimeout(this.announceTimer);
    await Promise.allSettled([this.polling, this.connecting, this.announcing]);
    await this.listener?.close();
    this.listener = undefined;
  }

  private start(): void {
    if (this.closed) return;
    let resolve: () => void = () => {};
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.started = { promise, resolve };
    this.schedule(0);
    this.listen();
  }

  private stop(): void {
    this.generation++;
    this.position = undefined;
    this.started?.resolve();
    this.started = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.reconnect);
    this.reconnect = undefined;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.read();
    }, delayMs);
    // Reading alone should not keep the process alive.
    this.timer.unref();
  }

  private async read(): Promise<void> {
    if (this.closed || this.subscribers.size === 0) return;
    if (this.polling !== undefined) {
      // The read in flight started before this was asked for: read again as soon as it ends.
      this.again = true;
      return;
    }
    const generation = this.generation;
    this.again = false;
    this.blocked = false;
    this.lastRead = Date.now();
    this.polling = (async () => {
      try {
        if (this.position === undefined) {
          // The first read only finds where "now" is: subscribers catch up on their own from their positions.
          const head = await this.head();
          if (generation === this.generation) {
            this.position = head;
            this.started?.resolve();
          }
          return;
        }
        const page = await changesAfter(this.store, this.position, this.batch);
        if (generation !== this.generation) return;
        // Written but held back by an older transaction still running: look again shortly rather than at the next poll.
        if (page.waiting) this.blocked = true;
        const last = page.changes[page.changes.length - 1];
        if (last === undefined) return;
        this.position = last.position;
        if (page.changes.length === this.batch) this.again = true;
        for (const fn of [...this.subscribers]) {
          try {
            fn(page.changes);
          } catch (error) {
            this.logger.error({ err: error }, 'a change subscriber failed');
          }
        }
      } catch (error) {
        this.logger.warn({ err: error }, 'reading changes failed; trying again at the next poll');
      }
    })();
    await this.polling;
    this.polling = undefined;
    if (this.closed || this.subscribers.size === 0) return;
    this.schedule(this.again ? this.minGapMs : this.blocked ? Math.min(this.pollMs, Math.max(this.minGapMs, BLOCKED_RETRY_MS)) : this.pollMs);
  }

  private listen(): void {
    const url = this.options.listen?.databaseUrl;
    if (url === undefined || this.store.kind !== 'postgres' || this.listener !== undefined || this.connecting !== undefined || this.closed) return;
    this.connecting = (async () => {
      try {
        const listener = await listenForChanges({
          databaseUrl: url,
          schema: this.store.schema,
          onChange: () => this.wake(),
          onLost: (error) => {
            this.listener = undefined;
            this.logger.warn({ err: error }, 'the change listener connection was lost; polling until it is back');
            this.retryListen();
          },
        });
        if (this.closed) {
          await listener.close();
          return;
        }
        this.listener = listener;
        // Whatever was announced while not listening is read now.
        this.wake();
      } catch (error) {
        this.logger.warn({ err: error }, 'could not listen for changes; polling until it can');
        this.retryListen();
      } finally {
        this.connecting = undefined;
      }
    })();
  }

  private retryListen(): void {
    if (this.closed || this.reconnect !== undefined) return;
    this.reconnect = setTimeout(() => {
      this.reconnect = undefined;
      this.listen();
    }, this.retryMs);
    this.reconnect.unref();
  }

  private announce(): void {
    if (this.store.kind !== 'postgres' || this.options.listen === undefined) return;
    if (this.announcing !== undefined || this.announceTimer !== undefined) {
      this.announceAgain = true;
      return;
    }
    const wait = this.lastAnnounce + this.minGapMs - Date.now();
    if (wait > 0) {
      this.announceTimer = setTimeout(() => {
        this.announceTimer = undefined;
        this.announce();
      }, wait);
      this.announceTimer.unref();
      return;
    }
    this.announceAgain = false;
    this.lastAnnounce = Date.now();
    this.announcing = announceChanges(this.store).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not announce a change to the other processes; they see it at their next poll');
    }).finally(() => {
      this.announcing = undefined;
      if (this.announceAgain && !this.closed) this.announce();
    });
  }
}

// ---- watches --------------------------------------------------------------------------------------

/**
 * What one client is shown, queued until it takes it. Closing it unsubscribes from the feed.
 * @example const items = await watch.next(AbortSignal.timeout(30_000)); watch.close();
 */
export class Watch<T> {
  /** Settles once the watch has caught up from its starting position (or failed trying). */
  readonly ready: Promise<void>;
  private items: T[] = [];
  private waiting: (() => void) | undefined;
  private failure: { readonly error: unknown } | undefined;
  private done = false;
  private settle: () => void = () => {};

  constructor(private readonly onClose: () => void) {
    this.ready = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  get closed(): boolean {
    return this.done;
  }

  push(items: readonly T[]): void {
    if (this.done || items.length === 0) return;
    this.items.push(...items);
    this.signal();
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.failure = { error };
    this.settle();
    this.signal();
  }

  /** Marks the catch-up done (see {@link ready}). */
  caughtUp(): void {
    this.settle();
  }

  /** The items queued so far, without waiting; throws what the watch failed with. */
  take(): T[] {
    if (this.failure !== undefined) throw this.failure.error;
    const out = this.items;
    this.items = [];
    return out;
  }

  /**
   * The items queued so far, waiting until there is one; `[]` once `signal` aborts or the watch
   * closes. Throws what the watch failed with (its reads of the database).
   */
  async next(signal?: AbortSignal): Promise<T[]> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure.error;
      if (this.items.length > 0) {
        const out = this.items;
        this.items = [];
        return out;
      }
      if (this.done || signal?.aborted === true) return [];
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', wake);
          this.waiting = undefined;
          resolve();
        };
        this.waiting = wake;
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.onClose();
    this.settle();
    this.signal();
  }

  private signal(): void {
    this.waiting?.();
  }
}

/** Runs async steps one after another; a failing step fails the watch. */
function serially(watch: Watch<unknown>): (step: () => Promise<void>) => void {
  let chain: Promise<void> = Promise.resolve();
  return (step) => {
    chain = chain.then(() => (watch.closed ? undefined : step())).catch((error: unknown) => watch.fail(error));
  };
}

const CASE_PAGE = 200;

/**
 * Follows one case: every event after `afterSeq`, in order, each once. Starts from the log, then
 * follows the feed; a gap (a batch that starts past the next seq) is filled from the log.
 * @example
 * const watch = watchCase(feed, caseId, lastSeenSeq);
 * for (;;) for (const e of await watch.next(signal)) send(e);
 */
export function watchCase(feed: ChangeFeed, caseId: string, afterSeq: number): Watch<EventChange> {
  let last = afterSeq;
  const watch = new Watch<EventChange>(() => unsubscribe());
  const run = serially(watch);
  const take = (rows: readonly EventChange[]): void => {
    const fresh: EventChange[] = [];
    for (const r of rows) {
      if (r.seq !== last + 1) continue;
      fresh.push(r);
      last = r.seq;
    }
    watch.push(fresh);
  };
  const catchUp = async (): Promise<void> => {
    for (;;) {
      const rows = await feed.caseChanges(caseId, last, CASE_PAGE);
      take(rows);
      if (rows.length < CASE_PAGE || watch.closed) return;
    }
  };
  const unsubscribe = feed.subscribe((changes) => {
    const mine = changes.filter((c) => c.caseId === caseId);
    const newest = mine[mine.length - 1];
    if (newest === undefined) return;
    run(async () => {
      take(mine);
      // A gap (events this feed's page did not carry): read the rest from the log.
      if (newest.seq > last) await catchUp();
    });
  });
  run(() => feed.whenStarted());
  run(catchUp);
  run(async () => watch.caughtUp());
  return watch;
}

/** What the inbox stream says about one case that changed. */
export interface InboxChange {
  readonly caseId: string;
  /** The last event of the case the stream has read. */
  readonly seq: number;
  readonly type: string;
  readonly at: string;
  readonly workflow: string;
  readonly definitionVersion: number;
  /** The id of that version's stored definition. */
  readonly definitionId: string;
  readonly state: string;
  readonly stateLabel?: string;
  readonly status: 'active' | 'done' | 'suspended';
  readonly unit: string | null;
  readonly submitter: string | null;
  /** Events in the case's history now. */
  readonly version: number;
  readonly data: Readonly<Record<string, Value>>;
  readonly due: Readonly<Record<string, string>>;
  /** Whether the actor can act on the case now; `actions` says how. */
  readonly canAct: boolean;
  readonly actions: readonly AvailableAction[];
}

/** One message of an inbox watch. */
export type InboxMessage =
  | { readonly kind: 'change'; readonly position: ChangePosition; readonly change: InboxChange }
  /**
   * A case the actor may have held in their inbox has left their reach altogether (returned,
   * reassigned elsewhere): only its id, since they may no longer see it. Told when this watch
   * said they could act on it, or when they (or someone for their unit) made the change.
   */
  | { readonly kind: 'gone'; readonly position: ChangePosition; readonly caseId: string; readonly seq: number }
  /** Read up to here; nothing since concerns the actor. Resume from here. */
  | { readonly kind: 'seen'; readonly position: ChangePosition }
  /** Too far behind to replay: reload the inbox, then follow from here. */
  | { readonly kind: 'reset'; readonly position: ChangePosition };

/** What jurisdiction is judged on (the shape server/privacy.ts's `canSee` takes). */
export interface CaseReachInfo {
  readonly id: string;
  readonly unit: string | null;
  readonly submitter: string | null;
  readonly data: Readonly<Record<string, Value>>;
}

export interface InboxWatchOptions {
  /**
   * Of a changed case the actor cannot act on: whether to tell them so in full (their inbox may
   * hold it). Default: yes for every case. The server passes its jurisdiction rule, so nobody
   * hears of cases they may not see; a case this watch said they could act on and that is now out
   * of their reach is told as `gone`, by id alone.
   */
  readonly relevant?: (org: OrgView, c: CaseReachInfo) => boolean;
  /** Events a resumed watch reads to catch up before it gives up with a `reset` (default 5,000). */
  readonly maxCatchUp?: number;
}

const INBOX_PAGE = 500;

async function inboxChange(engine: Engine, actor: string, row: CaseListRow, last: EventChange, at: ActionContext): Promise<InboxChange> {
  const def = await engine.loadDefinition(row.definitionId);
  const snapshot = snapshotOf(row);
  const { context } = snapshot;
  const suspended = row.status === 'stopped';
  const actions = actionsFor(def.runtime, snapshot, suspended, actor, at);
  const label = def.runtime.definition.states[row.state]?.label;
  return {
    caseId: row.id, seq: last.seq, type: last.type, at: last.at,
    workflow: def.row.name, definitionVersion: def.row.version, definitionId: def.row.id, state: row.state,
    ...(label === undefined ? {} : { stateLabel: label }),
    status: suspended ? 'suspended' : snapshot.status, unit: context.unit, submitter: context.submitter, version: row.version,
    data: context.data, due: context.due, canAct: actions.length > 0, actions,
  };
}

/**
 * Follows an actor's inbox: for each case that changed after `after` (or after now, when null),
 * whether the actor can act on it now and with which actions. A case changed several times in
 * one batch is told once, as it is now. Each message carries the position to resume from.
 * @example
 * const watch = watchInbox(engine, feed, '卫健局书记钱', null, { relevant: (org, c) => canSee(org, principal, c) });
 * for (const m of await watch.next(signal)) if (m.kind === 'change') render(m.change);
 */
export function watchInbox(engine: Engine, feed: ChangeFeed, actor: string, after: ChangePosition | null, options: InboxWatchOptions = {}): Watch<InboxMessage> {
  const maxCatchUp = options.maxCatchUp ?? 5_000;
  let position: ChangePosition | undefined;
  /** Cases this watch has said the actor can act on, so it can say so when they no longer can. */
  const told = new Set<string>();
  const watch = new Watch<InboxMessage>(() => unsubscribe());
  const run = serially(watch);

  const process = async (batch: readonly FeedChange[], rows: ReadonlyMap<string, CaseListRow> | undefined): Promise<void> => {
    if (position === undefined) return;
    const from = position;
    const fresh = batch.filter((c) => comparePositions(c.position, from) > 0);
    const newest = fresh[fresh.length - 1];
    if (newest === undefined) return;
    // The last change of each case, in the order of those last changes.
    const lastOf = new Map<string, FeedChange>();
    for (const c of fresh) {
      lastOf.delete(c.caseId);
      lastOf.set(c.caseId, c);
    }
    const current = rows ?? await feed.cases(fresh);
    const at = await actionContext(engine);
    const held = new Set(at.org.rolesOf(actor).map((g) => g.unit));
    // Whether a change of this batch to the case was the actor's, or in a unit at or below one of theirs.
    const involved = (caseId: string): boolean => fresh.some((c) => c.caseId === caseId
      && (c.actor === actor || (c.unit !== null && lineage(at.org, c.unit).some((u) => held.has(u)))));
    const out: InboxMessage[] = [];
    for (const c of lastOf.values()) {
      const row = current.get(c.caseId);
      if (row === undefined) continue;
      const change = await inboxChange(engine, actor, row, c, at);
      const wasTold = told.delete(row.id);
      if (change.canAct) told.add(row.id);
      else if (options.relevant !== undefined && !options.relevant(at.org, { id: row.id, unit: change.unit, submitter: change.submitter, data: change.data })) {
        if (wasTold || involved(row.id)) out.push({ kind: 'gone', position: c.position, caseId: row.id, seq: c.seq });
        continue;
      }
      out.push({ kind: 'change', position: c.position, change });
    }
    position = newest.position;
    const lastOut = out[out.length - 1];
    // Unless the last message already stands at the newest change (the same change, so the same object).
    if (lastOut === undefined || lastOut.position !== newest.position) out.push({ kind: 'seen', position: newest.position });
    watch.push(out);
  };

  const unsubscribe = feed.subscribe((batch) => run(async () => process(batch, await feed.cases(batch))));
  run(async () => {
    await feed.whenStarted();
    if (after === null) {
      position = await feed.head();
      watch.push([{ kind: 'seen', position }]);
      return;
    }
    position = after;
    let read = 0;
    for (;;) {
      const page = await feed.page(position, INBOX_PAGE);
      await process(page.changes, undefined);
      read += page.changes.length;
      if (page.changes.length < INBOX_PAGE || watch.closed) return;
      if (read >= maxCatchUp) {
        position = await feed.head();
        watch.push([{ kind: 'reset', position }]);
        return;
      }
    }
  });
  run(async () => watch.caughtUp());
  return watch;
}
