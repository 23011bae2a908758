/**
 * Definitions (immutable, versioned) and the org tree with its people and roles.
 */
import type { OpenedDatabase } from './open.ts';
import type { OrgUnitLevel } from './tables.ts';

export interface DefinitionRow {
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly source: string;
  readonly compiled: unknown;
  readonly compilerVersion: string;
  readonly createdAt: string;
}

function toDefinition(r: { id: string; name: string; version: number; source: string; compiled: unknown; compiler_version: string; created_at: Date | string }): DefinitionRow {
  return {
    id: r.id,
    name: r.name,
    version: Number(r.version),
    source: r.source,
    compiled: r.compiled,
    compilerVersion: r.compiler_version,
    createdAt: r.created_at instanceof Date ? r.created_at.toISOString() : new Date(r.created_at).toISOString(),
  };
}

/** The newest version of a workflow, or undefined. */
export async function latestDefinition(store: OpenedDatabase, name: string): Promise<DefinitionRow | undefined> {
  const r = await store.db.selectFrom('definitions').selectAll().where('name', '=', name).orderBy('version', 'desc').limit(1).executeTakeFirst();
  return r === undefined ? undefined : toDefinition(r);
}

export async function findDefinition(store: OpenedDatabase, name: string, version: number): Promise<DefinitionRow | undefined> {
  const r = await store.db.selectFrom('definitions').selectAll().where('name', '=', name).where('version', '=', version).executeTakeFirst();
  return r === undefined ? undefined : toDefinition(r);
}

export async function definitionById(store: OpenedDatabase, id: string): Promise<DefinitionRow | undefined> {
  const r = await store.db.selectFrom('definitions').selectAll().where('id', '=', id).executeTakeFirst();
  return r === undefined ? undefined : toDefinition(r);
}

export async function listDefinitions(store: OpenedDatabase): Promise<DefinitionRow[]> {
  const rows = await store.db.selectFrom('definitions').selectAll().orderBy('name').orderBy('version').execute();
  return rows.map(toDefinition);
}

/**
 * Inserts a new version. Two deployers racing on the same name get distinct versions or a unique
 * violation (23505) the caller retries.
 */
export async function insertDefinition(store: OpenedDatabase, d: Omit<DefinitionRow, 'createdAt'>): Promise<void> {
  await store.db.insertInto('definitions').values({
    id: d.id, name: d.name, version: d.version, source: d.source, compiled: JSON.stringify(d.compiled), compiler_version: d.compilerVersion,
  }).execute();
}

export interface OrgUnitRow {
  readonly id: string;
  readonly parent: string | null;
  readonly level: OrgUnitLevel;
  readonly name: string;
}

export interface ActorRow {
  readonly id: string;
  readonly name: string;
  readonly phone: string | null;
  readonly roles: readonly { readonly role: string; readonly unit: string }[];
}

/** The whole org tree and every role grant: small enough (thousands of rows) to hold in memory. */
export async function loadOrg(store: OpenedDatabase): Promise<{ units: OrgUnitRow[]; grants: { actor: string; role: string; unit: string }[] }> {
  const units = await store.db.selectFrom('org_units').selectAll().execute();
  const grants = await store.db.selectFrom('actor_roles').selectAll().execute();
  return {
    units: units.map((u) => ({ id: u.id, parent: u.parent_id, level: u.level, name: u.name })),
    grants: grants.map((g) => ({ actor: g.actor_id, role: g.role, unit: g.org_unit_id })),
  };
}

/** Creates or updates org units; parents must come before their children or already exist. */
export async function upsertOrgUnits(store: OpenedDatabase, units: readonly OrgUnitRow[]): Promise<void> {
  for (const u of units) {
    await store.db.insertInto('org_units').values({ id: u.id, parent_id: u.parent, level: u.level, name: u.name })
      .onConflict((oc) => oc.column('id').doUpdateSet({ parent_id: u.parent, level: u.level, name: u.name }))
      .execute();
  }
}

/** Creates or updates an actor and replaces their role grants. */
export async function upsertActor(store: OpenedDatabase, a: ActorRow): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await trx.insertInto('actors').values({ id: a.id, name: a.name, phone: a.phone })
      .onConflict((oc) => oc.column('id').doUpdateSet({ name: a.name, phone: a.phone }))
      .execute();
    await trx.deleteFrom('actor_roles').where('actor_id', '=', a.id).execute();
    if (a.roles.length > 0) {
      await trx.insertInto('actor_roles').values(a.roles.map((r) => ({ actor_id: a.id, role: r.role, org_unit_id: r.unit }))).execute();
    }
  });
}

export async function findActor(store: OpenedDatabase, id: string): Promise<ActorRow | undefined> {
  const a = await store.db.selectFrom('actors').selectAll().where('id', '=', id).executeTakeFirst();
  if (a === undefined) return undefined;
  const roles = await store.db.selectFrom('actor_roles').select(['role', 'org_unit_id']).where('actor_id', '=', id).execute();
  return { id: a.id, name: a.name, phone: a.phone, roles: roles.map((r) => ({ role: r.role, unit: r.org_unit_id })) };
}
