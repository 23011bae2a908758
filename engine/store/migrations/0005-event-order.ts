// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The id of the transaction that wrote each event: with (case_id, seq) it orders every event of
  // every case, so live readers (server-sent events, long-polls) in any server process follow all
  // cases from one resumable position (engine/store/changes.ts says why reading by it never skips
  // an event that commits late). Filled by a default, so the event statement is unchanged and no
  // trigger runs per event. Added first without a default so that existing rows stay NULL (before
  // every position) and the table is not rewritten.
  await db.schema.alterTable('events').addColumn('tx', 'bigint').execute();
  await sql`ALTER TABLE events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text)::bigint`.execute(db);
  // Readers only ask for the tail ("tx after this one"), and rows arrive in roughly tx order at
  // the end of the heap: a BRIN index answers that at almost no cost per insert, where a b-tree
  // would add an index entry (and a hot right-hand leaf page) to every event written.
  // autosummarize keeps filled page ranges summarized, so the unsummarized tail a reader must scan
  // stays short.
  await sql`CREATE INDEX events_tx_brin ON events USING brin (tx) WITH (pages_per_range = 32, autosummarize = on)`.execute(db);
}
