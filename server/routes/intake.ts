/**
 * The 码上办 form: a resident with no account scans a community's QR code and places an order.
 * The route needs no token; it is limited per client address instead (tightly: it writes). The
 * case is started as a new resident actor (`居民:<uuid>`), recorded as its submitter, so the
 * workflow's `by submitter` clauses (the rating, a withdrawal) admit that resident; the answer
 * carries a case token for them: a JWT whose subject is that actor and whose `case` claim limits it
 * to reading this case and its history and sending it events.
 *
 * A phone on a weak connection sends the form again when the answer is lost. With an
 * `Idempotency-Key` (a random value the form page makes once per filled-in form) the resident's
 * actor id, and so the case id, are derived from the key: a retry gets the first answer (the same
 * case and a token for it) and opens no second case. Whoever holds the key can claim the case's
 * token, so the key must be unguessable: at least 22 characters (a UUID, or 16 random bytes in
 * base64), checked like any other field.
 *
 * Which workflows take the form: those whose start is `by anyone`. A resident without an account
 * holds no role, so a start by role could never admit them; a start by anyone says the policy
 * author meant residents to open cases.
 */
import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { EngineError } from '../../engine/errors.ts';
import { sha256Hex } from '../../engine/hash.ts';
import { DEFAULT_CASE_TOKEN_TTL_SECONDS, signCaseToken } from '../auth.ts';
import type { RouteContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { caseBody, CaseSchema, idempotencyHeaders, NameString, problemResponses } from '../schemas.ts';

/** 10 forms an hour from one address: a household's worth, not a script's. */
export const DEFAULT_INTAKE_RATE_LIMIT = { max: 10, timeWindowMs: 3_600_000 } as const;

/** The prefix of the actor ids of residents who came through the form. */
const INTAKE_ACTOR_PREFIX = '居民:';

/** The levels a form may be posted to: a community's QR code, or a grid's. */
const INTAKE_LEVELS: ReadonlySet<string> = new Set(['community', 'grid']);

/** What the intake plugin needs besides the common route context. */
export interface IntakeContext extends RouteContext {
  /** Signs the case tokens. */
  readonly jwtSecret: string;
  /** Forms per client address and window, or `false` for no limit. */
  readonly rateLimit: { readonly max: number; readonly timeWindowMs: number } | false;
  /** Default {@link DEFAULT_CASE_TOKEN_TTL_SECONDS}. */
  readonly caseTokenTtlSeconds?: number;
}

// No control characters in names (Postgres refuses a NUL in text); the data is checked by the
// engine's value validation, which refuses a NUL anywhere in it.

const IntakeParams = Type.Object({ workflow: NameString() });

const IntakeBody = Type.Object({
  orgUnit: NameString({ description: 'The community (or grid) whose QR code was scanned: the case\'s responsible unit.' }),
  data: Type.Record(Type.String(), Type.Unknown(), { description: 'The case data, checked against the workflow\'s case schema (for 五单服务: 社区, 姓名, 电话, 心愿, 类别).' }),
}, { additionalProperties: false });

const IntakeHeaders = idempotencyHeaders({
  minLength: 22,
  description: 'A random value made once per filled-in form (a UUID will do; at least 22 characters, as whoever holds it can claim the case): a retry with it gets the first answer, the same case and a token for it, and opens no second case.',
});

/**
 * The resident's actor id for a form sent with an idempotency key: the same for every retry of
 * that form (so the engine finds the first answer), unrelated to the key for anyone reading it.
 */
function residentOf(workflow: string, key: string): string {
  const h = sha256Hex(`intake\u0000${workflow}\u0000${key}`);
  return `${INTAKE_ACTOR_PREFIX}${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const IntakeAnswer = Type.Object({
  case: CaseSchema,
  actor: Type.String({ description: 'The resident\'s actor id, recorded as the case\'s submitter.' }),
  token: Type.String({ description: 'A bearer token for this case only: GET the case and its history, POST its events (e.g. the rating).' }),
  tokenExpiresAt: Type.String({ format: 'date-time' }),
}, { title: 'IntakeAnswer' });

/**
 * `POST /v1/intake/{workflow}`.
 * @example await app.register(intakeRoutes, { ...ctx, jwtSecret, rateLimit: DEFAULT_INTAKE_RATE_LIMIT });
 */
export const intakeRoutes: FastifyPluginAsyncTypebox<IntakeContext> = async (app, options) => {
  const { engine, metrics, jwtSecret } = options;
  const ttlSeconds = options.caseTokenTtlSeconds ?? DEFAULT_CASE_TOKEN_TTL_SECONDS;
  const limits = options.rateLimit;

  // A limiter of its own, keyed by address, whether or not the app limits other routes: the form
  // is public and writes. Registered here (encapsulated) only when the app has none to share.
  if (limits !== false && !app.hasDecorator('createRateLimit')) await app.register(rateLimit, { global: false });
  const check = limits === false ? undefined : app.createRateLimit({
    max: limits.max, timeWindow: limits.timeWindowMs, keyGenerator: (request: FastifyRequest) => `intake:${request.ip}`,
  });
  const perWindow = limits === false ? '' : `${limits.max} forms per ${Math.round(limits.timeWindowMs / 60_000)} minutes`;

  app.post('/v1/intake/:workflow', {
    config: { public: true },
    schema: {
      tags: ['cases'], summary: 'The 码上办 form: a resident without an account starts a case in a community',
      description: `No token needed; limited per client address (${perWindow || 'no limit'}; 429 RATE_LIMITED beyond). The workflow's start must be \`by anyone\` (403 INTAKE_NOT_OPEN otherwise). The data is checked as for any start (422 VALIDATION_FAILED naming the fields). The answer's \`token\` lets the resident read this one case and its history and send its resident events (e.g. 撤单, 评价), for ${Math.round(ttlSeconds / 86_400)} days. With an \`Idempotency-Key\` (at least 22 characters, made once per filled-in form), a retry gets the first answer (the same case, a token for it, or the same refusal) and opens no second case.`,
      security: [], params: IntakeParams, headers: IntakeHeaders, body: IntakeBody, response: { 201: IntakeAnswer, ...problemResponses },
    },
    // Before the body is parsed or checked: a flood of bad forms costs its sender the same.
    onRequest: async (request, reply) => {
      if (check === undefined) return;
      const r = await check(request);
      if (r.isAllowed || !r.isExceeded) return;
      reply.header('retry-after', String(r.ttlInSeconds));
      throw new ApiError('RATE_LIMITED', `More than ${r.max} intake forms from this address in the window; retry after ${r.ttlInSeconds} s.`, { limit: r.max, retryAfter: r.ttlInSeconds });
    },
  }, async (request, reply) => {
    const { workflow } = request.params;
    const { orgUnit, data } = request.body;
    const def = await engine.definition(workflow);
    const who = def.runtime.definition.start.who;
    if (!who.some((w) => w.kind === 'anyone')) {
      throw new ApiError('INTAKE_NOT_OPEN', `Workflow ${workflow} is started by ${who.map((w) => (w.kind === 'role' ? w.role : w.kind)).join(', ')}, not by anyone, so residents cannot start it through the form.`, {
        workflow, startBy: who.map((w) => (w.kind === 'role' ? w.role : w.kind)),
      });
    }
    const unit = (await engine.org()).unit(orgUnit);
    if (unit === undefined) throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${orgUnit}.`, { orgUnit });
    if (!INTAKE_LEVELS.has(unit.level)) {
      throw new EngineError('VALIDATION_FAILED', `${orgUnit} is a ${unit.level}; the form is posted to a community or a grid (the unit whose QR code was scanned).`, {
        fields: [{ path: 'orgUnit', code: 'reference', message: 'must be a community or a grid' }],
      });
    }
    const key = request.headers['idempotency-key'];
    const actor = key === undefined ? `${INTAKE_ACTOR_PREFIX}${randomUUID()}` : residentOf(workflow, key);
    // With a key, the newest version rather than the one just read: the version is part of what a
    // retry must repeat, and a retry after a deploy is still the same form.
    const view = await engine.startCase({ workflow, orgUnit, data, actor, ...(key === undefined ? { version: def.row.version } : { idempotencyKey: key }) });
    const { token, expiresAt } = await signCaseToken(jwtSecret, actor, view.id, { ttlSeconds });
    // No personal data on the log lines: the case id leads to it for those who may read it.
    if (engine.isReplayed(view)) request.log.info({ caseId: view.id, actor }, 'intake form answered again for its idempotency key');
    else {
      metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'start' });
      request.log.info({ caseId: view.id, workflow: view.workflow, state: view.state, actor }, 'case started through the intake form');
    }
    return reply.code(201).header('location', `/v1/cases/${encodeURIComponent(view.id)}`).send({
      // Unmasked: the caller is the submitter, reading back what they just sent.
      case: caseBody(view), actor, token, tokenExpiresAt: expiresAt,
    });
  });
};
