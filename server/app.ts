/**
 * The HTTP API as a Fastify instance: schema-first routes (TypeBox), bearer-JWT auth with roles
 * from the database, errors as RFC 9457 problem bodies with codes from the one error table,
 * Prometheus metrics, an OpenAPI 3.1 document and a page to browse it. `buildApp` does not
 * listen; `server/main.ts` does, and tests use `inject` or `listen({ port: 0 })`.
 */
import { randomUUID } from 'node:crypto';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { registerAjvFormats, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import type { SourceLoader } from '../dsl/check.ts';
import type { Engine } from '../engine/engine.ts';
import { bearer, MIN_SECRET_LENGTH, verifyToken } from './auth.ts';
import type { RouteContext } from './context.ts';
import { ApiError, isCoded, problem, type ApiErrorCode, type Problem } from './errors.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { caseRoutes } from './routes/cases.ts';
import { definitionRoutes } from './routes/definitions.ts';
import { healthRoutes } from './routes/health.ts';
import { operationRoutes } from './routes/operations.ts';
import { orgRoutes } from './routes/org.ts';

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
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** POST routes that change nothing (a read-only caller may use them). */
/** POSTs that change nothing, so read-only roles (auditors) may use them. */
const READ_ONLY_POSTS = new Set(['/v1/definitions/check', '/v1/cases/:id/verify', '/v1/cases/:id/replay']);

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
  const metrics: Metrics = createMetrics({ processMetrics: options.processMetrics === true });
  let closing = false;
  const readOnly = new Set(options.readOnlyRoles ?? []);

  const app: App = Fastify({
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    bodyLimit,
    trustProxy: options.trustProxy === true,
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    // We answer with our own problem body while closing (see onRequest below).
    return503OnClosing: false,
    routerOptions: { maxParamLength: 500 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Bodies are JSON: text/plain would reach the schema as a string and fail confusingly; refuse it as 415.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null);

  app.setErrorHandler((err, request, reply) => {
    const c = classify(err, bodyLimit);
    const body = problem(c.code, c.detail, c.details, request.url, request.id);
    if (body.status >= 500) request.log.error({ err, code: c.code }, 'request failed');
    else request.log.info({ code: c.code, detail: c.detail }, 'request refused');
    const headers: Record<string, string> = {};
    if (c.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="closed-loop"';
    return sendProblem(reply, body, headers);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, problem('ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0] ?? ''}.`, {}, request.url, request.id)));

  // The docs page's routes are added by a plugin; mark them public as they are declared.
  app.addHook('onRoute', (route) => {
    if (route.url === '/docs' || route.url.startsWith('/docs/')) route.config = { ...(route.config ?? {}), public: true };
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) throw new ApiError('UNAVAILABLE', 'The server is shutting down; retry on another instance or shortly.');
    // Unmatched routes fall through to the 404 handler without asking for a token.
    if (request.routeOptions.url === undefined || request.routeOptions.config.public === true) return;
    const token = bearer(request.headers.authorization);
    if (token === undefined) throw new ApiError('UNAUTHORIZED', request.headers.authorization === undefined ? 'No Authorization header.' : 'The Authorization header is not `Bearer <token>`.');
    const { actor } = await verifyToken(jwtSecret, token);
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

  app.addHook('preClose', async () => {
    closing = true;
  });

  await app.register(helmet, {
    // The API answers JSON; the docs page sets its own policy (staticCSP below).
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
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

  const ctx: RouteContext = { engine, metrics, ...(options.loader === undefined ? {} : { loader: options.loader }) };
  await app.register(healthRoutes, ctx);
  await app.register(definitionRoutes, ctx);
  await app.register(caseRoutes, ctx);
  await app.register(orgRoutes, ctx);
  await app.register(operationRoutes, ctx);

  app.get('/openapi.json', { schema: { hide: true }, config: { public: true, rateLimit: false } }, async () => app.swagger());

  await app.ready();
  return app;
}
