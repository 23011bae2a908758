/**
 * Workflow definitions: check a draft (never a 500: whatever the draft, the answer is its
 * diagnostics), deploy it (policy staff only), list the deployed versions, read one with a
 * summary of its states and events, and draw it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { checkSource } from '../../dsl/check.ts';
import type { CompiledDefinition, WhoSpec } from '../../dsl/compile.ts';
import { diag, FILE_START, type Diagnostic } from '../../dsl/diagnostics.ts';
import { toMermaid, toSvg } from '../../dsl/graph.ts';
import { printExpr } from '../../dsl/print.ts';
import { fieldTypesToJsonSchema } from '../../engine/actions.ts';
import { listDefinitions } from '../../engine/queries.ts';
import { requireRole, SERVER_ROLES } from '../auth.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { DiagnosticSchema, diagnosticBody, JsonObject, NameString, Nullable, problemResponses } from '../schemas.ts';

const File = NameString({ description: 'A name for the draft, shown in diagnostics and resolving its imports (default draft.wf).' });

const Source = Type.Object({
  source: Type.String({ maxLength: 1_000_000, description: 'The workflow text.' }),
  file: Type.Optional(File),
}, { additionalProperties: false });

// A deployed source is stored as text, which cannot hold NUL: refuse it here rather than fail in the database.
const DeploySource = Type.Object({
  source: Type.String({ maxLength: 1_000_000, pattern: '^[^\\u0000]*$', description: 'The workflow text (without NUL characters).' }),
  file: Type.Optional(File),
}, { additionalProperties: false });

const CheckResult = Type.Object({
  ok: Type.Boolean({ description: 'True when the draft has no errors and is a deployable workflow.' }),
  workflow: Nullable(Type.String()),
  diagnostics: Type.Array(DiagnosticSchema),
});

const Deployed = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  id: Type.String(),
  created: Type.Boolean({ description: 'False when the source equals the newest version, which is returned instead.' }),
  diagnostics: Type.Array(DiagnosticSchema, { description: 'Warnings.' }),
});

const DefinitionItem = Type.Object({
  id: Type.String(),
  name: Type.String(),
  version: Type.Integer(),
  label: Nullable(Type.String()),
  compilerVersion: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});

const EventSummary = Type.Object({
  type: Type.String(),
  label: Type.Optional(Type.String()),
  who: Type.Array(Type.String(), { description: 'Who may send it, e.g. "社区书记 of case.社区".' }),
  payloadSchema: JsonObject,
});

const StateSummary = Type.Object({
  name: Type.String(),
  label: Type.Optional(Type.String()),
  final: Type.Boolean(),
  events: Type.Array(EventSummary),
  timers: Type.Array(Type.Object({ key: Type.String(), kind: Type.String() })),
});

const DefinitionDetail = Type.Object({
  ...DefinitionItem.properties,
  source: Type.String(),
  roles: Type.Array(Type.Object({ name: Type.String(), label: Type.Optional(Type.String()) })),
  start: Type.Object({ state: Type.String(), who: Type.Array(Type.String()) }),
  states: Type.Array(StateSummary),
  events: Type.Array(Type.String(), { description: 'Every event type the workflow accepts somewhere.' }),
  dataSchema: JsonObject,
});

const VersionParams = Type.Object({
  name: NameString(),
  version: Type.Integer({ minimum: 1 }),
});

function printWho(w: WhoSpec): string {
  switch (w.kind) {
    case 'role': return w.of === undefined ? w.role : `${w.role} of ${printExpr(w.of)}`;
    case 'person': return printExpr(w.expr);
    case 'anyone': return 'anyone';
  }
}

function whoList(who: readonly WhoSpec[]): string[] {
  return who.length === 0 ? ['anyone'] : who.map(printWho);
}

type Detail = Static<typeof DefinitionDetail>;

function summary(def: CompiledDefinition): Pick<Detail, 'roles' | 'start' | 'states' | 'events' | 'dataSchema'> {
  const events = new Set<string>();
  const states = Object.entries(def.states).map(([name, s]) => ({
    name,
    ...(s.label === undefined ? {} : { label: s.label }),
    final: s.final,
    events: Object.entries(s.events).map(([type, e]) => {
      events.add(type);
      return {
        type, ...(e.label === undefined ? {} : { label: e.label }), who: whoList(e.who),
        payloadSchema: fieldTypesToJsonSchema(e.payload) as unknown as Record<string, unknown>,
      };
    }),
    timers: s.timers.map((t) => ({ key: t.key, kind: t.kind })),
  }));
  return {
    roles: Object.entries(def.roles).map(([name, r]) => ({ name, ...(r.label === undefined ? {} : { label: r.label }) })),
    start: { state: def.start.state, who: whoList(def.start.who) },
    states,
    events: [...events].sort(),
    dataSchema: fieldTypesToJsonSchema(def.caseFields) as unknown as Record<string, unknown>,
  };
}

/**
 * Check, deploy, list, read and draw workflow definitions.
 * @example await app.register(definitionRoutes, { engine, metrics });
 */
export const definitionRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine, loader }) => {
  app.post('/v1/definitions/check', {
    schema: {
      tags: ['definitions'], summary: 'Check a draft: its diagnostics, all at once',
      description: 'Always 200 with diagnostics, whatever the draft; nothing is stored.',
      body: Source, response: { 200: CheckResult, ...problemResponses },
    },
  }, async (request) => {
    const file = request.body.file ?? 'draft.wf';
    let diagnostics: readonly Diagnostic[];
    let workflow: string | null = null;
    try {
      const checked = checkSource(request.body.source, file, loader === undefined ? {} : { load: loader });
      diagnostics = checked.diagnostics;
      workflow = checked.model?.name ?? null;
    } catch (e) {
      // The checker promises not to throw; if it does, the draft still gets an answer, not a 500.
      request.log.error({ err: e }, 'checker threw');
      diagnostics = [{ ...diag('WF0901', FILE_START, `The checker failed: ${e instanceof Error ? e.message : String(e)}`, 'This is a bug in the checker; please report it with the draft.'), file }];
    }
    const ok = workflow !== null && !diagnostics.some((d) => d.severity === 'error');
    return { ok, workflow, diagnostics: diagnostics.map(diagnosticBody) };
  });

  app.post('/v1/definitions', {
    schema: {
      tags: ['definitions'], summary: 'Deploy a workflow as a new version (policy staff: 政策员)',
      description: 'A source equal to the newest version\'s is not stored again: that version is returned with 200. A draft that does not compile is refused with 422 DEFINITION_INVALID and its `diagnostics`.',
      body: DeploySource, response: { 200: Deployed, 201: Deployed, ...problemResponses },
    },
  }, async (request, reply) => {
    const p = principalOf(request);
    requireRole(p, SERVER_ROLES.policy, 'deploy workflows');
    const r = await engine.deploy(request.body.source, request.body.file ?? 'draft.wf', loader);
    request.log.info({ workflow: r.name, version: r.version, created: r.created }, 'deployed');
    if (r.created) reply.header('location', `/v1/definitions/${encodeURIComponent(r.name)}/versions/${r.version}`);
    return reply.code(r.created ? 201 : 200).send({ name: r.name, version: r.version, id: r.id, created: r.created, diagnostics: r.diagnostics.map(diagnosticBody) });
  });

  app.get('/v1/definitions', {
    schema: {
      tags: ['definitions'], summary: 'Every deployed version, by name then version',
      response: { 200: Type.Object({ items: Type.Array(DefinitionItem) }), ...problemResponses },
    },
  }, async () => ({ items: (await listDefinitions(engine)).map((d) => ({ ...d })) }));

  app.get('/v1/definitions/:name/versions/:version', {
    schema: {
      tags: ['definitions'], summary: 'A deployed version: its source and a summary of its states, events and forms',
      params: VersionParams, response: { 200: DefinitionDetail, ...problemResponses },
    },
  }, async (request) => {
    const { row } = await engine.definition(request.params.name, request.params.version);
    const def = row.compiled as CompiledDefinition;
    return {
      id: row.id, name: row.name, version: row.version, label: def.label ?? null, compilerVersion: row.compilerVersion, createdAt: row.createdAt,
      source: row.source, ...summary(def),
    };
  });

  app.get('/v1/definitions/:name/versions/:version/graph', {
    schema: {
      tags: ['definitions'], summary: 'The statechart: SVG, or Mermaid text with Accept: text/plain',
      params: VersionParams,
      response: {
        200: {
          description: 'The diagram',
          content: { 'image/svg+xml': { schema: Type.String() }, 'text/plain': { schema: Type.String() } },
        },
        ...problemResponses,
      },
    },
  }, async (request, reply) => {
    const { row } = await engine.definition(request.params.name, request.params.version);
    const def = row.compiled as CompiledDefinition;
    const accept = request.headers.accept ?? '';
    // Mermaid only when asked for text and not for SVG: browsers send */* and get the picture.
    if (/\btext\/plain\b/.test(accept) && !/image\/svg\+xml/.test(accept)) {
      return reply.type('text/plain; charset=utf-8').send(toMermaid(def));
    }
    return reply.type('image/svg+xml; charset=utf-8').header('cache-control', 'private, max-age=3600').send(await toSvg(def));
  });
};
