/**
 * Durable timers: a poller claims due timers from the database and fires each through the same
 * path as any event (`Engine.fireTimer`), as the system actor.
 *
 * Exactly once, across nodes and restarts: a claim (`FOR UPDATE SKIP LOCKED`, then `claimed` by
 * this node until a lease runs out) is committed before the timer fires, and the event statement
 * applies only while this node still holds the claim and marks the timer fired in the same
 * statement. A node that dies holding claims leaves them to lapse; any node claims them again
 * after the lease. A node that stalls past its lease loses the claim and its late write is
 * refused. See docs/engine.md, "Timers".
 */
import type { Engine, EngineLogger } from './engine.ts';
import { EngineError } from './errors.ts';
import { claimDueTimers, holdsTimer, releaseTimer, type ClaimedTimer } from './store/timers.ts';

/** What the poller needs of an engine (an `Engine` is one). */
export type TimerEngine = Pick<Engine, 'store' | 'nodeId' | 'now' | 'fireTimer'>;

export interface RunTimersOptions {
  /** Timers claimed per statement (default 100). */
  readonly limit?: number;
  /** How long a claim holds before another node may take the timer (default 60 s). A failed timer is retried after it. */
  readonly leaseMs?: number;
  /**
   * Claims after which a timer that keeps failing is given up: cancelled, with an error logged
   * (default 10). It counts claims, so a timer whose firing crashes its node every time is given
   * up too.
   */
  readonly maxAttempts?: number;
  /** At most this many claim-and-fire rounds per run (default 50), so one run always ends. */
  readonly maxRounds?: number;
  /** Where failures go; without one, warnings and errors go to the console. */
  readonly logger?: EngineLogger;
}

/** What happened to one claimed timer. */
type Outcome = 'fired' | 'stale' | 'lost' | 'failed' | 'given-up';

const consoleLogger: EngineLogger = {
  info: () => {},
  warn: (obj, msg) => console.warn(msg ?? '', obj),
  error: (obj, msg) => console.error(msg ?? '', obj),
};

function timerFacts(t: ClaimedTimer): Record<string, unknown> {
  return { caseId: t.caseId, timerId: t.timerId, eventType: t.eventType, dueAt: t.dueAt, attempts: t.attempts };
}

async function fireOne(engine: TimerEngine, t: ClaimedTimer, maxAttempts: number, logger: EngineLogger): Promise<Outcome> {
  const nodeId = engine.nodeId;
  if (t.attempts > maxAttempts) {
    // Its earlier holders never reported back (they died firing it): do not try again.
    const released = await releaseTimer(engine.store, t, nodeId);
    if (released) logger.error({ timer: timerFacts(t) }, `timer claimed ${t.attempts - 1} times without firing; given up (cancelled)`);
    return released ? 'given-up' : 'lost';
  }
  try {
    if (await engine.fireTimer(t.caseId, t.timerId, t.eventType, nodeId)) return 'fired';
    // The case left the timer's state without cancelling it (or the claim was lost, and then this changes nothing).
    await releaseTimer(engine.store, t, nodeId);
    logger.info({ timer: timerFacts(t) }, 'timer no longer applies; cancelled');
    return 'stale';
  } catch (error) {
    try {
      if (error instanceof EngineError && error.code === 'CASE_NOT_FOUND') {
        await releaseTimer(engine.store, t, nodeId);
        logger.warn({ timer: timerFacts(t) }, 'timer of a case that does not exist; cancelled');
        return 'stale';
      }
      // Not a failure of the timer: the lease ran out and another node has it (or has fired it).
      if (!(await holdsTimer(engine.store, t, nodeId))) {
        logger.info({ timer: timerFacts(t) }, 'timer claim lost to another node');
        return 'lost';
      }
      if (t.attempts >= maxAttempts) {
        await releaseTimer(engine.store, t, nodeId);
        logger.error({ err: error, timer: timerFacts(t) }, `timer failed ${t.attempts} times; given up (cancelled)`);
        return 'given-up';
      }
    } catch (inner) {
      // The database is unreachable too: leave the claim to lapse and be retried.
      logger.error({ err: inner, cause: error, timer: timerFacts(t) }, 'timer failed and its claim could not be checked; retried after its lease');
      return 'failed';
    }
    logger.error({ err: error, timer: timerFacts(t) }, 'timer failed; retried after its lease');
    return 'failed';
  }
}

/**
 * Fires every timer due by the engine's clock: claims a batch, fires each (a case's timers in
 * due order), and claims again until none is due or `maxRounds` is reached. A timer that throws
 * is logged and stays claimed until its lease runs out, then is retried; the others go on.
 * Returns how many timers fired.
 *
 * @example
 * ```ts
 * const engine = new Engine({ store, clock: { now: () => t } });
 * t = Date.parse('2026-03-03T09:00:00+08:00');
 * const fired = await runDueTimers(engine, { limit: 50 });
 * ```
 */
export async function runDueTimers(engine: TimerEngine, options: RunTimersOptions = {}): Promise<number> {
  const limit = options.limit ?? 100;
  const leaseMs = options.leaseMs ?? 60_000;
  const maxAttempts = options.maxAttempts ?? 10;
  const maxRounds = options.maxRounds ?? 50;
  const logger = options.logger ?? consoleLogger;
  let fired = 0;
  for (let round = 0; round < maxRounds; round++) {
    const claimed = await claimDueTimers(engine.store, { now: engine.now(), nodeId: engine.nodeId, limit, leaseMs });
    if (claimed.length === 0) break;
    // All at once: the engine keeps each case's writes in call order (claims come sorted by due
    // time, so a reminder precedes its deadline) and writes different cases in shared statements.
    const outcomes = await Promise.all(claimed.map((t) => fireOne(engine, t, maxAttempts, logger).catch((error: unknown): Outcome => {
      // Only the bookkeeping around a firing gets here (the database went away): retried after the lease.
      logger.error({ err: error, timer: timerFacts(t) }, 'timer failed; retried after its lease');
      return 'failed';
    })));
    fired += outcomes.filter((o) => o === 'fired').length;
    // Failed timers stay claimed until their lease runs out, so the next round claims others.
  }
  return fired;
}

/**
 * Runs {@link runDueTimers} every `intervalMs` in the background, one run at a time, for the
 * server. A failed run (say, the database is unreachable) is logged and the next one goes ahead.
 *
 * @example
 * ```ts
 * const poller = new TimerPoller(engine, { logger });
 * poller.start(1_000);
 * // on shutdown:
 * await poller.stop();
 * ```
 */
export class TimerPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private readonly logger: EngineLogger;

  constructor(private readonly engine: TimerEngine, private readonly options: RunTimersOptions = {}) {
    this.logger = options.logger ?? consoleLogger;
  }

  /** Starts polling now and then every `intervalMs` after each run ends. Calling it again changes nothing. */
  start(intervalMs: number): void {
    if (!(intervalMs > 0)) throw new RangeError(`TimerPoller.start: intervalMs must be > 0, got ${intervalMs}.`);
    if (!this.stopped) return;
    this.stopped = false;
    const tick = (): void => {
      this.timer = undefined;
      if (this.stopped) return;
      this.running = this.poll().then(() => {
        this.running = undefined;
        // Runs never overlap: the next is timed from the end of this one.
        if (!this.stopped) {
          this.timer = setTimeout(tick, intervalMs);
          // A poller alone should not keep the process alive.
          this.timer.unref();
        }
      });
    };
    tick();
  }

  /** Stops polling and waits for a run in flight to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One run now; never rejects. Resolves to the number fired (0 if the run failed). */
  async poll(): Promise<number> {
    try {
      return await runDueTimers(this.engine, this.options);
    } catch (error) {
      this.logger.error({ err: error }, 'timer poll failed; trying again at the next interval');
      return 0;
    }
  }
}
