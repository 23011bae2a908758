// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Every read of a case's personal data (a resident's name, phone number) shown unmasked: who,
  // when, which fields, through which route. Led by case_id like every table that grows with
  // cases (DESIGN §3); read_at before read_id so a case's log pages in time order. The application
  // role may only insert and select (engine/store/roles.ts), so a reader cannot erase the trace.
  await db.schema
    .createTable('personal_data_reads')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('read_at', 'timestamptz', (c) => c.notNull())
    .addColumn('read_id', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('fields', 'jsonb', (c) => c.notNull())
    .addColumn('route', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text')
    .addPrimaryKeyConstraint('personal_data_reads_pkey', ['case_id', 'read_at', 'read_id'])
    .execute();
}
