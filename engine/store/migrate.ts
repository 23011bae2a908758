import { Migrator, sql } from 'kysely';
import type { Kysely } from 'kysely';
import { StoreError } from './errors.ts';
import type { StoreLogger } from './logger.ts';
import { migrations } from './migrations/index.ts';
import type { Database } from './tables.ts';

/** Options of {@link migrate}. */
export interface MigrateOptions {
  readonly logger?: StoreLogger;
}

/**
 * Brings the schema on `db`'s search path up to date and returns the names of the migrations it
 * applied (none if it was current). Kysely's bookkeeping tables live in the same schema, so
 * several schemas in one database migrate independently.
 *
 * @throws {StoreError} `STORE_MIGRATION_FAILED`, with the failing migration named and the driver's
 *   error as `cause`; on Postgres the failed run is rolled back as a whole.
 *
 * @example
 * ```ts
 * const applied = await migrate(db); // e.g. ['0001-core-tables', '0002-audit-guards']
 * ```
 */
export async function migrate(db: Kysely<Database>, options: MigrateOptions = {}): Promise<readonly string[]> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema) {
    throw new StoreError('STORE_MIGRATION_FAILED', 'No schema on the search path exists; create it or fix search_path, then migrate.');
  }
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableSchema: schema,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((result) => result.status === 'Error');
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreError(
      'STORE_MIGRATION_FAILED',
      failed ? `Migration ${failed.migrationName} failed in schema ${schema}: ${reason}` : `Migrations could not run in schema ${schema}: ${reason}`,
      { cause: error },
    );
  }
  const applied = results.map((result) => result.migrationName);
  if (applied.length > 0) options.logger?.info({ schema, migrations: applied }, 'database migrated');
  return applied;
}
