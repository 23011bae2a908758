/**
 * Cases: start one, read it with what the caller may do now, send an event as the caller, read
 * its history, and list the ledger (台账). Who may send what is decided by the workflow's `by`
 * clauses in the engine; refusals come back as its 403 / 409 / 422 problems.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { availableActions } from '../../engine/actions.ts';
import { caseHistory, listCases } from '../../engine/queries.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { caseBody, CaseSchema, IdempotencyHeaders, JsonObject, Nullable, problemResponses } from '../schemas.ts';

const Id = Type.String({ minLength: 1, maxLength: 200 });
const CaseParams = Type.Object({ id: Id });

const StartBody = Type.Object({
  workflow: Type.String({ minLength: 1, maxLength: 200 }),
  version: Type.Optional(Type.Integer({ minimum: 1, description: 'Default: the newest version.' })),
  orgUnit: Type.String({ minLength: 1, maxLength: 200, description: 'The responsible org unit (属地).' }),
  data: JsonObject,
  onBehalfOf: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The resident the caller acts for (代办).' })),
}, { additionalProperties: false });

const EventBody = Type.Object({
  // Timer events (xstate.after.…) are fired by the engine's poller, never sent by a person.
  type: Type.String({ minLength: 1, maxLength: 200, pattern: '^(?!xstate\\.)', description: 'The event, e.g. 派单.' }),
  payload: Type.Optional(JsonObject),
  instance: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200, description: 'Multi-unit step: the unit the caller acts for.' }))),
  onBehalfOf: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The resident the caller acts for (代办).' })),
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
  workflow: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  state: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  orgUnit: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'This unit and every unit below it.' })),
  status: Type.Optional(Status),
  createdFrom: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after.' })),
  createdTo: Type.Optional(Type.String({ format: 'date-time', description: 'Created before.' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'Default 50.' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: '`nextCursor` of the previous page.' })),
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

/**
 * Start, read, send events to, list and read the history of cases.
 * @example await app.register(caseRoutes, { engine, metrics });
 */
export const caseRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine, metrics }) => {
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
    metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'start' });
    request.log.info({ caseId: view.id, workflow: view.workflow, state: view.state }, 'case started');
    return reply.code(201).header('location', `/v1/cases/${encodeURIComponent(view.id)}`).send(caseBody(view));
  });

  app.get('/v1/cases/:id', {
    schema: {
      tags: ['cases'], summary: 'A case: state, data, version, and what the caller may send now (allowedActions, each with its payload form as JSON Schema)',
      params: CaseParams, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const { actor } = principalOf(request);
    const view = await engine.getCase(request.params.id);
    return caseBody(view, await availableActions(engine, view.id, actor));
  });

  app.post('/v1/cases/:id/events', {
    schema: {
      tags: ['cases'], summary: 'Send an event to a case as the caller',
      description: '403 NOT_ALLOWED names who may send it; 409 NOT_POSSIBLE names the state the case is in and what it accepts; 422 VALIDATION_FAILED names the payload fields. With an Idempotency-Key, a retry returns the first answer.',
      params: CaseParams, headers: IdempotencyHeaders, body: EventBody, response: { 200: CaseSchema, ...problemResponses },
    },
  }, async (request) => {
    const { actor } = principalOf(request);
    const b = request.body;
    const key = request.headers['idempotency-key'];
    const view = await engine.sendEvent(request.params.id, {
      type: b.type, payload: b.payload ?? {}, actor,
      ...(b.instance === undefined ? {} : { instance: b.instance }),
      ...(b.onBehalfOf === undefined ? {} : { onBehalfOf: b.onBehalfOf }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    });
    metrics.eventsApplied.inc({ workflow: view.workflow, kind: 'event' });
    request.log.info({ caseId: view.id, event: b.type, state: view.state, version: view.version }, 'event applied');
    return caseBody(view);
  });

  app.get('/v1/cases/:id/history', {
    schema: {
      tags: ['cases'], summary: 'Every event of a case: who, in which role, when, the resulting state, the decision trace and the hash chain',
      params: CaseParams, querystring: HistoryQuery,
      response: { 200: Type.Object({ caseId: Type.String(), events: Type.Array(HistoryEntry), nextAfter: Nullable(Type.Integer()) }), ...problemResponses },
    },
  }, async (request) => {
    const q = request.query;
    const page = await caseHistory(engine, request.params.id, {
      ...(q.after === undefined ? {} : { after: q.after }),
      ...(q.limit === undefined ? {} : { limit: q.limit }),
    });
    return { caseId: page.caseId, nextAfter: page.nextAfter, events: page.events.map((e) => ({ ...e, trace: [...e.trace], effects: [...e.effects] })) };
  });

  app.get('/v1/cases', {
    schema: {
      tags: ['cases'], summary: 'The case ledger (台账), newest first, with filters and cursor paging',
      description: 'Case data is left out of lists (it holds residents\' personal data); read one case for it.',
      querystring: ListQuery,
      response: { 200: Type.Object({ items: Type.Array(CaseSummary), nextCursor: Nullable(Type.String()) }), ...problemResponses },
    },
  }, async (request) => {
    const q = request.query;
    const page = await listCases(engine, {
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
};
