/**
 * The engine's operations beyond sending events: time travel, the auditor's checks (verify,
 * replay), version migration, suspend / resume / reassign / link, the caller's inbox and KPIs.
 *
 * Who may do what (the workflow's `by` clauses do not cover these):
 * - reading (state at a time, verify, replay, links): whoever may read the case, as for
 *   `GET /v1/cases/{id}` (404 for a case out of reach, server/privacy.ts); KPIs: any caller;
 *   verify and replay are POSTs because they compute, but change nothing;
 * - migrating: 政策员 only;
 * - suspend, resume, reassign, link: 管理员 or 政策员 anywhere, or anyone holding a role (other
 *   than 督查员, who changes nothing) in the case's responsible unit or a unit above it. For a
 *   reassignment the rule applies to the unit the case is in before the move.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import YAML from 'yaml';
import type { SourceLoader } from '../../dsl/check.ts';
import { inbox } from '../../engine/actions.ts';
import { linkCases, linksOf, migrateCases, reassignCase, resumeCase, suspendCase, type MigrationRefusalCode, type MigrationReport } from '../../engine/admin.ts';
import { replay, stateAt, verify } from '../../engine/audit.ts';
import type { CaseView, Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { kpis, parseKpiSpecs, type KpiGroup, type KpiSpec } from '../../engine/kpis.ts';
import { lineage } from '../../engine/org.ts';
import { caseHistory } from '../../engine/queries.ts';
import { holds, requireRole, SERVER_ROLES, type Principal } from '../auth.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { actionBody, AvailableActionSchema, caseBody, CaseSchema, JsonObject, NameString, Nullable, problemResponses } from '../schemas.ts';

// No control characters in ids and names, and no NUL anywhere: Postgres cannot store NUL, and a
// query with one fails in the driver (a 500) instead of finding nothing.
const Id = NameString();
const Name = NameString();
const CaseParams = Type.Object({ id: Id });
const Reason = Type.String({ minLength: 1, maxLength: 2000, pattern: '^[^\\u0000]+$', description: 'Why; recorded with the event.' });

const MultiProgress = Type.Object({
  state: Type.String(),
  items: Type.Array(Type.String()),
  done: Type.Record(Type.String(), Type.Object({ actor: Nullable(Type.String()), at: Type.String() })),
  missed: Type.Array(Type.String()),
});

// ---- schemas: time travel and audit -----------------------------------------------------------

const StateAtQuery = Type.Object({
  at: Type.String({ format: 'date-time', description: 'The instant to look at (ISO-8601 with an offset).' }),
}, { additionalProperties: false });

const CaseAtTimeSchema = Type.Object({
  caseId: Type.String(),
  at: Type.String({ format: 'date-time', description: 'The time asked about, in UTC.' }),
  seq: Type.Integer({ description: 'The last event recorded at or before `at`.' }),
  lastEvent: Type.Object({ type: Type.String(), recordedAt: Type.String({ format: 'date-time' }) }),
  definitionId: Type.String(),
  state: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('done')]),
  data: JsonObject,
  unit: Nullable(Type.String()),
  submitter: Nullable(Type.String()),
  due: Type.Record(Type.String(), Type.String()),
  multi: Nullable(MultiProgress),
}, { title: 'CaseAtTime' });

const VerifySchema = Type.Object({
  caseId: Type.String(),
  ok: Type.Boolean(),
  events: Nullable(Type.Integer({ description: 'Events checked (when ok).' })),
  headHash: Nullable(Type.String({ description: 'The hash of the last event (when ok).' })),
  firstBadSeq: Nullable(Type.Integer({ description: 'The first bad event (when not ok).' })),
  problem: Nullable(Type.Union([Type.Literal('altered'), Type.Literal('inserted'), Type.Literal('missing'), Type.Literal('head-mismatch')])),
  message: Nullable(Type.String()),
}, { title: 'VerifyResult' });

const ReplaySchema = Type.Object({
  caseId: Type.String(),
  ok: Type.Boolean(),
  events: Nullable(Type.Integer({ description: 'Events replayed (when ok).' })),
  definitionId: Nullable(Type.String({ description: 'The definition the case ends on (when ok).' })),
  state: Nullable(Type.String({ description: 'The replayed final state (when ok).' })),
  status: Nullable(Type.String()),
  firstBadSeq: Nullable(Type.Integer({ description: 'The first event whose stored result differs from the replayed one (when not ok).' })),
  expected: Type.Optional(Type.Unknown({ description: 'What is stored (when not ok).' })),
  got: Type.Optional(Type.Unknown({ description: 'What replay computed (when not ok).' })),
  message: Nullable(Type.String()),
}, { title: 'ReplayResult' });

// ---- schemas: migration -----------------------------------------------------------------------

const StateMapping = Type.Record(Type.String({ minLength: 1, maxLength: 200 }), Type.String({ minLength: 1, maxLength: 200 }), {
  description: 'Old state → new state, for states the target version does not have (others keep their name).',
});

const CaseMigrateBody = Type.Object({
  toVersion: Type.Integer({ minimum: 1 }),
  stateMapping: StateMapping,
  dryRun: Type.Optional(Type.Boolean({ description: 'Report what would happen and write nothing (default false).' })),
}, { additionalProperties: false });

const DefinitionMigrateBody = Type.Object({
  fromVersion: Type.Optional(Type.Integer({ minimum: 1, description: 'Only cases on this version.' })),
  state: Type.Optional(Name),
  toVersion: Type.Integer({ minimum: 1 }),
  stateMapping: StateMapping,
  dryRun: Type.Boolean({ description: 'true: report only. Required, so a bulk move is never started by omission.' }),
}, { additionalProperties: false });

const REFUSAL_CODES = ['not_found', 'already_on_target', 'closed', 'suspended', 'state_unmapped', 'state_missing', 'data_invalid', 'multi_step', 'moves_on'] as const satisfies readonly MigrationRefusalCode[];
const RefusalCode = Type.Unsafe<MigrationRefusalCode>({ type: 'string', enum: [...REFUSAL_CODES], description: 'Why a case stays where it is (stable).' });

const MigrationReportSchema = Type.Object({
  dryRun: Type.Boolean(),
  moved: Type.Array(Type.Object({ caseId: Type.String(), fromVersion: Type.Integer(), toVersion: Type.Integer(), fromState: Type.String(), toState: Type.String() })),
  refused: Type.Array(Type.Object({ caseId: Type.String(), code: RefusalCode, reason: Type.String() })),
}, { title: 'MigrationReport' });

function reportBody(r: MigrationReport, dryRun: boolean): Static<typeof MigrationReportSchema> {
  return { dryRun, moved: r.moved.map((m) => ({ ...m })), refused: r.refused.map((x) => ({ ...x })) };
}

// ---- schemas: suspend, resume, reassign, links --------------------------------------------------

const ReasonBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false });
const ReassignBody = Type.Object({ to: Name, reason: Reason }, { additionalProperties: false });
const LinkBody = Type.Object({
  linkedCaseId: Id,
  kind: Type.String({ minLength: 1, maxLength: 100, pattern: '^(?=.*\\S)[^\\u0000-\\u001f]+$', description: 'e.g. recurrence_of, related.' }),
}, { additionalProperties: false });

const LinkSchema = Type.Object({
  caseId: Type.String({ description: 'The case that refers.' }),
  linkedCaseId: Type.String({ description: 'The case referred to.' }),
  kind: Type.String(),
  createdAt: Type.String(),
  direction: Type.Union([Type.Literal('to'), Type.Literal('from')], { description: '`to`: the case asked about refers to `linkedCaseId`; `from`: `caseId` refers to it.' }),
}, { title: 'CaseLink' });

// ---- schemas: inbox and KPIs --------------------------------------------------------------------

const InboxQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: 'Default 20.' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: '`nextCursor` of the previous page.' })),
}, { additionalProperties: false });

const InboxItemSchema = Type.Object({
  caseId: Type.String(),
  workflow: Type.String(),
  definitionVersion: Type.Integer(),
  state: Type.String(),
  stateLabel: Type.Optional(Type.String()),
  unit: Nullable(Type.String()),
  submitter: Nullable(Type.String()),
  data: JsonObject,
  due: Type.Record(Type.String(), Type.String()),
  actions: Type.Array(AvailableActionSchema),
}, { title: 'InboxItem' });

const GROUP = '(unit|category|period)';
const KpiQuerySchema = Type.Object({
  workflow: Name,
  groupBy: Type.Optional(Type.String({ pattern: `^${GROUP}(,${GROUP}){0,2}$`, description: 'Comma-separated: unit, category, period (e.g. `unit,period`). Default: one row for everything.' })),
  unit: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only cases started in this unit or below.' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Cases started at or after.' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Cases started before.' })),
  period: Type.Optional(Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month')], { description: 'Period length when grouping by period (default month).' })),
}, { additionalProperties: false });

const Rate = Nullable(Type.Number({ minimum: 0, maximum: 1 }));
const KpiRowSchema = Type.Object({
  unit: Type.Optional(Type.String()),
  category: Type.Optional(Nullable(Type.String())),
  period: Type.Optional(Type.String({ description: 'The local date the period starts on, YYYY-MM-DD.' })),
  cases: Type.Integer(),
  responded: Type.Integer(),
  responseRate: Rate,
  resolved: Type.Integer(),
  onTime: Type.Integer(),
  onTimeRate: Rate,
  rated: Type.Integer(),
  satisfied: Type.Integer(),
  satisfactionRate: Rate,
  meanRatings: Type.Record(Type.String(), Nullable(Type.Number())),
  meanHandlingHours: Nullable(Type.Number()),
}, { title: 'KpiRow' });

// ---- helpers --------------------------------------------------------------------------------------

/**
 * The KPI specs of `kpis.yaml` in the workflows folder, read through the folder's loader once at
 * startup. A file that does not parse stops the server (a wrong figure is worse than none);
 * without a loader or a file there are no specs, and every workflow's KPIs are 404.
 * @example const specs = loadKpiSpecs(folderLoader('workflows')); specs['五单服务']?.response.events
 */
export function loadKpiSpecs(loader: SourceLoader | undefined, file = 'kpis.yaml'): Readonly<Record<string, KpiSpec>> {
  const found = loader?.(file, '');
  if (found === undefined) return {};
  return parseKpiSpecs(YAML.parse(found.source) as unknown);
}

/**
 * Allows a case operation (suspend, resume, reassign, link) or refuses with 403 naming who may;
 * returns the case (404 first, so an unknown case is not reported as a refusal) and the role the
 * caller acts in, recorded with the event.
 */
async function authorizeCaseChange(engine: Engine, p: Principal, caseId: string, what: string): Promise<{ readonly view: CaseView; readonly role: string }> {
  const view = await engine.getCase(caseId);
  if (holds(p, SERVER_ROLES.admin)) return { view, role: SERVER_ROLES.admin };
  if (holds(p, SERVER_ROLES.policy)) return { view, role: SERVER_ROLES.policy };
  const line = view.unit === null ? [] : lineage(await engine.org(), view.unit);
  const grant = p.roles.find((g) => g.role !== SERVER_ROLES.auditor && line.includes(g.unit));
  if (grant !== undefined) return { view, role: grant.role };
  throw new ApiError('NOT_ALLOWED', `${p.actor} may not ${what} case ${caseId}: it needs ${SERVER_ROLES.admin} or ${SERVER_ROLES.policy}, or a role in ${view.unit ?? 'the case\'s unit'} or a unit above it.`, {
    actor: p.actor, caseId,
    allowed: [{ role: SERVER_ROLES.admin, unit: null }, { role: SERVER_ROLES.policy, unit: null }, { role: null, unit: view.unit }],
  });
}

function withReason(reason: string | undefined): { reason?: string } {
  return reason === undefined ? {} : { reason };
}

/**
 * Time travel, audit checks, migration, case administration, the inbox and KPIs.
 * @example await app.register(operationRoutes, { engine, metrics, privacy: new PersonalData(engine), loader: folderLoader('workflows') });
 */
export const operationRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine, loader, privacy }) => {
  const kpiSpecs = loadKpiSpecs(loader);

  app.get('/v1/cases/:id/state', {
    schema: {
      tags: ['cases'], summary: 'The case as it stood at a past time (its log replayed up to then)',
      description: '400 BAD_REQUEST for a time that is not ISO-8601 date-time. 404 CASE_NOT_FOUND for an unknown case, and also for a time before the case began: then the problem says `notYetStarted: true` and gives `startedAt`. 409 HISTORY_NOT_REPLAYABLE when the stored log does not replay up to that time (it names `firstBadSeq`; verify and replay say more).',
      params: CaseParams, querystring: StateAtQuery, response: { 200: CaseAtTimeSchema, ...problemResponses },
    },
  }, async (request) => {
    const { id } = request.params;
    const view = await privacy.readableCase(request, id);
    const then = await stateAt(engine, id, request.query.at);
    if (then === null) {
      const first = (await caseHistory(engine, id, { limit: 1 })).events[0];
      throw new EngineError('CASE_NOT_FOUND', `Case ${id} did not exist yet at ${new Date(request.query.at).toISOString()}; it started at ${first?.at ?? 'a later time'}.`, {
        caseId: id, at: new Date(request.query.at).toISOString(), notYetStarted: true, startedAt: first?.at ?? null,
      });
    }
    const shown = await privacy.dataAsOf(request, view, then.data);
    return {
      caseId: then.caseId, at: then.at, seq: then.seq, lastEvent: { ...then.lastEvent }, definitionId: then.definitionId, state: then.state, status: then.status,
      data: shown.data, unit: then.unit, submitter: then.submitter, due: { ...then.due },
      multi: then.multi === null ? null : { state: then.multi.state, items: [...then.multi.items], done: { ...then.multi.done }, missed: [...then.multi.missed] },
    };
  });

  app.post('/v1/cases/:id/verify', {
    schema: {
      tags: ['cases'], summary: 'Check the case\'s hash chain; names the first bad event',
      description: 'For auditors and anyone who may read the case. Changes nothing. `ok: false` is a 200: the check ran and found a problem (`firstBadSeq`, `problem`, `message`).',
      params: CaseParams, response: { 200: VerifySchema, ...problemResponses },
    },
  }, async (request) => {
    const { id } = request.params;
    await privacy.readableCase(request, id);
    const r = await verify(engine, id);
    return r.ok
      ? { caseId: id, ok: true, events: r.events, headHash: r.headHash, firstBadSeq: null, problem: null, message: null }
      : { caseId: id, ok: false, events: null, headHash: null, firstBadSeq: r.firstBadSeq, problem: r.problem, message: r.message };
  });

  app.post('/v1/cases/:id/replay', {
    schema: {
      tags: ['cases'], summary: 'Re-run the case\'s log on its stored definitions and compare every stored state; names the first mismatch',
      description: 'For auditors and anyone who may read the case. Changes nothing. `ok: false` is a 200 with `firstBadSeq`, the stored (`expected`) and replayed (`got`) values.',
      params: CaseParams, response: { 200: ReplaySchema, ...problemResponses },
    },
  }, async (request) => {
    const { id } = request.params;
    const view = await privacy.readableCase(request, id);
    const r = await replay(engine, id);
    if (r.ok) return { caseId: id, ok: true, events: r.events, definitionId: r.definitionId, state: r.snapshot.state, status: r.snapshot.status, firstBadSeq: null, message: null };
    const [expected, got] = await privacy.forReplay(view, [r.expected, r.got]);
    return { caseId: id, ok: false, events: null, definitionId: null, state: null, status: null, firstBadSeq: r.firstBadSeq, expected, got, message: r.message };
  });

  app.post('/v1/cases/:id/migrate', {
    schema: {
      tags: ['cases'], summary: 'Move one case to another version of its workflow (政策员 only)',
      description: 'A dry run answers 200 with what would happen. A real run answers 200 with the move, or 422 MIGRATION_REFUSED with `refusal` (a stable reason code) when the case cannot move; nothing is written then.',
      params: CaseParams, body: CaseMigrateBody, response: { 200: MigrationReportSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    requireRole(p, SERVER_ROLES.policy, 'migrate cases');
    const { id } = request.params;
    const b = request.body;
    const view = await engine.getCase(id);
    const dryRun = b.dryRun === true;
    const report = await migrateCases(engine, { workflow: view.workflow, caseIds: [id] }, b.toVersion, b.stateMapping, { dryRun, actor: p.actor, role: SERVER_ROLES.policy });
    const refused = report.refused[0];
    if (!dryRun && refused !== undefined) {
      throw new EngineError('MIGRATION_REFUSED', refused.reason, { caseId: id, refusal: refused.code, toVersion: b.toVersion });
    }
    if (!dryRun) request.log.info({ caseId: id, toVersion: b.toVersion }, 'case migrated');
    return reportBody(report, dryRun);
  });

  app.post('/v1/definitions/:name/migrate', {
    schema: {
      tags: ['definitions'], summary: 'Move many cases of a workflow to another version (政策员 only)',
      description: 'Selects the open cases of the workflow (optionally of one version and in one state) and reports which move and which cannot, with a stable reason code each. `dryRun: true` writes nothing; run it first.',
      params: Type.Object({ name: Name }), body: DefinitionMigrateBody, response: { 200: MigrationReportSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    requireRole(p, SERVER_ROLES.policy, 'migrate cases');
    const b = request.body;
    const report = await migrateCases(engine, {
      workflow: request.params.name,
      ...(b.fromVersion === undefined ? {} : { fromVersion: b.fromVersion }),
      ...(b.state === undefined ? {} : { state: b.state }),
    }, b.toVersion, b.stateMapping, { dryRun: b.dryRun, actor: p.actor, role: SERVER_ROLES.policy });
    if (!b.dryRun) request.log.info({ workflow: request.params.name, toVersion: b.toVersion, moved: report.moved.length, refused: report.refused.length }, 'cases migrated');
    return reportBody(report, b.dryRun);
  });

  const WHO = 'Allowed to 管理员 or 政策员, or to anyone holding a role (other than 督查员) in the case\'s responsible unit or a unit above it; others get 403 NOT_ALLOWED.';

  app.post('/v1/cases/:id/suspend', {
    schema: {
      tags: ['cases'], summary: 'Suspend a case: it refuses events and its deadlines stop until resumed',
      description: `${WHO} 409 NOT_POSSIBLE if it is closed or already suspended.`,
      params: CaseParams, body: ReasonBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const { role } = await authorizeCaseChange(engine, p, request.params.id, 'suspend');
    const view = await suspendCase(engine, request.params.id, { actor: p.actor, role, ...withReason(request.body.reason) });
    return caseBody(view, undefined, await privacy.forWrite(request, view));
  });

  app.post('/v1/cases/:id/resume', {
    schema: {
      tags: ['cases'], summary: 'Resume a suspended case; its deadlines go on with the time they had left',
      description: `${WHO} 409 NOT_POSSIBLE if it is not suspended.`,
      params: CaseParams, body: ReasonBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const { role } = await authorizeCaseChange(engine, p, request.params.id, 'resume');
    const view = await resumeCase(engine, request.params.id, { actor: p.actor, role, ...withReason(request.body.reason) });
    return caseBody(view, undefined, await privacy.forWrite(request, view));
  });

  app.post('/v1/cases/:id/reassign', {
    schema: {
      tags: ['cases'], summary: 'Make another org unit responsible for a case (属地调整)',
      description: `${WHO} The rule is checked against the unit the case is in before the move. 404 ORG_UNIT_NOT_FOUND for an unknown unit; 409 NOT_POSSIBLE if the case is closed or already there.`,
      params: CaseParams, body: ReassignBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const { role } = await authorizeCaseChange(engine, p, request.params.id, 'reassign');
    const view = await reassignCase(engine, request.params.id, { actor: p.actor, role, to: request.body.to, reason: request.body.reason });
    return caseBody(view, undefined, await privacy.forWrite(request, view));
  });

  app.post('/v1/cases/:id/links', {
    schema: {
      tags: ['cases'], summary: 'Link this case to another (e.g. a recurrence to the closed case it recurs from)',
      description: `${WHO} Linking again is a no-op. 404 CASE_NOT_FOUND for an unknown linked case; 409 NOT_POSSIBLE for a link to itself.`,
      params: CaseParams, body: LinkBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const { role } = await authorizeCaseChange(engine, p, request.params.id, 'link');
    const view = await linkCases(engine, request.params.id, request.body.linkedCaseId, request.body.kind, { actor: p.actor, role });
    return caseBody(view, undefined, await privacy.forWrite(request, view));
  });

  app.get('/v1/cases/:id/links', {
    schema: {
      tags: ['cases'], summary: 'Every link of a case, both directions, oldest first',
      params: CaseParams, response: { 200: Type.Object({ caseId: Type.String(), items: Type.Array(LinkSchema) }), ...problemResponses },
    },
  }, async (request) => {
    await privacy.readableCase(request, request.params.id);
    const links = await linksOf(engine, request.params.id);
    return { caseId: request.params.id, items: links.map((l) => ({ ...l })) };
  });

  app.get('/v1/inbox', {
    schema: {
      tags: ['cases'], summary: 'Cases where the caller can act now, oldest first, with the actions',
      description: 'A page may hold fewer than `limit` items while `nextCursor` is not null (the scan is bounded per request); ask again with the cursor. 422 VALIDATION_FAILED for a cursor this inbox did not hand out.',
      querystring: InboxQuery,
      response: { 200: Type.Object({ items: Type.Array(InboxItemSchema), nextCursor: Nullable(Type.String()) }), ...problemResponses },
    },
  }, async (request) => {
    const { actor } = principalOf(request);
    const q = request.query;
    const page = await inbox(engine, actor, {
      ...(q.limit === undefined ? {} : { limit: q.limit }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
    });
    // A list: residents' names and phone numbers masked for everyone (read the case for them).
    const items = await Promise.all(page.items.map(async (i) => ({
      caseId: i.caseId, workflow: i.workflow, definitionVersion: i.definitionVersion, state: i.state,
      ...(i.stateLabel === undefined ? {} : { stateLabel: i.stateLabel }),
      unit: i.unit, submitter: i.submitter, data: (await privacy.forList(i.definitionId, i.data)).data, due: { ...i.due }, actions: i.actions.map(actionBody),
    })));
    return { nextCursor: page.nextCursor, items };
  });

  app.get('/v1/kpis', {
    schema: {
      tags: ['cases'], summary: 'KPIs of a workflow (响应率, 按期办结率, 满意率…), grouped as asked',
      description: `Figures as workflows/kpis.yaml defines them per workflow (specs for: ${Object.keys(kpiSpecs).join(', ') || 'none'}). 404 DEFINITION_NOT_FOUND with \`kpiSpec: false\` for a workflow without a spec; 404 ORG_UNIT_NOT_FOUND for an unknown unit.`,
      querystring: KpiQuerySchema, response: { 200: Type.Object({ workflow: Type.String(), items: Type.Array(KpiRowSchema) }), ...problemResponses },
    },
  }, async (request) => {
    const q = request.query;
    const spec = kpiSpecs[q.workflow];
    if (spec === undefined) {
      throw new EngineError('DEFINITION_NOT_FOUND', `No KPI spec for workflow ${q.workflow}; KPIs are defined for ${Object.keys(kpiSpecs).join(', ') || 'no workflow'}.`, {
        workflow: q.workflow, kpiSpec: false, available: Object.keys(kpiSpecs),
      });
    }
    const groupBy = q.groupBy === undefined ? [] : [...new Set(q.groupBy.split(','))] as KpiGroup[];
    const rows = await kpis(engine, {
      spec, groupBy,
      ...(q.unit === undefined ? {} : { unit: q.unit }),
      ...(q.from === undefined ? {} : { from: q.from }),
      ...(q.to === undefined ? {} : { to: q.to }),
      ...(q.period === undefined ? {} : { period: q.period }),
    });
    return { workflow: q.workflow, items: rows.map((r) => ({ ...r, meanRatings: { ...r.meanRatings } })) };
  });
};
