import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { SQLSTATE, StoreError, sqlStateOf } from './errors.ts';
import type { Database } from './tables.ts';

type Privilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/**
 * What the application role may do to each table. `satisfies` makes a new table fail the build
 * until someone decides its privileges. Deliberately absent: UPDATE/DELETE on the history and the
 * definitions, INSERT on tombstones (that is archive_case's job), TRUNCATE, TRIGGER, REFERENCES
 * and ownership of anything, so the role cannot disable or drop the guards.
 */
const APP_PRIVILEGES = {
  definitions: ['SELECT', 'INSERT'],
  org_units: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  actors: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  actor_roles: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  cases: ['SELECT', 'INSERT', 'UPDATE'],
  case_links: ['SELECT', 'INSERT'],
  events: ['SELECT', 'INSERT'],
  timers: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  outbox: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  idempotency_keys: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  points_ledger: ['SELECT', 'INSERT'],
  archive_tombstones: ['SELECT'],
  notifications: ['SELECT', 'INSERT', 'DELETE'],
  personal_data_reads: ['SELECT', 'INSERT'],
} as const satisfies Record<keyof Database, readonly Privilege[]>;

/** Kysely's bookkeeping, readable so the application can tell whether the schema is current. */
const MIGRATION_TABLES = ['kysely_migration', 'kysely_migration_lock'] as const;

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Options of {@link ensureAppRole}.
 *
 * @example
 * ```ts
 * const options: AppRoleOptions = { login: true, password: process.env.APP_DB_PASSWORD };
 * ```
 */
export interface AppRoleOptions {
  /** Whether the role may log in; an existing role is changed to match when this is given. New roles default to NOLOGIN. */
  readonly login?: boolean;
  /** Sets the role's password (sent to the server quoted by the server's own `format('%L')`). */
  readonly password?: string;
}

/**
 * Creates (if needed) the role the application connects as, and sets its privileges on the
 * current schema to exactly what the engine needs: it can read and append history but not
 * change, delete or truncate it, and, owning nothing and holding no TRIGGER privilege, it cannot
 * disable the append-only triggers. It may call `archive_case`. Run it as the owner of the
 * schema's tables, after migrating; running it again re-applies the same privileges. Given a
 * transaction it runs inside it, otherwise in a transaction of its own.
 *
 * @throws {StoreError} `STORE_INVALID_ROLE_NAME`; `STORE_NOT_OWNER` if the current user does not
 *   own the tables or cannot create roles; `STORE_ROLE_UNSAFE` if the role is (or could make
 *   itself) powerful enough to defeat the guards: the owner, a member of it, a superuser, or one
 *   with CREATEROLE or BYPASSRLS.
 *
 * @example
 * ```ts
 * await ensureAppRole(owner.db, 'closed_loop_app', { login: true, password: 'secret' });
 * const app = await openDatabase({ databaseUrl: 'postgres://closed_loop_app:secret@db/wf', migrate: false });
 * ```
 */
export async function ensureAppRole(db: Kysely<Database>, roleName: string, options: AppRoleOptions = {}): Promise<void> {
  if (!ROLE_NAME.test(roleName)) {
    throw new StoreError('STORE_INVALID_ROLE_NAME', `Role name ${JSON.stringify(roleName)} must be 1–63 lowercase letters, digits or _, not starting with a digit.`);
  }
  const run = async (trx: Kysely<Database>): Promise<void> => {
    const { schema, owner } = await checkOwnership(trx);
    if (roleName === owner) {
      throw new StoreError('STORE_ROLE_UNSAFE', `${roleName} owns the tables; the application needs a role of its own.`);
    }
    // Checked before any ALTER, so an unsafe existing role is reported as such and left alone; a
    // role this call creates has no attributes that could make it unsafe.
    await checkRoleIsHarmless(trx, roleName, owner);
    await createOrAlterRole(trx, roleName, options);
    await grantPrivileges(trx, schema, roleName);
  };
  // All or nothing: privileges are never left half revoked.
  if (db.isTransaction) await run(db);
  else await db.transaction().execute(run);
}

async function checkOwnership(trx: Kysely<Database>): Promise<{ schema: string; owner: string }> {
  const { rows } = await sql<{ schema: string | null; me: string; owner: string | null; mine: boolean | null }>`
    select current_schema() as schema, current_user as me, t.tableowner as owner,
           pg_has_role(current_user, t.tableowner, 'USAGE') as mine
    from (select 1) as one
    left join pg_tables t on t.schemaname = current_schema() and t.tablename = 'events'`.execute(trx);
  const row = rows[0];
  if (!row?.schema || !row.owner) {
    throw new StoreError('STORE_NOT_OWNER', `No events table in schema ${row?.schema ?? '(none)'}; migrate the database before creating the application role.`);
  }
  if (!row.mine) {
    throw new StoreError('STORE_NOT_OWNER', `${row.me} does not own the tables in schema ${row.schema} (${row.owner} does); run this as the owner.`);
  }
  return { schema: row.schema, owner: row.owner };
}

async function createOrAlterRole(trx: Kysely<Database>, roleName: string, options: AppRoleOptions): Promise<void> {
  const { rows } = await sql<{ found: boolean }>`select exists (select 1 from pg_roles where rolname = ${roleName}) as found`.execute(trx);
  const exists = rows[0]?.found === true;
  const login = options.login === undefined ? (exists ? '' : ' NOLOGIN') : options.login ? ' LOGIN' : ' NOLOGIN';
  const password = options.password === undefined ? '' : ' PASSWORD %L';
  const template = `${exists ? 'ALTER' : 'CREATE'} ROLE %I${login}${password}`;
  if (exists && template === 'ALTER ROLE %I') return;
  // The server quotes the name and password itself, so nothing user-supplied is spliced as SQL.
  const { rows: statements } = await sql<{ statement: string }>`
    select format(${template}::text, ${roleName}::text, ${options.password ?? null}::text) as statement`.execute(trx);
  const statement = statements[0]?.statement;
  if (statement === undefined) return;
  try {
    await sql.raw(statement).execute(trx);
  } catch (error) {
    if (sqlStateOf(error) === SQLSTATE.insufficientPrivilege) {
      throw new StoreError('STORE_NOT_OWNER', `Not allowed to ${exists ? 'alter' : 'create'} role ${roleName}; create it as a user with CREATEROLE, then run this again.`, { cause: error });
    }
    throw error;
  }
}

async function checkRoleIsHarmless(trx: Kysely<Database>, roleName: string, owner: string): Promise<void> {
  const { rows } = await sql<{ rolsuper: boolean; rolcreaterole: boolean; rolbypassrls: boolean; member: boolean }>`
    select rolsuper, rolcreaterole, rolbypassrls, pg_has_role(rolname, ${owner}::text, 'MEMBER') as member
    from pg_roles where rolname = ${roleName}`.execute(trx);
  const role = rows[0];
  const reasons = [
    role?.rolsuper ? 'is a superuser' : '',
    role?.rolcreaterole ? 'has CREATEROLE (it could grant itself the owner role)' : '',
    role?.rolbypassrls ? 'has BYPASSRLS' : '',
    role?.member ? `is a member of the owner ${owner}` : '',
  ].filter(Boolean);
  if (reasons.length > 0) {
    throw new StoreError('STORE_ROLE_UNSAFE', `Role ${roleName} ${reasons.join(' and ')}, so it could bypass the audit guards; use an unprivileged role.`);
  }
}

async function grantPrivileges(trx: Kysely<Database>, schema: string, roleName: string): Promise<void> {
  const role = sql.id(roleName);
  const schemaId = sql.id(schema);
  // Start from nothing so that re-running also takes back what an earlier version granted.
  await sql`revoke all on all tables in schema ${schemaId} from ${role}`.execute(trx);
  await sql`revoke all on all sequences in schema ${schemaId} from ${role}`.execute(trx);
  await sql`revoke all on all functions in schema ${schemaId} from ${role}`.execute(trx);
  await sql`revoke all on schema ${schemaId} from ${role}`.execute(trx);
  await sql`grant usage on schema ${schemaId} to ${role}`.execute(trx);
  for (const [table, privileges] of Object.entries(APP_PRIVILEGES)) {
    await sql`grant ${sql.raw(privileges.join(', '))} on table ${sql.id(schema, table)} to ${role}`.execute(trx);
  }
  for (const table of MIGRATION_TABLES) {
    await sql`grant select on table ${sql.id(schema, table)} to ${role}`.execute(trx);
  }
  await sql`grant execute on function ${sql.id(schema, 'archive_case')}(text, text) to ${role}`.execute(trx);
}
