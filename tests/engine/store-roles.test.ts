// The application's database role cannot rewrite history or switch the guards off (DESIGN §3
// Audit). PGlite supports roles, SET ROLE and SECURITY DEFINER, so these run on both backends;
// only a second login connection needs the real Postgres.
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainHash } from '../../engine/hash.ts';
import { SQLSTATE, StoreError, archiveCase, ensureAppRole, openDatabase } from '../../engine/store/index.ts';
import type { OpenedDatabase, StoreErrorCode } from '../../engine/store/index.ts';
import { asRole, backend, databaseUrl, dropRole, openTestDatabase, seedCase, seedReferenceData, sqlStateOfRejection, uniqueName } from './support.ts';

async function storeErrorCode(promise: Promise<unknown>): Promise<StoreErrorCode | string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof StoreError ? error.code : `not a StoreError: ${String(error)}`;
  }
  return 'no error';
}

describe(`application role on ${backend}`, () => {
  let store: OpenedDatabase;
  const app = uniqueName('wf_app');
  const loginApp = uniqueName('wf_login');
  const superuser = uniqueName('wf_super');

  beforeAll(async () => {
    store = await openTestDatabase();
    await seedReferenceData(store.db);
    await ensureAppRole(store.db, app);
  });
  afterAll(async () => {
    if (!store) return;
    try {
      for (const role of [app, loginApp, superuser]) await dropRole(store.db, role);
    } finally {
      await store.close();
    }
  });

  it('is created NOLOGIN, owns nothing and is not privileged; ensuring it again changes nothing', async () => {
    await ensureAppRole(store.db, app);
    const { rows } = await sql<{ rolcanlogin: boolean; rolsuper: boolean; owned: string }>`
      select r.rolcanlogin, r.rolsuper,
             (select count(*) from pg_class c where c.relowner = r.oid)::text as owned
      from pg_roles r where r.rolname = ${app}`.execute(store.db);
    expect(rows).toEqual([{ rolcanlogin: false, rolsuper: false, owned: '0' }]);
  });

  it('holds exactly SELECT and INSERT on events', async () => {
    const { rows } = await sql<{ privilege: string; granted: boolean }>`
      select p as privilege, has_table_privilege(${app}, 'events', p) as granted
      from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES']) as p`.execute(store.db);
    expect(Object.fromEntries(rows.map((row) => [row.privilege, row.granted]))).toEqual({
      SELECT: true,
      INSERT: true,
      UPDATE: false,
      DELETE: false,
      TRUNCATE: false,
      TRIGGER: false,
      REFERENCES: false,
    });
  });

  it('can append and read events', async () => {
    await asRole(store.db, app, async (trx) => {
      await seedCase(trx, 'role-append', 2);
      const events = await trx.selectFrom('events').select('seq').where('case_id', '=', 'role-append').execute();
      expect(events).toHaveLength(2);
    });
  });

  describe('is refused', () => {
    beforeAll(async () => {
      await seedCase(store.db, 'role-refused', 1);
    });

    it.each<[string, RawBuilder<unknown>]>([
      ['UPDATE on events', sql`update events set type = 'forged' where case_id = 'role-refused'`],
      ['DELETE on events', sql`delete from events where case_id = 'role-refused'`],
      ['TRUNCATE on events', sql`truncate events`],
      ['ALTER TABLE events DISABLE TRIGGER', sql`alter table events disable trigger events_append_only`],
      ['ALTER TABLE events DISABLE TRIGGER ALL', sql`alter table events disable trigger all`],
      ['DROP TRIGGER on events', sql`drop trigger events_append_only on events`],
      ['CREATE TRIGGER on events', sql`create trigger sneaky before insert on events for each row execute function refuse_definition_change()`],
      ['taking ownership of events', sql.raw(`alter table events owner to ${app}`)],
      ['SET session_replication_role = replica', sql`set local session_replication_role = replica`],
      ['writing its own tombstone', sql`insert into archive_tombstones (case_id, head_hash, event_count) values ('role-refused', 'x', 1)`],
      ['UPDATE on definitions', sql`update definitions set source = 'changed'`],
      ['DELETE on cases', sql`delete from cases where id = 'role-refused'`],
      ['creating tables in the schema', sql`create table sneaky (id int)`],
    ])('%s', async (_name, statement) => {
      expect(await sqlStateOfRejection(asRole(store.db, app, (trx) => statement.execute(trx)))).toBe(SQLSTATE.insufficientPrivilege);
    });

    it('and the history is untouched', async () => {
      const events = await store.db.selectFrom('events').select(['seq', 'type']).where('case_id', '=', 'role-refused').execute();
      expect(events).toEqual([{ seq: 1, type: '派单' }]);
    });
  });

  it('can archive only through archive_case, with the verified head hash', async () => {
    const head = await seedCase(store.db, 'role-archive', 2);
    expect(await storeErrorCode(asRole(store.db, app, (trx) => archiveCase(trx, 'role-archive', chainHash(null, 'forged'))))).toBe(
      'STORE_ARCHIVE_HEAD_MISMATCH',
    );
    expect(await asRole(store.db, app, (trx) => archiveCase(trx, 'role-archive', head))).toEqual({ eventCount: 2 });
    const tombstone = await store.db.selectFrom('archive_tombstones').select(['head_hash', 'event_count']).where('case_id', '=', 'role-archive').executeTakeFirstOrThrow();
    expect(tombstone).toEqual({ head_hash: head, event_count: 2 });
  });

  describe('ensureAppRole refuses', () => {
    it('an invalid role name', async () => {
      expect(await storeErrorCode(ensureAppRole(store.db, 'App; drop table events'))).toBe('STORE_INVALID_ROLE_NAME');
    });

    it('the owner itself', async () => {
      const { rows } = await sql<{ me: string }>`select current_user as me`.execute(store.db);
      expect(await storeErrorCode(ensureAppRole(store.db, rows[0]?.me ?? ''))).toBe('STORE_ROLE_UNSAFE');
    });

    it('a superuser, and leaves it unchanged', async () => {
      await sql.raw(`create role ${superuser} superuser nologin`).execute(store.db);
      expect(await storeErrorCode(ensureAppRole(store.db, superuser, { login: true }))).toBe('STORE_ROLE_UNSAFE');
      const { rows } = await sql<{ rolcanlogin: boolean }>`select rolcanlogin from pg_roles where rolname = ${superuser}`.execute(store.db);
      expect(rows).toEqual([{ rolcanlogin: false }]);
    });

    it('to run for a user who does not own the tables', async () => {
      expect(await storeErrorCode(asRole(store.db, app, (trx) => ensureAppRole(trx, uniqueName('wf_other'))))).toBe('STORE_NOT_OWNER');
    });
  });

  it.skipIf(backend === 'pglite')(
    backend === 'pglite'
      ? '(Postgres only: PGlite has one connection and no logins) a LOGIN app role connects with its own pool and is refused the same way'
      : 'a LOGIN app role connects with its own pool and is refused the same way',
    async () => {
      await ensureAppRole(store.db, loginApp, { login: true });
      const url = new URL(databaseUrl ?? '');
      url.username = loginApp;
      url.password = '';
      const appStore = await openDatabase({ databaseUrl: url.toString(), schema: store.schema, migrate: false });
      try {
        expect(appStore).toMatchObject({ kind: 'postgres', schema: store.schema, migrations: [] });
        await seedCase(appStore.db, 'login-app', 1);
        expect(await sqlStateOfRejection(sql`update events set type = 'forged' where case_id = 'login-app'`.execute(appStore.db))).toBe(
          SQLSTATE.insufficientPrivilege,
        );
        expect(await sqlStateOfRejection(sql`alter table events disable trigger events_append_only`.execute(appStore.db))).toBe(
          SQLSTATE.insufficientPrivilege,
        );
        expect(await sqlStateOfRejection(sql`set session_replication_role = replica`.execute(appStore.db))).toBe(SQLSTATE.insufficientPrivilege);
      } finally {
        await appStore.close();
      }
      await ensureAppRole(store.db, loginApp, { login: false });
    },
  );
});
