/**
 * Prometheus metrics of one app instance, in a registry of its own so several apps in one
 * process (tests) never share counters. Route labels are route templates (`/v1/cases/:id`), never
 * raw URLs, so the number of series stays bounded. The backlog gauges (timers due, outbox pending
 * and lag) are read from the database when scraped, in one statement over partial indexes, so
 * they cost nothing between scrapes and show every process's work alike.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine } from '../engine/engine.ts';
import { readBacklog, type Backlog } from '../engine/store/backlog.ts';
import { TimerPoller, type RunTimersOptions, type TimerEngine } from '../engine/timers.ts';

export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Events written through the API (starts included), counted when the engine answered 2xx. */
  readonly eventsApplied: Counter<'workflow' | 'kind'>;
  /** Timers this process's poller fired (see {@link MeteredTimerPoller}). */
  readonly timersFired: Counter;
  /** Live-update connections open now: SSE streams, and long-polls waiting. */
  readonly streamsOpen: Gauge<'kind'>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's metrics, for what runs beside it (the timer poller counts its firings here). */
    metrics: Metrics;
  }
}

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop); once per process. */
  readonly processMetrics?: boolean;
  /** Where the backlog gauges read timers and the outbox at scrape time; without it they are not exported. */
  readonly engine?: Pick<Engine, 'store' | 'now'>;
}

/**
 * Creates the registry and the metrics; `processMetrics` adds Node's default process metrics
 * (CPU, memory, event-loop lag), which only make sense once per process.
 * @example const m = createMetrics({ processMetrics: true, engine });
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });
  const engine = options.engine;
  if (engine !== undefined) backlogGauges(registry, () => readBacklog(engine.store, engine.now()));
  return {
    registry,
    httpRequests: new Counter({
      name: 'wf_http_requests_total', help: 'HTTP requests answered, by method, route template and status.',
      labelNames: ['method', 'route', 'status'] as const, registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'wf_http_request_duration_seconds', help: 'Time from receiving a request to sending its answer, by method, route template and status.',
      labelNames: ['method', 'route', 'status'] as const, registers: [registry],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    }),
    eventsApplied: new Counter({
      name: 'wf_events_applied_total', help: 'Case events written through the API (kind=start for new cases, event for the rest), by workflow.',
      labelNames: ['workflow', 'kind'] as const, registers: [registry],
    }),
    timersFired: new Counter({
      name: 'wf_timers_fired_total', help: 'Timers (deadlines, reminders) this process fired; sum over processes for the total.',
      registers: [registry],
    }),
    streamsOpen: new Gauge({
      name: 'wf_streams_open', help: 'Live-update connections open now, by kind (case or inbox stream, long-poll).',
      labelNames: ['kind'] as const, registers: [registry],
    }),
  };
}

/** The backlog gauges, all filled by one read per scrape however many of them are collected. */
function backlogGauges(registry: Registry, read: () => Promise<Backlog>): void {
  let reading: Promise<Backlog | undefined> | undefined;
  // A failed read leaves the last values; /readyz is where an unreachable database shows.
  const once = (): Promise<Backlog | undefined> => (reading ??= read().catch(() => undefined).finally(() => {
    reading = undefined;
  }));
  const gauge = (name: string, help: string, pick: (b: Backlog) => number): void => {
    new Gauge({
      name, help, registers: [registry],
      async collect() {
        const b = await once();
        if (b !== undefined) this.set(pick(b));
      },
    });
  };
  gauge('wf_timers_due', 'Timers due by now and not yet claimed by a poller (all processes).', (b) => b.timersDue);
  gauge('wf_timers_claimed', 'Timers claimed by a poller and not yet fired (all processes).', (b) => b.timersClaimed);
  gauge('wf_outbox_pending', 'Outbox effects not yet delivered (waiting or retrying).', (b) => b.outboxPending);
  gauge('wf_outbox_lag_seconds', 'Age of the oldest undelivered outbox effect, in seconds (0 when none waits).', (b) => b.outboxLagSeconds);
  gauge('wf_outbox_dead', 'Outbox effects that gave up (the dead-letter list).', (b) => b.outboxDead);
}

/**
 * A timer poller that counts the timers it fires in `wf_timers_fired_total`, and calls `onFired`
 * after a run that fired some.
 * @example const poller = new MeteredTimerPoller(engine, app.metrics, { logger }); poller.start(1_000);
 */
export class MeteredTimerPoller extends TimerPoller {
  constructor(engine: TimerEngine, private readonly metrics: Pick<Metrics, 'timersFired'>, options: RunTimersOptions = {}, private readonly onFired?: (fired: number) => void) {
    super(engine, options);
  }

  override async poll(): Promise<number> {
    const fired = await super.poll();
    if (fired > 0) {
      this.metrics.timersFired.inc(fired);
      this.onFired?.(fired);
    }
    return fired;
  }
}
