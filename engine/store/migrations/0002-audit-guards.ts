// Frozen once released: change the schema with a new numbered migration, never by editing this one.
// Imports nothing but kysely, and uses only SQL that Postgres 15 has. Each statement is executed
// on its own because PGlite runs parameterless queries through the extended protocol too, which
// accepts a single statement only.
//
// SQLSTATEs raised here (class WF is unused by Postgres; engine/store/errors.ts mirrors them):
//   WFA01 events are append-only      WFA02 definitions are immutable
//   WFA03 archive: head hash mismatch WFA04 archive: nothing to archive  WFA05 archive: chain gap
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The only rows that may ever be deleted are those of a case archive_case() has tombstoned in
  // the same transaction or before; the application role has no DELETE privilege on events and no
  // INSERT privilege on tombstones, so it cannot take this path by itself.
  await sql`
    CREATE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM archive_tombstones WHERE case_id = OLD.case_id) THEN
          RETURN OLD;
        END IF;
      END IF;
      RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'WFA01',
              HINT = 'Record a correcting event instead; a case''s history is removed only by archive_case().';
    END
    $fn$`.execute(db);
  await sql`
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change()`.execute(db);
  await sql`
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change()`.execute(db);

  await sql`
    CREATE FUNCTION refuse_definition_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      RAISE EXCEPTION 'definitions are immutable: % refused', TG_OP
        USING ERRCODE = 'WFA02',
              HINT = 'Deploy the changed workflow as a new version; running cases stay on theirs.';
    END
    $fn$`.execute(db);
  await sql`
    CREATE TRIGGER definitions_immutable BEFORE UPDATE OR DELETE ON definitions
    FOR EACH ROW EXECUTE FUNCTION refuse_definition_change()`.execute(db);
  await sql`
    CREATE TRIGGER definitions_no_truncate BEFORE TRUNCATE ON definitions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_definition_change()`.execute(db);

  // ALWAYS: the guards also fire under session_replication_role = replica, the usual way bulk
  // loads skip triggers, in case that setting is ever granted to a non-superuser (PG 15 allows it).
  for (const [table, trigger] of [
    ['events', 'events_append_only'],
    ['events', 'events_no_truncate'],
    ['definitions', 'definitions_immutable'],
    ['definitions', 'definitions_no_truncate'],
  ] as const) {
    await sql`ALTER TABLE ${sql.table(table)} ENABLE ALWAYS TRIGGER ${sql.id(trigger)}`.execute(db);
  }

  // The one way to remove history: the caller proves it holds a verified export by naming the
  // head hash it verified; the case's events go and a tombstone keeps that hash. Runs as the
  // owner (SECURITY DEFINER), so the application role needs EXECUTE only.
  await sql`
    CREATE FUNCTION archive_case(p_case_id text, p_verified_head_hash text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER AS $fn$
    DECLARE
      v_head text;
      v_last_seq integer;
      v_count integer;
    BEGIN
      -- Every event write also updates its case row, so holding that row keeps the history still.
      PERFORM 1 FROM cases WHERE id = p_case_id FOR UPDATE;
      IF EXISTS (SELECT 1 FROM archive_tombstones WHERE case_id = p_case_id) THEN
        RAISE EXCEPTION 'case % is already archived', p_case_id USING ERRCODE = 'WFA04';
      END IF;
      SELECT hash, seq INTO v_head, v_last_seq FROM events WHERE case_id = p_case_id ORDER BY seq DESC LIMIT 1;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'case % has no events to archive', p_case_id USING ERRCODE = 'WFA04';
      END IF;
      IF p_verified_head_hash IS DISTINCT FROM v_head THEN
        RAISE EXCEPTION 'case %: the given head hash is not the stored head hash', p_case_id
          USING ERRCODE = 'WFA03',
                DETAIL = format('stored %s, given %s', v_head, p_verified_head_hash),
                HINT = 'Export and verify the case again, then archive with the head hash that verification reported.';
      END IF;
      SELECT count(*) INTO v_count FROM events WHERE case_id = p_case_id;
      IF v_count <> v_last_seq THEN
        RAISE EXCEPTION 'case %: % events but the last is number %; the history has a gap', p_case_id, v_count, v_last_seq
          USING ERRCODE = 'WFA05';
      END IF;
      INSERT INTO archive_tombstones (case_id, head_hash, event_count) VALUES (p_case_id, v_head, v_count);
      DELETE FROM events WHERE case_id = p_case_id;
      DELETE FROM timers WHERE case_id = p_case_id;
      UPDATE cases SET status = 'archived', updated_at = now() WHERE id = p_case_id;
      RETURN v_count;
    END
    $fn$`.execute(db);
  await sql`REVOKE ALL ON FUNCTION archive_case(text, text) FROM PUBLIC`.execute(db);

  // Functions that read tables resolve names in this schema only, with pg_temp last: otherwise a
  // caller could shadow archive_tombstones with a temporary table and pass the delete guard.
  await sql`
    DO $do$
    BEGIN
      EXECUTE format('ALTER FUNCTION refuse_event_change() SET search_path = %I, pg_temp', current_schema());
      EXECUTE format('ALTER FUNCTION archive_case(text, text) SET search_path = %I, pg_temp', current_schema());
    END
    $do$`.execute(db);
}
