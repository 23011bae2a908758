/**
 * The 码上办 form: a resident with no account scans a community's QR code and places an order.
 * The route needs no token; it is limited per client address instead (tightly: it writes). The
 * case is started as a new resident actor (`居民:<uuid>`), recorded as its submitter, so the
 * workflow's `by submitter` clauses (the rating, a withdrawal) admit that resident; the answer
 * carries a case token for them: a JWT whose subject is that actor and whose `case` claim limits it
 * to reading this case and its history and sending it events.
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
import { DEFAULT_CASE_TOKEN_TTL_SECONDS, signCaseToken } from '../auth.ts';
import type { RouteContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { caseBody, CaseSchema, NameString, problemResponses } from '../schemas.ts';

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
      description: `No token needed; limited per client address (${perWindow || 'no limit'}; 429 RATE_LIMITED beyond). The workflow's start must be \`by anyone\` (403 INTAKE_NOT_OPEN otherwise). The data is checked as for any start (422 VALIDATION_FAILED naming the fields). The answer's \`token\` lets the resident read this one case and its history and send its resident events (e.g. 撤单, 评价), for ${Math.round(ttlSeconds / 86_400)} days.`,
      security: [], params: IntakeParams, body: IntakeBody, response: { 201: IntakeAnswer, ...problemResponses },
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
    const actor = `${INTAKE_ACTOR_PREFIX}${randomUUID()}`;
    const view = await engine.startCase({ workflow, version: def.row.version, orgUnit, data, actor });
    const { token, expiresAt } = await signCaseToken(jwtSecret, actor, view.id, { ttlSeconds });
    metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'start' });
    // No personal data on the log line: the case id leads to it for those who may read it.
    request.log.info({ caseId: view.id, workflow: view.workflow, state: view.state, actor }, 'case started through the intake form');
    return reply.code(201).header('location', `/v1/cases/${encodeURIComponent(view.id)}`).send({
      // Unmasked: the caller is the submitter, reading back what they just sent.
      case: caseBody(view), actor, token, tokenExpiresAt: expiresAt,
    });
  });
};
