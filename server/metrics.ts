/**
 * Prometheus metrics of one app instance, in a registry of its own so several apps in one
 * process (tests) never share counters. Route labels are route templates (`/v1/cases/:id`), never
 * raw URLs, so the number of series stays bounded.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Events written through the API (starts included), counted when the engine answered 2xx. */
  readonly eventsApplied: Counter<'workflow' | 'kind'>;
}

/**
 * Creates the registry and the HTTP metrics; `processMetrics` adds Node's default process
 * metrics (CPU, memory, event-loop lag), which only make sense once per process.
 * @example const m = createMetrics({ processMetrics: true }); m.httpRequests.inc({ method: 'GET', route: '/healthz', status: '200' });
 */
export function createMetrics(options: { readonly processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });
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
  };
}
