// Shared by the engine's database tests. The same suites run on whichever backend DATABASE_URL
// selects (STYLE §10): unset → an in-memory PGlite, set → the real Postgres, one fresh schema per
// test file so that files running at once never see each other's rows.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { canonicalJson, chainHash } from '../../engine/hash.ts';
import { openDatabase } from '../../engine/store/index.ts';
import type { Database, DatabaseKind, OpenedDatabase } from '../../engine/store/index.ts';

/** The backend this run tests. */
export const backend: DatabaseKind = process.env.DATABASE_URL ? 'postgres' : 'pglite';
export const databaseUrl: string | undefined = process.env.DATABASE_URL || undefined;

/** A name no other test file or run will pick: for schemas and roles. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/**
 * Opens a migrated store for one test file. PGlite takes ~5 s to start, so open it once in
 * `beforeAll` and share it across the file's tests (give each test its own case ids).
 */
export async function openTestDatabase(): Promise<OpenedDatabase> {
  if (databaseUrl === undefined) return openDatabase();
  const schema = uniqueName('wf_test');
  const store = await openDatabase({ databaseUrl, schema });
  return {
    ...store,
    async close() {
      try {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(store.db);
      } finally {
        await store.close();
      }
    },
  };
}

/** Removes a role a test created; roles are global to the server, so none may be left behind. */
export async function dropRole(db: Kysely<Database>, role: string): Promise<void> {
  const { rows } = await sql<{ found: boolean }>`select exists (select 1 from pg_roles where rolname = ${role}) as found`.execute(db);
  if (!rows[0]?.found) return;
  await sql`drop owned by ${sql.id(role)}`.execute(db);
  await sql`drop role ${sql.id(role)}`.execute(db);
}

/** Runs `work` in a transaction as `role`; the role ends with the transaction. */
export async function asRole<T>(db: Kysely<Database>, role: string, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`set local role ${sql.id(role)}`.execute(trx);
    return work(trx);
  });
}

/** The SQLSTATE a promise rejected with (`pg` and PGlite both put it in `code`). */
export async function sqlStateOfRejection(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? code : `not a database error: ${String(error)}`;
  }
  return undefined;
}

/** Inserts the org unit and definition cases hang off, once per database. */
export async function seedReferenceData(db: Kysely<Database>): Promise<void> {
  await db
    .insertInto('org_units')
    .values({ id: 'community-1', parent_id: null, level: 'community', name: '幸福社区' })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const existing = await db.selectFrom('definitions').select('id').where('id', '=', 'def-1').executeTakeFirst();
  if (!existing) {
    await db
      .insertInto('definitions')
      .values({ id: 'def-1', name: '五单服务', version: 1, source: 'workflow 五单服务', compiled: JSON.stringify({ id: 'wudan' }), compiler_version: 'test' })
      .execute();
  }
}

/**
 * Writes a case with `eventCount` hash-chained events (seq 1…n, or the given seqs) and returns
 * the head hash. Needs {@link seedReferenceData} first.
 */
export async function seedCase(db: Kysely<Database>, caseId: string, eventCount: number, seqs?: readonly number[]): Promise<string> {
  await db
    .insertInto('cases')
    .values({ id: caseId, definition_id: 'def-1', org_unit_id: 'community-1', state: JSON.stringify('点单'), snapshot: JSON.stringify({}) })
    .execute();
  let prevHash: string | null = null;
  for (const seq of seqs ?? Array.from({ length: eventCount }, (_, index) => index + 1)) {
    const event = { case_id: caseId, seq, type: '派单', payload: { unit: 'unit-1', 备注: '尽快' }, recorded_at: '2026-10-08T02:00:00.000Z' };
    const hash: string = chainHash(prevHash, canonicalJson(event));
    await db
      .insertInto('events')
      .values({
        case_id: caseId,
        seq,
        type: event.type,
        actor_id: 'actor-1',
        on_behalf_of: null,
        role: 'community_secretary',
        org_unit_id: 'community-1',
        payload: JSON.stringify(event.payload),
        recorded_at: event.recorded_at,
        facts: JSON.stringify({}),
        resulting_state: JSON.stringify('派单'),
        decision: null,
        prev_hash: prevHash,
        hash,
      })
      .execute();
    prevHash = hash;
  }
  await db.updateTable('cases').set({ head_hash: prevHash }).where('id', '=', caseId).execute();
  return prevHash ?? '';
}

/** Every node of an EXPLAIN (FORMAT JSON) plan; the drivers hand the plan back parsed or as text. */
export function planNodes(explained: unknown): Record<string, unknown>[] {
  const parsed: unknown = typeof explained === 'string' ? JSON.parse(explained) : explained;
  const out: Record<string, unknown>[] = [];
  const visit = (node: Record<string, unknown>): void => {
    out.push(node);
    for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) visit(child);
  };
  for (const top of parsed as { Plan: Record<string, unknown> }[]) visit(top.Plan);
  return out;
}
