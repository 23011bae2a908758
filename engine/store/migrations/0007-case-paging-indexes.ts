// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The case ledger pages newest first and the inbox oldest first, both by (created_at, id) from a
  // cursor: with these a page reads its rows off an index from the cursor on and stops at the
  // limit, instead of sorting every case for each page (100,000 cases: 0.2-2 s a page, and an
  // inbox with nothing to offer read the table once per hundred cases). The inbox only looks at
  // active cases, hence the partial one. Neither column changes when an event is applied (status
  // was indexed already), so the case row's update stays a heap-only one.
  // IF NOT EXISTS: CREATE INDEX blocks writes to cases while it runs, so an operator with many
  // cases may build them first with CREATE INDEX CONCURRENTLY under these names (docs/engine.md).
  await sql`CREATE INDEX IF NOT EXISTS cases_created_idx ON cases (created_at, id)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS cases_active_created_idx ON cases (created_at, id) WHERE status = 'active'`.execute(db);
}
