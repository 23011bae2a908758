/**
 * How the engine connects in production: migrations run as the database owner (the user in
 * DATABASE_URL), and the application then works through a role that may append events but never
 * change or remove them, nor switch off the guard (DESIGN.md §3, Audit). PGlite has one user and
 * one connection, so there the owner connection is the application's.
 */
import { ensureAppRole } from './roles.ts';
import { openDatabase, type OpenDatabaseOptions, type OpenedDatabase } from './open.ts';

export interface AppDatabaseOptions extends OpenDatabaseOptions {
  /** The application's role (default `wf_app`). */
  readonly appRole?: string;
  /** Its password, where the server asks for one (trust or peer authentication does not). */
  readonly appPassword?: string;
}

/**
 * Migrates as the owner, makes sure the application role exists with exactly its privileges, and
 * returns a store connected as that role. On PGlite, returns the migrated embedded store.
 * @example const store = await openAppDatabase({ databaseUrl: process.env.DATABASE_URL });
 */
export async function openAppDatabase(options: AppDatabaseOptions): Promise<OpenedDatabase> {
  const { appRole = 'wf_app', appPassword, ...rest } = options;
  if (rest.databaseUrl === undefined) return openDatabase(rest);
  const owner = await openDatabase({ ...rest, poolSize: 1 });
  try {
    await ensureAppRole(owner.db, appRole, { login: true, ...(appPassword === undefined ? {} : { password: appPassword }) });
  } finally {
    await owner.close();
  }
  const url = new URL(rest.databaseUrl);
  url.username = appRole;
  url.password = appPassword ?? '';
  return openDatabase({ ...rest, databaseUrl: url.toString(), migrate: false });
}
