/**
 * `wf audit`: verifies the hash chain of every case in a database and replays every log through
 * its stored definitions, with progress on stderr and the first problem of each failing case on
 * stdout (all of them with `--json`). Read-only: it applies no migrations and writes nothing, so
 * it may run against a replica.
 *
 *   wf audit [--workflow NAME] [--database-url URL] [--schema S] [--data-dir DIR] [--workers N] [--json]
 *
 * The database: `--database-url` (else DATABASE_URL) with `--schema` (else DATABASE_SCHEMA), or
 * the embedded one `npm start` keeps in `--data-dir` (else DATA_DIR, else ./data). Exit 0 when
 * every case verifies and replays, 1 when one does not, 2 when the audit cannot run.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { AuditProgress, BulkAuditResult } from '../engine/audit.ts';
import type { OpenedDatabase } from '../engine/store/index.ts';

/** What the audit needs from the command line and the environment. */
export interface AuditArgs {
  readonly workflow?: string;
  readonly databaseUrl?: string;
  readonly schema?: string;
  readonly dataDir?: string;
  readonly workers?: number;
  readonly json: boolean;
}

export interface AuditIo {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly cwd: string;
}

/** A reason the audit cannot run (exit 2), said in full. */
export class AuditSetupError extends Error {}

/** Worker threads pay for themselves from about this many cases (a thread takes half a second to two seconds to start). */
const WORKERS_FROM_CASES = 5_000;
/** Problems listed on stdout per check; `--json` gives all. */
const LISTED = 50;

const n = (x: number): string => x.toLocaleString('en-US');

async function open(args: AuditArgs, io: AuditIo): Promise<{ store: OpenedDatabase; where: string }> {
  const { openDatabase } = await import('../engine/store/index.ts');
  if (args.databaseUrl !== undefined) {
    let store: OpenedDatabase | undefined;
    try {
      store = await openDatabase({ databaseUrl: args.databaseUrl, migrate: false, poolSize: 4, writers: 1, ...(args.schema === undefined ? {} : { schema: args.schema }) });
      await store.query('select 1 from cases limit 1', []);
    } catch (e) {
      await store?.close();
      throw new AuditSetupError(`Cannot audit the Postgres database at --database-url${args.schema === undefined ? '' : `, schema ${args.schema}`}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { store, where: `Postgres, schema ${store.schema}` };
  }
  const dir = path.resolve(io.cwd, args.dataDir ?? 'data');
  const pglite = path.join(dir, 'pglite');
  if (!existsSync(pglite)) {
    throw new AuditSetupError(`No database in ${pglite}: give --database-url (or DATABASE_URL), or --data-dir where \`npm start\` keeps its data (DATA_DIR).`);
  }
  try {
    return { store: await openDatabase({ dataDir: pglite, migrate: false }), where: `PGlite in ${pglite}` };
  } catch (e) {
    // Typically STORE_IN_USE: the server has it open (PGlite is one process's).
    throw new AuditSetupError(`Cannot audit the embedded database in ${pglite}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function caseIds(store: OpenedDatabase, workflow: string | undefined): Promise<string[]> {
  if (workflow !== undefined) {
    const known = await store.query<{ name: string }>('select distinct name from definitions order by name', []);
    if (!known.some((d) => d.name === workflow)) {
      throw new AuditSetupError(`No workflow named ${workflow} is deployed here${known.length === 0 ? '' : `; deployed: ${known.map((d) => d.name).join(', ')}`}.`);
    }
  }
  const rows = await store.query<{ id: string }>(
    `select c.id from cases c join definitions d on d.id = c.definition_id
      where $1::text is null or d.name = $1 order by c.created_at, c.id`, [workflow ?? null]);
  return rows.map((r) => r.id);
}

/** Progress lines on stderr: at most one a second, and always the last. */
function progress(io: AuditIo, label: string, total: number): (p: AuditProgress) => void {
  let shown = 0;
  return (p) => {
    const now = Date.now();
    if (p.cases < total && now - shown < 1000) return;
    shown = now;
    io.err(`${label}: ${n(p.cases)}/${n(total)} cases, ${n(p.events)} events`);
  };
}

function report(io: AuditIo, r: BulkAuditResult): void {
  if (r.problems.length === 0) io.out(`verify: ${n(r.cases)} cases, every chain intact`);
  else {
    io.out(`verify: ${n(r.problems.length)} of ${n(r.cases)} cases fail`);
    for (const p of r.problems.slice(0, LISTED)) io.out(`  ${p.caseId}: event ${p.firstBadSeq} ${p.problem}: ${p.message}`);
  }
  if (r.mismatches.length === 0) io.out(`replay: ${n(r.cases)} cases, every state reproduced`);
  else {
    io.out(`replay: ${n(r.mismatches.length)} of ${n(r.cases)} cases fail`);
    for (const m of r.mismatches.slice(0, LISTED)) io.out(`  ${m.caseId}: event ${m.firstBadSeq}: ${m.message}`);
  }
  const more = Math.max(0, r.problems.length - LISTED) + Math.max(0, r.mismatches.length - LISTED);
  if (more > 0) io.out(`… and ${n(more)} more (--json lists them all)`);
}

/**
 * Runs the audit and returns its exit code.
 * @throws {AuditSetupError} when there is no database to audit or no such workflow.
 * @example process.exitCode = await audit({ json: false }, { out: console.log, err: console.error, cwd: process.cwd() });
 */
export async function audit(args: AuditArgs, io: AuditIo): Promise<number> {
  const { store, where } = await open(args, io);
  try {
    const ids = await caseIds(store, args.workflow);
    io.err(`wf audit: ${n(ids.length)} cases${args.workflow === undefined ? '' : ` of ${args.workflow}`} (${where})`);
    const { auditCases } = await import('../engine/audit.ts');
    const { definitionLoader } = await import('../engine/definitions.ts');
    const workers = args.workers ?? (store.kind === 'postgres' && ids.length >= WORKERS_FROM_CASES ? availableParallelism() : 0);
    // On threads, batches of at most 100 cases (each thread takes the next when it has room, and
    // holds two at a time), small enough that every thread gets some; here, 500 per query.
    const batchSize = workers > 1 ? Math.max(1, Math.min(100, Math.ceil(ids.length / workers))) : 500;
    // Each batch read once: its chains verified and its logs replayed through the stored definitions.
    const r = await auditCases({ store, loadDefinition: definitionLoader(store) }, ids, { workers, batchSize, onProgress: progress(io, 'audit', ids.length) });
    if (args.json) {
      io.out(JSON.stringify({
        cases: r.cases, events: r.events,
        verify: { ok: r.verified, problems: r.problems },
        replay: { ok: r.ok, mismatches: r.mismatches },
      }));
    } else {
      report(io, r);
    }
    return r.problems.length === 0 && r.mismatches.length === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}
