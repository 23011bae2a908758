// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has. Each statement is executed
// on its own (PGlite runs parameterless queries through the extended protocol too).
//
// SQLSTATE raised here (engine/store/errors.ts mirrors it): WFA06 cases are not truncated.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Every event and outbox row is written by the engine's one batch statement, which inserts them
  // only for the case rows it has just updated (engine/store/cases.ts), and the application's role
  // may not delete a case. The foreign keys to `cases` therefore guarded nothing the statement
  // does not, and cost every event two referential-integrity checks (a query each, and a row lock
  // written to the WAL): about 8% of Postgres's CPU per event in bench:engine.
  await sql`ALTER TABLE events DROP CONSTRAINT IF EXISTS events_case_id_fkey`.execute(db);
  await sql`ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_case_id_fkey`.execute(db);

  // With the foreign key, `TRUNCATE cases CASCADE` reached the events and was refused there; without
  // it, it would empty every case's current state and leave the histories behind. Refused here
  // instead, for the owner too (statement-level: nothing runs per row).
  await sql`
    CREATE FUNCTION refuse_case_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      RAISE EXCEPTION 'cases are not truncated: % refused', TG_OP
        USING ERRCODE = 'WFA06',
              HINT = 'A case''s row is the state its history leads to; close or archive cases instead.';
    END
    $fn$`.execute(db);
  await sql`
    CREATE TRIGGER cases_no_truncate BEFORE TRUNCATE ON cases
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_case_truncate()`.execute(db);
  await sql`ALTER TABLE cases ENABLE ALWAYS TRIGGER cases_no_truncate`.execute(db);
}
