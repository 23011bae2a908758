/**
 * The jurisdiction tree and the people in it: read by any caller, changed only by 管理员. A change
 * drops the engine's cached org view at once, so the next authorization sees it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { EngineError } from '../../engine/errors.ts';
import { lineage } from '../../engine/org.ts';
import { getOrgUnit, listOrgUnits } from '../../engine/queries.ts';
import { findActor, upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import type { OrgUnitLevel } from '../../engine/store/tables.ts';
import { holds, requireRole, SERVER_ROLES, type Principal } from '../auth.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { NameString, Nullable, problemResponses } from '../schemas.ts';

const LEVELS = ['prefecture', 'county', 'street', 'community', 'grid', 'department', 'co_building'] as const satisfies readonly OrgUnitLevel[];
const Level = Type.Union(LEVELS.map((l) => Type.Literal(l)), { description: '州 prefecture, 县 county, 街道 street, 社区 community, 网格 grid; departments and co-building units beside the main line.' });

const Id = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f/]+$' });
/** A name or id in a body: no control characters (Postgres cannot store NUL; the rest are never meant). */
const Text = (maxLength: number) => NameString({ maxLength });

const OrgUnit = Type.Object({
  id: Type.String(),
  parent: Nullable(Type.String()),
  level: Type.String(),
  name: Type.String(),
});
const OrgUnitDetail = Type.Object({ ...OrgUnit.properties, children: Type.Array(Type.String()) });

const OrgUnitBody = Type.Object({
  parent: Nullable(Text(200)),
  level: Level,
  name: Text(200),
}, { additionalProperties: false });

const Grant = Type.Object({ role: Text(100), unit: Text(200) }, { additionalProperties: false });

const Actor = Type.Object({
  id: Type.String(),
  name: Type.String(),
  phone: Nullable(Type.String({ description: 'Masked unless the caller is this person, 管理员 or 督查员.' })),
  roles: Type.Array(Type.Object({ role: Type.String(), unit: Type.String() })),
});

const ActorBody = Type.Object({
  name: Text(200),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 40, pattern: '^[0-9+() -]*$' }))),
  roles: Type.Array(Grant, { maxItems: 200, description: 'Replaces every role the person holds.' }),
}, { additionalProperties: false });

/** `13800001234` → `138****1234`: enough to recognise, not enough to call. */
function maskPhone(phone: string): string {
  const digits = phone.replace(/\D/g, '');
  if (digits.length < 7) return '****';
  return `${digits.slice(0, 3)}****${digits.slice(-4)}`;
}

function mayReadPhone(p: Principal, actorId: string): boolean {
  return p.actor === actorId || holds(p, SERVER_ROLES.admin) || holds(p, SERVER_ROLES.auditor);
}

function fieldError(path: string, message: string, detail: string): EngineError {
  return new EngineError('VALIDATION_FAILED', detail, { fields: [{ path, code: 'reference', message }] });
}

/**
 * The caller, org units and people.
 * @example await app.register(orgRoutes, { engine, metrics });
 */
export const orgRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine }) => {
  app.get('/v1/me', {
    schema: {
      tags: ['org'], summary: 'The caller: actor id, name and roles',
      response: { 200: Type.Object({ actor: Type.String(), name: Nullable(Type.String()), roles: Type.Array(Type.Object({ role: Type.String(), unit: Type.String() })) }), ...problemResponses },
    },
  }, async (request) => {
    const p = principalOf(request);
    const a = await findActor(engine.store, p.actor);
    return { actor: p.actor, name: a?.name ?? null, roles: p.roles.map((g) => ({ role: g.role, unit: g.unit })) };
  });

  app.get('/v1/org-units', {
    schema: { tags: ['org'], summary: 'The whole org tree as a flat list', response: { 200: Type.Object({ items: Type.Array(OrgUnit) }), ...problemResponses } },
  }, async () => ({ items: (await listOrgUnits(engine)).map((u) => ({ ...u })) }));

  app.get('/v1/org-units/:id', {
    schema: { tags: ['org'], summary: 'An org unit with its children', params: Type.Object({ id: Id }), response: { 200: OrgUnitDetail, ...problemResponses } },
  }, async (request) => {
    const u = await getOrgUnit(engine, request.params.id);
    return { ...u, children: [...u.children] };
  });

  app.put('/v1/org-units/:id', {
    schema: {
      tags: ['org'], summary: 'Create or change an org unit (管理员)',
      description: 'The parent must exist and may not be the unit itself or below it.',
      params: Type.Object({ id: Id }), body: OrgUnitBody, response: { 200: OrgUnitDetail, 201: OrgUnitDetail, ...problemResponses },
    },
  }, async (request, reply) => {
    const p = principalOf(request);
    requireRole(p, SERVER_ROLES.admin, 'change org units');
    const { id } = request.params;
    const b = request.body;
    // Validate against the current tree, not a cached one: another process may have changed it.
    engine.invalidateOrg();
    const org = await engine.org();
    const existed = org.unit(id) !== undefined;
    if (b.parent !== null) {
      if (org.unit(b.parent) === undefined) throw fieldError('parent', `no org unit ${b.parent}`, `The parent ${b.parent} does not exist; create it first.`);
      if (lineage(org, b.parent).includes(id)) throw fieldError('parent', 'would make a cycle', `${b.parent} is ${id} itself or below it; a unit cannot be its own ancestor.`);
    }
    await upsertOrgUnits(engine.store, [{ id, parent: b.parent, level: b.level, name: b.name }]);
    engine.invalidateOrg();
    request.log.info({ orgUnit: id, parent: b.parent, level: b.level, created: !existed }, 'org unit saved');
    const u = await getOrgUnit(engine, id);
    return reply.code(existed ? 200 : 201).send({ ...u, children: [...u.children] });
  });

  app.get('/v1/actors/:id', {
    schema: { tags: ['org'], summary: 'A person and the roles they hold', params: Type.Object({ id: Id }), response: { 200: Actor, ...problemResponses } },
  }, async (request) => {
    const p = principalOf(request);
    const a = await findActor(engine.store, request.params.id);
    if (a === undefined) throw new EngineError('ACTOR_NOT_FOUND', `No actor ${request.params.id}.`, { actor: request.params.id });
    const phone = a.phone === null ? null : mayReadPhone(p, a.id) ? a.phone : maskPhone(a.phone);
    if (a.phone !== null && mayReadPhone(p, a.id) && p.actor !== a.id) request.log.info({ subject: a.id }, 'unmasked phone read');
    return { id: a.id, name: a.name, phone, roles: a.roles.map((r) => ({ role: r.role, unit: r.unit })) };
  });

  app.put('/v1/actors/:id', {
    schema: {
      tags: ['org'], summary: 'Create or change a person and replace their roles (管理员)',
      params: Type.Object({ id: Id }), body: ActorBody, response: { 200: Actor, 201: Actor, ...problemResponses },
    },
  }, async (request, reply) => {
    const p = principalOf(request);
    requireRole(p, SERVER_ROLES.admin, 'change people and roles');
    const { id } = request.params;
    const b = request.body;
    engine.invalidateOrg();
    const org = await engine.org();
    const fields = b.roles.flatMap((g, i) => (org.unit(g.unit) === undefined ? [{ path: `roles/${i}/unit`, code: 'reference', message: `no org unit ${g.unit}` }] : []));
    if (fields.length > 0) throw new EngineError('VALIDATION_FAILED', `Unknown org unit(s): ${fields.map((f) => f.message.slice(12)).join(', ')}.`, { fields });
    const seen = new Set<string>();
    const roles = b.roles.filter((g) => {
      const k = `${g.role}\u0000${g.unit}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    const before = await findActor(engine.store, id);
    await upsertActor(engine.store, { id, name: b.name, phone: b.phone === undefined ? before?.phone ?? null : b.phone, roles });
    engine.invalidateOrg();
    request.log.info({ subject: id, roles: roles.length, created: before === undefined }, 'actor saved');
    const a = await findActor(engine.store, id);
    if (a === undefined) throw new EngineError('ACTOR_NOT_FOUND', `No actor ${id}.`, { actor: id });
    return reply.code(before === undefined ? 201 : 200).send({ id: a.id, name: a.name, phone: a.phone, roles: a.roles.map((r) => ({ role: r.role, unit: r.unit })) });
  });
};
