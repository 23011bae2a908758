/**
 * The HTTP API as a Fastify instance: schema-first routes (TypeBox), bearer-JWT auth with roles
 * from the database, errors as RFC 9457 problem bodies with codes from the one error table,
 * Prometheus metrics, an OpenAPI 3.1 document and a page to browse it. `buildApp` does not
 * listen; `server/main.ts` does, and tests use `inject` or `listen({ port: 0 })`.
 */
import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { registerAjvFormats, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import type { SourceLoader } from '../dsl/check.ts';
import { ChangeFeed } from '../engine/changes.ts';
import type { Engine, EngineOptions } from '../engine/engine.ts';
import { assertCaseScope, bearer, MIN_SECRET_LENGTH, TokenVerifier } from './auth.ts';
import type { RouteContext } from './context.ts';
import { ApiError, isCoded, problem, type ApiErrorCode, type Problem } from './errors.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { caseRoutes } from './routes/cases.ts';
import { definitionRoutes } from './routes/definitions.ts';
import { healthRoutes } from './routes/health.ts';
import { DEFAULT_INTAKE_RATE_LIMIT, intakeRoutes } from './routes/intake.ts';
import { operationRoutes } from './routes/operations.ts';
import { orgRoutes } from './routes/org.ts';
import { streamRoutes, type StreamOptions } from './routes/streams.ts';
import { PersonalData } from './privacy.ts';
import { validatorCompiler } from './validator.ts';

/**
 * The engine options the service runs with (server/main.ts, and bench:http to measure the same).
 * One write slot: a request's event reaches the batcher only once its step starts, so with the
 * engine's default of two slots the second one sent smaller batches (5.5 events against 7.5) and
 * the service ran slower (bench:http, runs alternated: 3,670–4,060 against 3,900–4,370
 * events/s). Called directly, with all its events' steps in view, the engine is faster
 * with two.
 */
export const SERVICE_ENGINE_OPTIONS = { batchesInFlight: 1 } as const satisfies Partial<EngineOptions>;

/** The app's Fastify instance type, with TypeBox inference on its routes. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface AppOptions {
  readonly engine: Engine;
  /** HS256 secret for bearer tokens; at least 32 characters. */
  readonly jwtSecret: string;
  /** A pino logger (request lines carry `reqId`); without one the app logs nothing. */
  readonly logger?: FastifyBaseLogger;
  /** Largest request body in bytes (default 1 MiB: a large workflow source fits). */
  readonly bodyLimit?: number;
  /** Requests per actor (or per client address before authentication) and window; `false` turns limiting off. Default 1,200 a minute. */
  readonly rateLimit?: { readonly max: number; readonly timeWindowMs: number } | false;
  /** Reads files that deployed sources `import` (e.g. shared rule tables under workflows/). */
  readonly loader?: SourceLoader;
  /** Also export Node's process metrics (CPU, memory, event loop); once per process. */
  readonly processMetrics?: boolean;
  /** Trust X-Forwarded-* from a proxy in front (for client addresses in logs and rate limits). */
  readonly trustProxy?: boolean;
  /**
   * Roles that may only read: a caller holding nothing but these is refused (403 NOT_ALLOWED) on
   * every request that could change something. Default none, because the seed workflows give
   * 督查员 steps of its own (五步闭环 核查, 吹哨报到 督办); see README, "Roles".
   */
  readonly readOnlyRoles?: readonly string[];
  /**
   * Forms per client address and window on the 码上办 intake route (`POST /v1/intake/{workflow}`,
   * which needs no token). Default 10 an hour; `false` turns it off. When `rateLimit` is `false`
   * and this is not given, it is off too.
   */
  readonly intakeRateLimit?: { readonly max: number; readonly timeWindowMs: number } | false;
  /** How long the case token the intake form returns lives (default 30 days: long enough to rate the case). */
  readonly caseTokenTtlSeconds?: number;
  /** Roles that see residents' names and phone numbers in cases of their units (default 社区书记, 代办员, 网格员). */
  readonly contactRoles?: readonly string[];
  /** Live updates (server-sent events, long-polls): the process's change feed, heartbeat and ticket life; see server/routes/streams.ts. */
  readonly streams?: StreamOptions;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest path segment the router matches; a longer one is 414 URI_TOO_LONG (no id or name exceeds 200). */
const MAX_PARAM_LENGTH = 500;

/**
 * Security headers on every answer, problems included: the set helmet's defaults give, with a
 * Content-Security-Policy for an API that only answers JSON (the docs page sets its own, see
 * `staticCSP` below). They never vary, so they are written once here rather than worked out by
 * middleware on each request; tests/server/security-headers.test.ts pins them.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
});
/** Credentials a URL may carry (a stream ticket, or a token someone put there by mistake): never logged. */
const URL_SECRETS = /([?&](?:ticket|access_token|token)=)[^&#]*/gi;

/** The request as its log lines show it: Fastify's usual fields, with secrets in the query string blanked. */
function requestForLog(req: FastifyRequest): Record<string, unknown> {
  return { method: req.method, url: req.url.replace(URL_SECRETS, '$1[redacted]'), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** POST routes that change nothing (a read-only caller may use them). */
/** POSTs that change nothing, so read-only roles (auditors) may use them. */
const READ_ONLY_POSTS = new Set(['/v1/definitions/check', '/v1/cases/:id/verify', '/v1/cases/:id/replay', '/v1/stream-tickets']);

// TypeBox checks string formats (date-time, uri…) only once they are registered.
registerAjvFormats();

/** Fastify's own errors that are the client's fault, with the code the API gives them. */
const FASTIFY_CODES: Readonly<Record<string, ApiErrorCode>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_TYPE: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
};

/** A database that cannot be reached (connection refused, dropped, shutting down) is a 503, not a bug. */
function isUnavailable(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (/^(08|57P)/.test(code) || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'STORE_CONNECT_FAILED')) return true;
  const msg = e instanceof Error ? e.message : '';
  return /Connection terminated|Cannot use a pool after calling end|PGlite is closed|driver has already been destroyed/i.test(msg);
}

interface SchemaError {
  readonly in: string;
  readonly path: string;
  readonly message: string;
  readonly keyword: string | null;
}

/**
 * The schema validator's errors as the problem body lists them. An unknown field is reported
 * once, at its own path ("is not a known field"), instead of the validator's pair of a
 * `schema is false` at the field and a `must not have additional properties` at its parent.
 */
function validationErrors(where: string, raw: readonly { instancePath?: string; message?: string; keyword?: string; params?: unknown }[]): SchemaError[] {
  const out: SchemaError[] = [];
  const seen = new Set<string>();
  const push = (e: SchemaError): void => {
    const k = `${e.path}\u0000${e.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(e);
    }
  };
  for (const v of raw) {
    const path = v.instancePath === undefined || v.instancePath === '' ? '/' : v.instancePath;
    if (v.keyword === 'additionalProperties') {
      const names = (v.params as { additionalProperties?: unknown } | undefined)?.additionalProperties;
      for (const n of Array.isArray(names) ? names : []) push({ in: where, path: `${path === '/' ? '' : path}/${String(n)}`, message: 'is not a known field', keyword: 'additionalProperties' });
      continue;
    }
    if (v.keyword === 'required') {
      const p = v.params as { requiredProperties?: unknown; missingProperty?: unknown } | undefined;
      const names = Array.isArray(p?.requiredProperties) ? p.requiredProperties : p?.missingProperty === undefined ? [] : [p.missingProperty];
      for (const n of names) push({ in: where, path: `${path === '/' ? '' : path}/${String(n)}`, message: 'is required', keyword: 'required' });
      if (names.length > 0) continue;
    }
    if (v.keyword === 'boolean' && v.message === 'schema is false') {
      push({ in: where, path, message: 'is not a known field', keyword: 'additionalProperties' });
      continue;
    }
    push({ in: where, path, message: v.message ?? 'is invalid', keyword: v.keyword ?? null });
  }
  return out;
}

interface Classified {
  readonly code: ApiErrorCode;
  readonly detail: string;
  readonly details: Readonly<Record<string, unknown>>;
}

function classify(err: unknown, bodyLimit: number): Classified {
  if (isCoded(err)) return { code: err.code, detail: err.message, details: err.details };
  const fe = err as Partial<FastifyError> & { validation?: readonly { instancePath?: string; message?: string; keyword?: string; params?: unknown }[]; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const errors = validationErrors(fe.validationContext ?? 'body', fe.validation);
    return {
      code: 'BAD_REQUEST',
      detail: errors.map((e) => `${e.in}${e.path === '/' ? '' : e.path}: ${e.message}`).join('; ') || (fe.message ?? 'The request does not match the schema.'),
      details: { errors },
    };
  }
  const mapped = typeof fe.code === 'string' ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped === 'PAYLOAD_TOO_LARGE') return { code: mapped, detail: `The body is larger than ${bodyLimit} bytes.`, details: { limit: bodyLimit } };
  if (mapped === 'UNSUPPORTED_MEDIA_TYPE') return { code: mapped, detail: 'This route takes a JSON body (Content-Type: application/json).', details: {} };
  if (mapped === 'URI_TOO_LONG') return { code: mapped, detail: `A path segment is longer than ${MAX_PARAM_LENGTH} characters; ids and names are at most 200.`, details: { limit: MAX_PARAM_LENGTH } };
  if (fe.code === 'FST_ERR_BAD_URL') return { code: 'BAD_REQUEST', detail: 'The path is not valid percent-encoding (RFC 3986 §2.1); encode each segment with encodeURIComponent.', details: {} };
  if (mapped !== undefined) return { code: mapped, detail: fe.message ?? '', details: {} };
  if (isUnavailable(err)) return { code: 'UNAVAILABLE', detail: 'The database cannot be reached.', details: {} };
  // Other 4xx errors from Fastify or a plugin: the client's fault, but no code of ours fits better.
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return { code: 'BAD_REQUEST', detail: fe.message ?? 'Bad request.', details: {} };
  return { code: 'INTERNAL', detail: 'An unexpected error occurred.', details: {} };
}

function sendProblem(reply: FastifyReply, body: Problem, headers: Readonly<Record<string, string>> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.code(body.status).type('application/problem+json').send(body);
}

/**
 * Builds the API. Routes need a bearer token unless marked public (health, readiness, metrics,
 * the OpenAPI document and its page).
 * @example
 * const app = await buildApp({ engine, jwtSecret: process.env.JWT_SECRET!, logger: pino() });
 * await app.listen({ port: 3000, host: '127.0.0.1' });
 */
export async function buildApp(options: AppOptions): Promise<App> {
  const { engine, jwtSecret } = options;
  if (jwtSecret.length < MIN_SECRET_LENGTH) throw new Error(`jwtSecret must be at least ${MIN_SECRET_LENGTH} characters.`);
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const metrics: Metrics = createMetrics({ processMetrics: options.processMetrics === true, engine });
  let closing = false;
  const readOnly = new Set(options.readOnlyRoles ?? []);
  const tokens = new TokenVerifier(jwtSecret);

  const refuse = (err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const c = classify(err, bodyLimit);
    const body = problem(c.code, c.detail, c.details, request.url, request.id);
    if (body.status >= 500) request.log.error({ err, code: c.code }, 'request failed');
    else request.log.info({ code: c.code, detail: c.detail }, 'request refused');
    const headers: Record<string, string> = {};
    if (c.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="closed-loop"';
    return sendProblem(reply, body, headers);
  };

  const app: App = Fastify({
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger.child({}, { serializers: { req: requestForLog } }) }),
    bodyLimit,
    trustProxy: options.trustProxy === true,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    // We answer with our own problem body while closing (see onRequest below).
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // The router refuses a path with broken percent-encoding or an over-long segment before any
    // hook runs; answer those as every other refusal, with the headers the hooks would have set.
    frameworkErrors: (err, request, reply) => {
      void refuse(err, request, reply.headers(SECURITY_HEADERS).header('x-request-id', request.id));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // Bodies are JSON: text/plain would reach the schema as a string and fail confusingly; refuse it as 415.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null);
  app.decorate('metrics', metrics);

  app.setErrorHandler((err, request, reply) => refuse(err, request, reply));
  app.setNotFoundHandler((request, reply) => sendProblem(reply, problem('ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0] ?? ''}.`, {}, request.url, request.id)));

  // The docs page's routes are added by a plugin; mark them public as they are declared.
  app.addHook('onRoute', (route) => {
    if (route.url === '/docs' || route.url.startsWith('/docs/')) route.config = { ...(route.config ?? {}), public: true };
  });

  app.addHook('onRequest', async (request, reply) => {
    // First, so that refusals below carry them too.
    reply.headers(SECURITY_HEADERS).header('x-request-id', request.id);
    if (closing) throw new ApiError('UNAVAILABLE', 'The server is shutting down; retry on another instance or shortly.');
    // Unmatched routes fall through to the 404 handler without asking for a token.
    if (request.routeOptions.url === undefined || request.routeOptions.config.public === true) return;
    // A stream may be opened with a ticket in its URL instead (server/routes/streams.ts checks it).
    if (request.routeOptions.config.streamTicket === true && request.headers.authorization === undefined) return;
    const token = bearer(request.headers.authorization);
    if (token === undefined) throw new ApiError('UNAUTHORIZED', request.headers.authorization === undefined ? 'No Authorization header.' : 'The Authorization header is not `Bearer <token>`.');
    const { actor, caseScope } = tokens.cached(token) ?? await tokens.verify(token);
    if (caseScope !== undefined) {
      // A case token (码上办) carries no roles: it follows its one case as that case's resident.
      request.principal = { actor, roles: [], caseScope };
      request.log = request.log.child({ actor, caseScope });
      assertCaseScope(request.principal, request.method, request.routeOptions.url, request.params);
      return;
    }
    const org = await engine.org();
    const roles = org.rolesOf(actor);
    request.principal = { actor, roles };
    request.log = request.log.child({ actor });
    if (readOnly.size > 0 && roles.length > 0 && roles.every((g) => readOnly.has(g.role)) && !SAFE_METHODS.has(request.method) && !READ_ONLY_POSTS.has(request.routeOptions.url)) {
      throw new ApiError('NOT_ALLOWED', `${actor} holds only read-only roles (${[...new Set(roles.map((g) => g.role))].join(', ')}) and may change nothing.`, { actor, readOnly: true, allowed: [] });
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  // Live updates: every event the engine commits (through a request, a timer or a case operation)
  // wakes this process's streams at once and, when the feed listens (server/main.ts on Postgres),
  // is announced to the other server processes.
  const changes = options.streams?.changes ?? new ChangeFeed(engine.store, options.streams?.pollMs === undefined ? {} : { pollMs: options.streams.pollMs });
  const stopPoking = engine.onCommitted(() => changes.poke());
  app.addHook('onClose', async () => {
    stopPoking();
    if (options.streams?.changes === undefined) await changes.close();
  });

  app.addHook('preClose', async () => {
    closing = true;
  });
  // A request in flight when the close began is answered in full, and its connection is not kept
  // for another: the close would otherwise wait out the keep-alive timeout after the answer.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  if (options.rateLimit !== false) {
    const rl = options.rateLimit ?? { max: 1_200, timeWindowMs: 60_000 };
    await app.register(rateLimit, {
      global: true,
      max: rl.max,
      timeWindow: rl.timeWindowMs,
      // After authentication, so the limit is per actor rather than per address behind a shared NAT.
      hook: 'preValidation',
      keyGenerator: (request) => (request.principal === null ? `ip:${request.ip}` : `actor:${request.principal.actor}`),
      errorResponseBuilder: (_request, ctx) => new ApiError('RATE_LIMITED', `More than ${ctx.max} requests in the window; retry after ${ctx.after}.`, { limit: ctx.max, retryAfter: ctx.after }),
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Closed-loop workflow engine',
        version: '0.1.0',
        description: 'Start cases, send events as a person, read history. Errors are application/problem+json with a stable `code` (see docs/errors.md). Authenticate with `Authorization: Bearer <JWT>`; `wf token --actor ID` prints one for local use.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'cases', description: 'Start cases, send events, read state and history' },
        { name: 'definitions', description: 'Check, deploy and read workflow definitions' },
        { name: 'org', description: 'Org units, people and their roles' },
        { name: 'ops', description: 'Health, readiness, metrics' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { docExpansion: 'list', deepLinking: true } });

  const privacy = new PersonalData(engine, options.contactRoles === undefined ? {} : { contactRoles: options.contactRoles });
  const ctx: RouteContext = { engine, metrics, privacy, ...(options.loader === undefined ? {} : { loader: options.loader }) };
  await app.register(healthRoutes, ctx);
  await app.register(definitionRoutes, ctx);
  await app.register(caseRoutes, ctx);
  await app.register(orgRoutes, ctx);
  await app.register(operationRoutes, ctx);
  await app.register(intakeRoutes, {
    ...ctx, jwtSecret,
    rateLimit: options.intakeRateLimit ?? (options.rateLimit === false ? false : DEFAULT_INTAKE_RATE_LIMIT),
    ...(options.caseTokenTtlSeconds === undefined ? {} : { caseTokenTtlSeconds: options.caseTokenTtlSeconds }),
  });

  await app.register(streamRoutes, { ...ctx, ...options.streams, jwtSecret, changes });

  app.get('/openapi.json', { schema: { hide: true }, config: { public: true, rateLimit: false } }, async () => app.swagger());

  await app.ready();
  return app;
}
