import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { SQLSTATE, StoreError, sqlStateOf } from './errors.ts';
import type { Database } from './tables.ts';

/**
 * Removes a case's events (and pending timers) through the database's guarded `archive_case`
 * function, which first checks that `verifiedHeadHash` is the hash of the case's last stored
 * event and then leaves a tombstone with that hash and the event count; the case's status
 * becomes `archived`. Call it only after exporting the history and verifying the export's chain.
 *
 * @throws {StoreError} `STORE_ARCHIVE_HEAD_MISMATCH` (nothing removed), `STORE_ARCHIVE_NOTHING`
 *   (no events, or archived already), `STORE_ARCHIVE_CHAIN_GAP` (the stored history has a gap).
 *
 * @example
 * ```ts
 * const { eventCount } = await archiveCase(db, 'case-42', verified.headHash);
 * ```
 */
export async function archiveCase(db: Kysely<Database>, caseId: string, verifiedHeadHash: string): Promise<{ readonly eventCount: number }> {
  try {
    const { rows } = await sql<{ event_count: number }>`select archive_case(${caseId}::text, ${verifiedHeadHash}::text) as event_count`.execute(db);
    return { eventCount: rows[0]?.event_count ?? 0 };
  } catch (error) {
    const code = ARCHIVE_ERRORS[sqlStateOf(error) ?? ''];
    if (code === undefined) throw error;
    throw new StoreError(code, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

const ARCHIVE_ERRORS: Readonly<Record<string, 'STORE_ARCHIVE_HEAD_MISMATCH' | 'STORE_ARCHIVE_NOTHING' | 'STORE_ARCHIVE_CHAIN_GAP'>> = {
  [SQLSTATE.archiveHeadMismatch]: 'STORE_ARCHIVE_HEAD_MISMATCH',
  [SQLSTATE.archiveNothing]: 'STORE_ARCHIVE_NOTHING',
  [SQLSTATE.archiveChainGap]: 'STORE_ARCHIVE_CHAIN_GAP',
};
