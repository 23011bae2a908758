// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

// Every table that grows with cases leads its primary key with case_id, so the schema can be
// distributed on case_id (Citus) and each event stays a single-shard transaction (DESIGN §3).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('definitions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().check(sql`version >= 1`))
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('compiled', 'jsonb', (c) => c.notNull())
    .addColumn('compiler_version', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('definitions_name_version_key', ['name', 'version'])
    .execute();

  await db.schema
    .createTable('org_units')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('parent_id', 'text', (c) => c.references('org_units.id'))
    .addColumn('level', 'text', (c) =>
      c.notNull().check(sql`level in ('prefecture', 'county', 'street', 'community', 'grid', 'department', 'co_building')`),
    )
    .addColumn('name', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('org_units_parent_idx').on('org_units').column('parent_id').execute();

  await db.schema
    .createTable('actors')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('phone', 'text')
    .execute();

  await db.schema
    .createTable('actor_roles')
    .addColumn('actor_id', 'text', (c) => c.notNull().references('actors.id'))
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('org_unit_id', 'text', (c) => c.notNull().references('org_units.id'))
    .addPrimaryKeyConstraint('actor_roles_pkey', ['actor_id', 'role', 'org_unit_id'])
    .execute();
  // "Who holds role R in unit U (or its ancestors)" is the authorization lookup.
  await db.schema.createIndex('actor_roles_unit_role_idx').on('actor_roles').columns(['org_unit_id', 'role']).execute();

  await db.schema
    .createTable('cases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('definition_id', 'text', (c) => c.notNull().references('definitions.id'))
    .addColumn('org_unit_id', 'text', (c) => c.notNull().references('org_units.id'))
    .addColumn('state', 'jsonb', (c) => c.notNull())
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('snapshot', 'jsonb', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0).check(sql`version >= 0`))
    .addColumn('head_hash', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('active').check(sql`status in ('active', 'done', 'error', 'stopped', 'archived')`),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // The ledger (台账) of a unit: its open or closed cases.
  await db.schema.createIndex('cases_unit_status_idx').on('cases').columns(['org_unit_id', 'status']).execute();
  await db.schema.createIndex('cases_definition_idx').on('cases').column('definition_id').execute();

  await db.schema
    .createTable('case_links')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('linked_case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('case_links_pkey', ['case_id', 'linked_case_id', 'kind'])
    .execute();
  await db.schema.createIndex('case_links_linked_idx').on('case_links').column('linked_case_id').execute();

  await db.schema
    .createTable('events')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('seq', 'integer', (c) => c.notNull().check(sql`seq >= 1`))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text')
    .addColumn('on_behalf_of', 'text')
    .addColumn('role', 'text')
    .addColumn('org_unit_id', 'text')
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addColumn('facts', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('resulting_state', 'jsonb', (c) => c.notNull())
    .addColumn('decision', 'jsonb')
    .addColumn('prev_hash', 'text')
    .addColumn('hash', 'text', (c) => c.notNull().check(sql`hash ~ '^[0-9a-f]{64}$'`))
    .addPrimaryKeyConstraint('events_pkey', ['case_id', 'seq'])
    // Only a case's first event starts the chain.
    .addCheckConstraint('events_chain_start_check', sql`(seq = 1) = (prev_hash is null)`)
    .execute();

  await db.schema
    .createTable('timers')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('timer_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('state', 'text', (c) =>
      c.notNull().defaultTo('scheduled').check(sql`state in ('scheduled', 'claimed', 'fired', 'cancelled')`),
    )
    .addColumn('claimed_by', 'text')
    .addColumn('claimed_until', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('timers_pkey', ['case_id', 'timer_id'])
    .addCheckConstraint('timers_claim_check', sql`(state = 'claimed') = (claimed_until is not null)`)
    .execute();
  // The due-timer poller: `where state = 'scheduled' and due_at <= $now order by due_at ... for
  // update skip locked`, and the sweep of claims whose holder died. Partial, so fired and
  // cancelled timers cost the pollers nothing.
  await db.schema.createIndex('timers_due_idx').on('timers').column('due_at').where(sql.ref('state'), '=', 'scheduled').execute();
  await db.schema
    .createIndex('timers_claim_expiry_idx')
    .on('timers')
    .column('claimed_until')
    .where(sql.ref('state'), '=', 'claimed')
    .execute();

  await db.schema
    .createTable('outbox')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('effect_no', 'integer', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending').check(sql`status in ('pending', 'delivered', 'dead')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addPrimaryKeyConstraint('outbox_pkey', ['case_id', 'seq', 'effect_no'])
    .execute();
  // The outbox poller: pending effects whose next attempt is due; a claim pushes next_attempt_at
  // forward as a lease.
  await db.schema
    .createIndex('outbox_due_idx')
    .on('outbox')
    .column('next_attempt_at')
    .where(sql.ref('status'), '=', 'pending')
    .execute();

  // No foreign key to cases: a refused "start case" request is remembered under the id the
  // client chose even though no case row was ever written.
  await db.schema
    .createTable('idempotency_keys')
    .addColumn('case_id', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('response', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('idempotency_keys_pkey', ['case_id', 'actor_id', 'key'])
    .execute();
  // Expiry sweeps delete old keys by age.
  await db.schema.createIndex('idempotency_keys_created_idx').on('idempotency_keys').column('created_at').execute();

  await db.schema
    .createTable('points_ledger')
    .addColumn('case_id', 'text', (c) => c.notNull().references('cases.id'))
    .addColumn('entry_no', 'integer', (c) => c.notNull().check(sql`entry_no >= 1`))
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('points', 'numeric', (c) => c.notNull())
    .addColumn('hours', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('event_seq', 'integer')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('points_ledger_pkey', ['case_id', 'entry_no'])
    .execute();
  // A member's balance and history.
  await db.schema.createIndex('points_ledger_actor_idx').on('points_ledger').columns(['actor_id', 'created_at']).execute();

  await db.schema
    .createTable('archive_tombstones')
    .addColumn('case_id', 'text', (c) => c.primaryKey())
    .addColumn('head_hash', 'text', (c) => c.notNull())
    .addColumn('event_count', 'integer', (c) => c.notNull())
    .addColumn('archived_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('archived_by', 'text', (c) => c.notNull().defaultTo(sql`session_user`))
    .execute();
}
