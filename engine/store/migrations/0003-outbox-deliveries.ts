// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // When an effect gave up, so an operator sees how long it has waited in the dead-letter list.
  await db.schema.alterTable('outbox').addColumn('dead_at', 'timestamptz').execute();
  // The dead-letter list, read by operators a page at a time in key order; partial, so delivered
  // effects cost it nothing.
  await db.schema
    .createIndex('outbox_dead_idx')
    .on('outbox')
    .columns(['case_id', 'seq', 'effect_no'])
    .where(sql.ref('status'), '=', 'dead')
    .execute();

  // Delivered notify/escalated/reassigned/missed effects: the inbox of a person, or of a role in a
  // unit. Keyed by the outbox row that produced it (one effect may reach several units, hence
  // recipient_no), so a redelivered effect cannot notify twice; led by case_id like every table
  // that grows with cases (DESIGN §3).
  await db.schema
    .createTable('notifications')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('effect_no', 'integer', (c) => c.notNull())
    .addColumn('recipient_no', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('role', 'text')
    .addColumn('org_unit_id', 'text')
    .addColumn('person_id', 'text')
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('notifications_pkey', ['case_id', 'seq', 'effect_no', 'recipient_no'])
    .execute();
  // A person's inbox, and a unit's inbox by role, newest first.
  await db.schema.createIndex('notifications_person_idx').on('notifications').columns(['person_id', 'created_at']).execute();
  await db.schema.createIndex('notifications_unit_role_idx').on('notifications').columns(['org_unit_id', 'role', 'created_at']).execute();
}
