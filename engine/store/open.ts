import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import { StoreError, sqlStateOf } from './errors.ts';
import type { StoreLogger } from './logger.ts';
import { migrate as runMigrations } from './migrate.ts';
import type { Database } from './tables.ts';

/** A single SQL statement run outside Kysely; see {@link OpenedDatabase.query}. */
export type RawQuery = <R extends Record<string, unknown>>(text: string, values: readonly (string | number | boolean | null)[], name?: string) => Promise<readonly R[]>;

/** Which database is behind a {@link OpenedDatabase}. */
export type DatabaseKind = 'postgres' | 'pglite';

/**
 * Where and how to open the store.
 *
 * @example
 * ```ts
 * const options: OpenDatabaseOptions = { databaseUrl: process.env.DATABASE_URL, poolSize: 16 };
 * ```
 */
export interface OpenDatabaseOptions {
  /** A Postgres connection string; without it the store embeds PGlite. */
  readonly databaseUrl?: string;
  /** PGlite only: keep the database in this directory instead of in memory. */
  readonly dataDir?: string;
  /**
   * Put the tables (and Kysely's migration bookkeeping) in this schema instead of the connection's
   * default, e.g. one schema per test file on a shared Postgres. Lowercase letters, digits and `_`.
   */
  readonly schema?: string;
  /** Apply pending migrations while opening (default `true`). Pass `false` when connecting as the application role, which may not change the schema. */
  readonly migrate?: boolean;
  /** Postgres only: maximum pooled connections (default 10). */
  readonly poolSize?: number;
  readonly logger?: StoreLogger;
}

/**
 * An open store. `close()` ends the pool or shuts PGlite down; it is safe to call twice.
 *
 * PGlite is a single connection that the dialect hands out in turn: inside
 * `db.transaction().execute(trx => …)` use `trx` only, because a query on `db` there waits for the
 * transaction to end and so never runs.
 *
 * @example
 * ```ts
 * const store = await openDatabase();
 * try {
 *   await store.db.selectFrom('definitions').selectAll().execute();
 * } finally {
 *   await store.close();
 * }
 * ```
 */
export interface OpenedDatabase {
  readonly db: Kysely<Database>;
  /**
   * One statement straight to the driver, for the engine's hot path: on Postgres a named query is
   * prepared once per connection and reused. `values` are text, numbers or null (send JSON as text
   * and cast it in SQL), so both drivers bind them alike.
   */
  readonly query: RawQuery;
  readonly kind: DatabaseKind;
  /** The schema the tables live in. */
  readonly schema: string;
  /** Migrations applied while opening. */
  readonly migrations: readonly string[];
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** PGlite would return int8 as bigint where `pg` returns a string; keep the two drivers alike. */
const INT8_OID = 20;

/**
 * Opens the store: Postgres through a `pg` pool when `databaseUrl` is given, otherwise embedded
 * PGlite (in memory, or in `dataDir`), and migrates it unless told not to.
 *
 * PGlite does not fsync: it is for one box and for trying things out; acknowledged writes are
 * durable only on Postgres. It takes about 5 s to start.
 *
 * @throws {StoreError} `STORE_INVALID_OPTIONS`, `STORE_CONNECT_FAILED`, `STORE_MIGRATION_FAILED`.
 *
 * @example
 * ```ts
 * const store = await openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir: process.env.DATABASE_URL ? undefined : 'data' });
 * console.log(store.kind, store.migrations);
 * ```
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<OpenedDatabase> {
  const { databaseUrl, dataDir, schema, logger } = options;
  const shouldMigrate = options.migrate ?? true;
  if (databaseUrl !== undefined && dataDir !== undefined) {
    throw new StoreError('STORE_INVALID_OPTIONS', 'Give either databaseUrl (Postgres) or dataDir (embedded PGlite), not both.');
  }
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StoreError('STORE_INVALID_OPTIONS', `Schema name ${JSON.stringify(schema)} must be 1–63 lowercase letters, digits or _, not starting with a digit.`);
  }
  const poolSize = options.poolSize ?? 10;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new StoreError('STORE_INVALID_OPTIONS', `poolSize must be a whole number ≥ 1, got ${poolSize}.`);
  }

  const kind: DatabaseKind = databaseUrl === undefined ? 'pglite' : 'postgres';
  const { db, query } = databaseUrl === undefined ? await openPglite(dataDir) : openPostgres(databaseUrl, poolSize, schema, logger);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= db.destroy());

  try {
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      throw new StoreError('STORE_CONNECT_FAILED', `Cannot reach the ${kind} database: ${messageOf(error)}`, { cause: error });
    }
    if (schema !== undefined) {
      if (shouldMigrate) await createSchema(db, schema);
      // Postgres connections get their search_path at startup (see openPostgres); PGlite has a
      // single session, so setting it once holds for every later query.
      if (kind === 'pglite') await sql`set search_path to ${sql.id(schema)}`.execute(db);
    }
    const applied = shouldMigrate ? await runMigrations(db, { logger }) : [];
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    const effectiveSchema = rows[0]?.schema;
    if (!effectiveSchema) {
      throw new StoreError('STORE_INVALID_OPTIONS', `Schema ${schema ?? '(default)'} does not exist; open once with migrate: true as its owner.`);
    }
    return Object.freeze({ db, query, kind, schema: effectiveSchema, migrations: applied, close });
  } catch (error) {
    await close();
    throw error;
  }
}

function openPostgres(databaseUrl: string, poolSize: number, schema: string | undefined, logger: StoreLogger | undefined): { db: Kysely<Database>; query: RawQuery } {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolSize,
    application_name: 'closed-loop',
    // A startup parameter rather than a SET after connecting: every pooled connection has it before
    // its first query, and a transaction rollback cannot undo it.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // Without a listener, an idle connection dropped by the server would crash the process.
  pool.on('error', (error) => logger?.warn({ err: error }, 'idle database connection failed'));
  const query: RawQuery = async (text, values, name) => {
    const r = await pool.query(name === undefined ? { text, values: [...values] } : { name, text, values: [...values] });
    return r.rows;
  };
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), query };
}

async function openPglite(dataDir: string | undefined): Promise<{ db: Kysely<Database>; query: RawQuery }> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
  const pglite = await PGlite.create({
    ...(dataDir === undefined ? {} : { dataDir }),
    parsers: { [INT8_OID]: (value: string) => value },
  });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  // PGlite is one connection; going through Kysely keeps raw statements in the same queue as the
  // dialect's, so they never interleave with a transaction in progress.
  const query: RawQuery = async <R extends Record<string, unknown>>(text: string, values: readonly (string | number | boolean | null)[]) => {
    const r = await db.executeQuery<R>(CompiledQuery.raw(text, [...values]));
    return r.rows;
  };
  return { db, query };
}

async function createSchema(db: Kysely<Database>, schema: string): Promise<void> {
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
  } catch (error) {
    // Two openers racing on IF NOT EXISTS can still collide on the catalog's unique index.
    if (sqlStateOf(error) !== '23505') throw error;
  }
}

function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}
