/**
 * Cases: start one, read it with what the caller may do now, send an event as the caller, read
 * its history, and list the ledger (台账). Who may send what is decided by the workflow's `by`
 * clauses in the engine; refusals come back as its 403 / 409 / 422 problems. Who may read which
 * case, and who sees residents' names and phone numbers unmasked, is server/privacy.ts's to say.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actionsInState } from '../../engine/actions.ts';
import { decodeCursor, encodeCursor, PAGE_CURSOR_HINT } from '../../engine/cursor.ts';
import { caseHistory, listCases } from '../../engine/queries.ts';
import { personalDataReadPage } from '../../engine/store/personal-data.ts';
import { requireRole, SERVER_ROLES } from '../auth.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { seesEverything } from '../privacy.ts';
import { caseBody, CaseSchema, IdempotencyHeaders, JsonObject, NameString, Nullable, problemResponses } from '../schemas.ts';

// Ids and names hold no control characters: Postgres refuses a NUL in text (a 500 before these
// patterns), and the others only ever come from a mistake. Free-form case data and payloads are
// checked by the engine's value validation (dsl/values.ts), which refuses a NUL anywhere in them.
const Name = (description?: string) => NameString(description === undefined ? {} : { description });
const Cursor = NameString({ maxLength: 500, description: '`nextCursor` of the previous page.' });
const Id = Name();
const CaseParams = Type.Object({ id: Id });

const StartBody = Type.Object({
  workflow: Name(),
  version: Type.Optional(Type.Integer({ minimum: 1, description: 'Default: the newest version.' })),
  orgUnit: Name('The responsible org unit (属地).'),
  data: JsonObject,
  onBehalfOf: Type.Optional(Name('The resident the caller acts for (代办).')),
}, { additionalProperties: false });

const EventBody = Type.Object({
  // Timer events (xstate.after.…) are fired by the engine's poller, never sent by a person.
  type: Type.String({ minLength: 1, maxLength: 200, pattern: '^(?!xstate\\.)[^\\u0000-\\u001f]+$', description: 'The event, e.g. 派单.' }),
  payload: Type.Optional(JsonObject),
  instance: Type.Optional(Nullable(Name('Multi-unit step: the unit the caller acts for.'))),
  onBehalfOf: Type.Optional(Name('The resident the caller acts for (代办).')),
}, { additionalProperties: false });

const HistoryEntry = Type.Object({
  seq: Type.Integer(),
  type: Type.String(),
  actor: Nullable(Type.String()),
  onBehalfOf: Nullable(Type.String()),
  role: Nullable(Type.String()),
  orgUnit: Nullable(Type.String()),
  at: Type.String({ format: 'date-time' }),
  payload: Type.Unknown(),
  state: Type.String({ description: 'The state after this event.' }),
  status: Type.String(),
  contextHash: Nullable(Type.String()),
  trace: Type.Array(Type.Unknown(), { description: 'The guards and rule rows that decided the step.' }),
  effects: Type.Array(Type.Unknown()),
  facts: Type.Unknown({ description: 'What was resolved before the step (roles, org facts, deadlines).' }),
  prevHash: Nullable(Type.String()),
  hash: Type.String(),
});

const HistoryQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Events after this seq (default 0).' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Default 100.' })),
}, { additionalProperties: false });

const Status = Type.Union([Type.Literal('active'), Type.Literal('done'), Type.Literal('suspended'), Type.Literal('error'), Type.Literal('archived')]);

const ListQuery = Type.Object({
  workflow: Type.Optional(Name()),
  state: Type.Optional(Name()),
  orgUnit: Type.Optional(Name('This unit and every unit below it.')),
  status: Type.Optional(Status),
  createdFrom: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after.' })),
  createdTo: Type.Optional(Type.String({ format: 'date-time', description: 'Created before.' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Default 50.' })),
  cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

const CaseSummary = Type.Object({
  id: Type.String(),
  workflow: Type.String(),
  definitionId: Type.String(),
  definitionVersion: Type.Integer(),
  state: Type.String(),
  status: Status,
  unit: Type.String({ description: 'The responsible org unit.' }),
  submitter: Nullable(Type.String()),
  version: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

const ReadsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Default 100.' })),
  cursor: Type.Optional(Cursor),
}, { additionalProperties: false });

const PersonalDataReadSchema = Type.Object({
  at: Type.String({ format: 'date-time' }),
  actor: Type.String(),
  reason: Type.String({ description: 'Why they may: contact (a role that calls residents, in the case\'s unit or above) or handler (named on the case).' }),
  fields: Type.Array(Type.String(), { description: 'The fields shown unmasked.' }),
  route: Type.String({ description: 'Method and route template, e.g. GET /v1/cases/:id.' }),
  requestId: Nullable(Type.String()),
}, { title: 'PersonalDataRead' });

function decodeReadsCursor(cursor: string): { at: string; readId: string } {
  return decodeCursor(cursor, { who: 'this log', field: 'cursor', hint: PAGE_CURSOR_HINT }, (v) =>
    v.length === 2 && typeof v[0] === 'string' && Number.isFinite(Date.parse(v[0])) && typeof v[1] === 'string' ? { at: v[0], readId: v[1] } : undefined);
}

/**
 * Start, read, send events to, list and read the history of cases.
 * @example await app.register(caseRoutes, { engine, metrics, privacy: new PersonalData(engine) });
 */
export const caseRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine, metrics, privacy }) => {
  app.post('/v1/cases', {
    schema: {
      tags: ['cases'], summary: 'Start a case as the caller',
      description: 'With an Idempotency-Key, a retry returns the first answer (the same case, or the same refusal).',
      headers: IdempotencyHeaders, body: StartBody, response: { 201: CaseSchema, ...problemResponses },
    },
  }, async (request, reply) => {
    const { actor } = principalOf(request);
    const b = request.body;
    const key = request.headers['idempotency-key'];
    const view = await engine.startCase({
      workflow: b.workflow, orgUnit: b.orgUnit, data: b.data, actor,
      ...(b.version === undefined ? {} : { version: b.version }),
      ...(b.onBehalfOf === undefined ? {} : { onBehalfOf: b.onBehalfOf }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    });
    if (engine.isReplayed(view)) request.log.info({ caseId: view.id }, 'start answered again for its idempotency key');
    else {
      metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'start' });
      request.log.info({ caseId: view.id, workflow: view.workflow, state: view.state }, 'case started');
    }
    return reply.code(201).header('location', `/v1/cases/${encodeURIComponent(view.id)}`).send(caseBody(view, undefined, await privacy.forWrite(request, view)));
  });

  app.get('/v1/cases/:id', {
    schema: {
      tags: ['cases'], summary: 'A case: state, data, version, and what the caller may send now (allowedActions, each with its payload form as JSON Schema)',
      description: '404 CASE_NOT_FOUND also for a case outside the caller\'s jurisdiction. Residents\' names and phone numbers in `data` are masked (listed in `masked`) unless the caller must call the resident (the submitter, 社区书记 / 代办员 / 网格员 of the case\'s unit or above, the person the case names as its handler); such an unmasked read is logged.',
      params: CaseParams, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const { actor } = principalOf(request);
    // One read for the access check, the view and the actions.
    const cs = await engine.caseState(request.params.id);
    await privacy.requireVisible(request, cs.view);
    return caseBody(cs.view, await actionsInState(engine, cs, actor), await privacy.forRead(request, cs.view));
  });

  app.post('/v1/cases/:id/events', {
    schema: {
      tags: ['cases'], summary: 'Send an event to a case as the caller',
      description: '403 NOT_ALLOWED names who may send it; 409 NOT_POSSIBLE names the state the case is in and what it accepts; 422 VALIDATION_FAILED names the payload fields. With an Idempotency-Key, a retry returns the first answer.',
      params: CaseParams, headers: IdempotencyHeaders, body: EventBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const { actor, caseScope } = principalOf(request);
    const b = request.body;
    if (caseScope !== undefined && b.onBehalfOf !== undefined) {
      throw new ApiError('NOT_ALLOWED', 'A case token acts only as its own resident; it cannot act on behalf of someone else.', { actor, caseScope, allowed: [] });
    }
    const key = request.headers['idempotency-key'];
    const view = await engine.sendEvent(request.params.id, {
      type: b.type, payload: b.payload ?? {}, actor,
      ...(b.instance === undefined ? {} : { instance: b.instance }),
      ...(b.onBehalfOf === undefined ? {} : { onBehalfOf: b.onBehalfOf }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    });
    if (engine.isReplayed(view)) request.log.info({ caseId: view.id, event: b.type }, 'event answered again for its idempotency key');
    else {
      metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'event' });
      request.log.info({ caseId: view.id, event: b.type, state: view.state, version: view.version }, 'event applied');
    }
    return caseBody(view, undefined, await privacy.forWrite(request, view));
  });

  app.get('/v1/cases/:id/history', {
    schema: {
      tags: ['cases'], summary: 'Every event of a case: who, in which role, when, the resulting state, the decision trace and the hash chain',
      description: '404 CASE_NOT_FOUND also for a case outside the caller\'s jurisdiction. Residents\' names and phone numbers in payloads are masked as in `GET /v1/cases/{id}`.',
      params: CaseParams, querystring: HistoryQuery,
      response: { 200: Type.Object({ caseId: Type.String(), events: Type.Array(HistoryEntry), nextAfter: Nullable(Type.Integer()) }), ...problemResponses },
    },
  }, async (request) => {
    const q = request.query;
    const view = await privacy.readableCase(request, request.params.id);
    const page = await caseHistory(engine, view.id, {
      ...(q.after === undefined ? {} : { after: q.after }),
      ...(q.limit === undefined ? {} : { limit: q.limit }),
    });
    const events = await privacy.history(request, view, page.events.map((e) => ({ ...e, trace: [...e.trace], effects: [...e.effects] as unknown[] })));
    return { caseId: page.caseId, nextAfter: page.nextAfter, events };
  });

  app.get('/v1/cases', {
    schema: {
      tags: ['cases'], summary: 'The case ledger (台账), newest first, with filters and cursor paging',
      description: 'Only cases the caller may see: in or below a unit where they hold a role, submitted by them, or naming them or such a unit in their data (督查员, 政策员 and 管理员 see all). Case data is left out of lists (it holds residents\' personal data); read one case for it.',
      querystring: ListQuery,
      response: { 200: Type.Object({ items: Type.Array(CaseSummary), nextCursor: Nullable(Type.String()) }), ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const q = request.query;
    const page = await listCases(engine, {
      ...(seesEverything(p) ? {} : { visibleTo: p.actor }),
      ...(q.workflow === undefined ? {} : { workflow: q.workflow }),
      ...(q.state === undefined ? {} : { state: q.state }),
      ...(q.orgUnit === undefined ? {} : { orgUnit: q.orgUnit }),
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.createdFrom === undefined ? {} : { createdFrom: q.createdFrom }),
      ...(q.createdTo === undefined ? {} : { createdTo: q.createdTo }),
      ...(q.limit === undefined ? {} : { limit: q.limit }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
    });
    return { items: page.items.map((c) => ({ ...c })), nextCursor: page.nextCursor };
  });

  app.get('/v1/cases/:id/personal-data-reads', {
    schema: {
      tags: ['cases'], summary: 'Who read this case\'s personal data unmasked, when, which fields, through which route (督查员)',
      description: 'Oldest first, cursor paging. Reading your own submission is not recorded. 403 NOT_ALLOWED without the 督查员 role.',
      params: CaseParams, querystring: ReadsQuery,
      response: { 200: Type.Object({ caseId: Type.String(), items: Type.Array(PersonalDataReadSchema), nextCursor: Nullable(Type.String()) }), ...problemResponses },
    },
  }, async (request) => {
    requireRole(principalOf(request), SERVER_ROLES.auditor, 'read the personal-data read log');
    const view = await engine.getCase(request.params.id);
    const limit = request.query.limit ?? 100;
    const rows = await personalDataReadPage(engine.store, view.id, request.query.cursor === undefined ? null : decodeReadsCursor(request.query.cursor), limit + 1);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      caseId: view.id,
      items: page.map((r) => ({ at: r.at, actor: r.actor, reason: r.reason, fields: [...r.fields], route: r.route, requestId: r.requestId })),
      nextCursor: rows.length > limit && last !== undefined ? encodeCursor([last.at, last.readId]) : null,
    };
  });
};
