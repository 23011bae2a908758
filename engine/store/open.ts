import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import { isStatementError, StoreError, sqlStateOf } from './errors.ts';
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
  /**
   * Postgres only: connections kept for {@link OpenedDatabase.write}, beyond `poolSize`, opened
   * when first needed (default 4: the engine's group-commit statements in flight, 2 by default and
   * 1 in the HTTP service, and the case starts, which are written one statement each).
   */
  readonly writers?: number;
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
  /**
   * Like `query`, for the engine's event writes: on Postgres each runs on a connection of its own
   * that is sent the statement at once, without a turn of the event loop, so a write leaves while
   * the process goes on computing the next ones (a pooled checkout waits for the loop to come
   * round). Statements wait in order when every writer is busy. On PGlite it is `query`.
   */
  readonly write: RawQuery;
  readonly kind: DatabaseKind;
  /**
   * Postgres: the connection string the store was opened with, so other threads can open their
   * own connections to the same tables (bulk replay does); null on PGlite, which lives in this
   * thread alone.
   */
  readonly connectionString: string | null;
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
  const writers = options.writers ?? 4;
  if (!Number.isSafeInteger(writers) || writers < 1) {
    throw new StoreError('STORE_INVALID_OPTIONS', `writers must be a whole number ≥ 1, got ${writers}.`);
  }
  const { db, query, write, endWriters, release } = databaseUrl === undefined ? await openPglite(dataDir) : openPostgres(databaseUrl, poolSize, writers, schema, logger);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= endWriters().then(() => db.destroy()).finally(() => release?.()));

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
      throw new StoreError('STORE_INVALID_OPTIONS', `Schema ${schema ?? '(default)'} does not exist: check its name, or create it by opening the store once as its owner with migrations on (\`npm start\` does).`);
    }
    return Object.freeze({ db, query, write, kind, connectionString: databaseUrl ?? null, schema: effectiveSchema, migrations: applied, close });
  } catch (error) {
    await close();
    throw error;
  }
}

interface Opened {
  readonly db: Kysely<Database>;
  readonly query: RawQuery;
  readonly write: RawQuery;
  endWriters(): Promise<void>;
  /** Gives back what the store holds beyond its connections (PGlite's data-directory lock). */
  release?(): Promise<void>;
}

function openPostgres(databaseUrl: string, poolSize: number, writers: number, schema: string | undefined, logger: StoreLogger | undefined): Opened {
  const config: pg.ClientConfig = {
    connectionString: databaseUrl,
    application_name: 'closed-loop',
    // A startup parameter rather than a SET after connecting: every pooled connection has it before
    // its first query, and a transaction rollback cannot undo it.
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  };
  const pool = new pg.Pool({ ...config, max: poolSize });
  // Without a listener, an idle connection dropped by the server would crash the process.
  pool.on('error', (error) => logger?.warn({ err: error }, 'idle database connection failed'));
  const query: RawQuery = async (text, values, name) => {
    const r = await pool.query(name === undefined ? { text, values: [...values] } : { name, text, values: [...values] });
    return r.rows;
  };
  // The writers run only the engine's case-keyed statements, whose every table access is by a key
  // that leads with the case id. Their plans are generic (prepared once per connection), and a
  // generic plan guesses the batch at 100 rows, so on a small table it would scan every case to
  // update a few; an index is always right for them.
  const writerOptions = `${schema === undefined ? '' : `-c search_path=${schema} `}-c enable_seqscan=off`;
  const lane = new WriterLane({ ...config, options: writerOptions }, writers, logger);
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), query, write: (text, values, name) => lane.run(text, values, name), endWriters: () => lane.end() };
}

interface Waiting {
  readonly text: string;
  readonly values: readonly (string | number | boolean | null)[];
  readonly name: string | undefined;
  readonly resolve: (rows: readonly Record<string, unknown>[]) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * A few connections of their own for the engine's writes. A statement given to an idle one is
 * written to its socket before `run` returns; `pg.Pool` would hand the connection over on the next
 * tick, after every callback of this turn has run, so batches computed together would leave
 * together and the database would idle while the process computes. A connection that fails is
 * dropped, and the next statement opens a fresh one.
 */
class WriterLane {
  private readonly idle: pg.Client[] = [];
  private readonly all = new Set<pg.Client>();
  private readonly waiting: Waiting[] = [];
  private opening = 0;
  private ended = false;

  constructor(private readonly config: pg.ClientConfig, private readonly size: number, private readonly logger: StoreLogger | undefined) {}

  run<R extends Record<string, unknown>>(text: string, values: readonly (string | number | boolean | null)[], name: string | undefined): Promise<readonly R[]> {
    if (this.ended) return Promise.reject(new Error('Cannot use a pool after calling end on the pool'));
    const client = this.idle.pop();
    if (client !== undefined) return this.send(client, text, values, name) as Promise<readonly R[]>;
    return new Promise<readonly Record<string, unknown>[]>((resolve, reject) => {
      this.waiting.push({ text, values, name, resolve, reject });
      if (this.all.size + this.opening < this.size) void this.open();
    }) as Promise<readonly R[]>;
  }

  private async send(client: pg.Client, text: string, values: readonly (string | number | boolean | null)[], name: string | undefined): Promise<readonly Record<string, unknown>[]> {
    try {
      const r = await client.query(name === undefined ? { text, values: [...values] } : { name, text, values: [...values] });
      this.release(client);
      return r.rows;
    } catch (e) {
      // A statement the server refused leaves the connection usable; a lost one does not.
      if (isStatementError(e)) this.release(client);
      else this.drop(client);
      throw e;
    }
  }

  private release(client: pg.Client): void {
    const next = this.waiting.shift();
    if (next === undefined) {
      this.idle.push(client);
      return;
    }
    this.send(client, next.text, next.values, next.name).then(next.resolve, next.reject);
  }

  private drop(client: pg.Client): void {
    this.all.delete(client);
    const i = this.idle.indexOf(client);
    if (i >= 0) this.idle.splice(i, 1);
    client.end().catch(() => undefined);
    if (this.waiting.length > 0 && !this.ended && this.all.size + this.opening < this.size) void this.open();
  }

  private async open(): Promise<void> {
    this.opening++;
    const client = new pg.Client(this.config);
    client.on('error', (error) => {
      this.logger?.warn({ err: error }, 'database write connection failed');
      this.drop(client);
    });
    try {
      await client.connect();
    } catch (e) {
      this.opening--;
      // Nothing to write on: the statements waiting fail as a pooled query would.
      for (const w of this.waiting.splice(0)) w.reject(e);
      return;
    }
    this.opening--;
    if (this.ended) {
      await client.end().catch(() => undefined);
      return;
    }
    this.all.add(client);
    this.release(client);
  }

  async end(): Promise<void> {
    this.ended = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('Cannot use a pool after calling end on the pool'));
    const clients = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

async function openPglite(dataDir: string | undefined): Promise<Opened> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
  const release = dataDir === undefined ? async () => undefined : await lockDataDir(dataDir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({
      ...(dataDir === undefined ? {} : { dataDir }),
      parsers: { [INT8_OID]: (value: string) => value },
    });
  } catch (error) {
    await release();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  // PGlite is one connection; going through Kysely keeps raw statements in the same queue as the
  // dialect's, so they never interleave with a transaction in progress.
  const query: RawQuery = async <R extends Record<string, unknown>>(text: string, values: readonly (string | number | boolean | null)[]) => {
    const r = await db.executeQuery<R>(CompiledQuery.raw(text, [...values]));
    return r.rows;
  };
  return { db, query, write: query, endWriters: async () => undefined, release };
}

/**
 * Takes the data directory for this process: PGlite is one connection in one process, and a
 * second process (or a second store in this one) opening the same directory would corrupt it.
 * The lock is a file beside the directory holding the process id; one left by a process that no
 * longer runs (a crash) is taken over. Returns the function that gives it back.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lock = `${dataDir.replace(/[\\/]+$/, '')}.lock`;
  const mine = String(process.pid);
  // Twice at most: once more after clearing a lock left by a process that is gone.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, mine, { flag: 'wx' });
      lockedHere.add(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    // Our own pid in a lock we did not take is a previous run's (a container restarts with the same pids).
    const held = holder === process.pid ? lockedHere.has(lock) : Number.isSafeInteger(holder) && holder > 0 && processRuns(holder);
    if (held || attempt > 0) {
      const who = holder === process.pid ? 'this process already' : Number.isSafeInteger(holder) && holder > 0 ? `process ${holder}` : 'another process';
      throw new StoreError('STORE_IN_USE', `The embedded database in ${dataDir} is open in ${who} (a running \`npm start\`?). `
        + `Stop that first: PGlite is one connection in one process, and two openers would corrupt it. If no such process runs, delete ${lock}.`);
    }
    await rm(lock, { force: true }); // left by a process that is gone
  }
  return async () => {
    lockedHere.delete(lock);
    if ((await readFile(lock, 'utf8').catch(() => '')).trim() === mine) await rm(lock, { force: true });
  };
}

/** The data-directory locks this process holds. */
const lockedHere = new Set<string>();

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
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
