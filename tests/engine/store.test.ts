import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, chainHash } from '../../engine/hash.ts';
import { SQLSTATE, StoreError, archiveCase, migrate, openDatabase } from '../../engine/store/index.ts';
import type { OpenedDatabase, StoreErrorCode } from '../../engine/store/index.ts';
import { backend, openTestDatabase, seedCase, seedReferenceData, sqlStateOfRejection } from './support.ts';

async function storeErrorCode(promise: Promise<unknown>): Promise<StoreErrorCode | string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof StoreError ? error.code : `not a StoreError: ${String(error)}`;
  }
  return 'no error';
}

describe('openDatabase options', () => {
  it.each<[string, Parameters<typeof openDatabase>[0], StoreErrorCode]>([
    ['both a URL and a data directory', { databaseUrl: 'postgres://127.0.0.1/x', dataDir: 'data' }, 'STORE_INVALID_OPTIONS'],
    ['a schema name that needs quoting', { databaseUrl: 'postgres://127.0.0.1/x', schema: 'Bad-Name' }, 'STORE_INVALID_OPTIONS'],
    ['a pool of zero', { databaseUrl: 'postgres://127.0.0.1/x', poolSize: 0 }, 'STORE_INVALID_OPTIONS'],
    ['an unreachable server', { databaseUrl: 'postgres://postgres@127.0.0.1:1/none' }, 'STORE_CONNECT_FAILED'],
  ])('refuses %s', async (_name, options, code) => {
    expect(await storeErrorCode(openDatabase(options))).toBe(code);
  });
});

describe(`store on ${backend}`, () => {
  let store: OpenedDatabase;

  beforeAll(async () => {
    store = await openTestDatabase();
    await seedReferenceData(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  describe('migrations', () => {
    it('are applied on open, with their bookkeeping in the store schema', async () => {
      expect(store.kind).toBe(backend);
      expect(store.migrations).toEqual(['0001-core-tables', '0002-audit-guards', '0003-outbox-deliveries', '0004-personal-data-reads', '0005-event-order', '0006-history-writes-without-foreign-keys', '0007-case-paging-indexes', '0008-hash-check-without-regex']);
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables
        where table_schema = ${store.schema} and table_name like 'kysely_migration%' order by table_name`.execute(store.db);
      expect(tables.rows.map((row) => row.table_name)).toEqual(['kysely_migration', 'kysely_migration_lock']);
    });

    it('are idempotent: migrating again applies nothing', async () => {
      expect(await migrate(store.db)).toEqual([]);
    });

    it('keep the paging indexes an operator built beforehand without blocking (migration 0007 creates them if not exists)', async () => {
      await sql`drop index cases_created_idx`.execute(store.db);
      await sql`drop index cases_active_created_idx`.execute(store.db);
      // The migrations after it are taken back too (Kysely runs them in order); they run again.
      await sql`delete from kysely_migration where name >= '0007-case-paging-indexes'`.execute(store.db);
      // As docs/engine.md tells an operator to, outside any transaction.
      await store.query('create index concurrently cases_created_idx on cases (created_at, id)', []);
      await store.query("create index concurrently cases_active_created_idx on cases (created_at, id) where status = 'active'", []);
      expect(await migrate(store.db)).toEqual(['0007-case-paging-indexes', '0008-hash-check-without-regex']);
      const { rows } = await sql<{ indexname: string }>`
        select indexname from pg_indexes where schemaname = ${store.schema} and tablename = 'cases' and indexname like 'cases_%created_idx' order by 1`.execute(store.db);
      expect(rows.map((r) => r.indexname)).toEqual(['cases_active_created_idx', 'cases_created_idx']);
    });

    it.each([
      ['upper-case hex', 'A'.repeat(64), '23514'],
      ['63 digits', '0'.repeat(63), '23514'],
      ['65 digits', '0'.repeat(65), '23514'],
      ['a non-hex letter', `${'0'.repeat(63)}g`, '23514'],
      ['a space', ` ${'0'.repeat(63)}`, '23514'],
      ['a full-width digit', `${'0'.repeat(63)}０`, '23514'],
      ['64 lowercase hex digits', `${'0123456789abcdef'.repeat(4)}`, undefined],
    ])('hold an event hash to 64 lowercase hex digits without a regex (migration 0008): %s', async (_name, hash, state) => {
      const insert = sql`insert into events (case_id, seq, type, recorded_at, resulting_state, hash)
        values (${`hash-rule-${hash.length}-${hash.slice(-1)}-${_name}`}, 1, 'start', now(), '{}'::jsonb, ${hash})`;
      expect(await sqlStateOfRejection(insert.execute(store.db))).toBe(state);
      const { rows } = await sql<{ def: string }>`
        select pg_get_constraintdef(k.oid) as def from pg_constraint k join pg_namespace n on n.oid = k.connamespace
        where k.conname = 'events_hash_check' and n.nspname = ${store.schema}`.execute(store.db);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.def).not.toContain('~');
    });

    it('leave the history tables without foreign keys to cases (migration 0006): the batch statement writes their rows only with the case row it updates', async () => {
      const { rows } = await sql<{ rel: string }>`
        select c.relname as rel from pg_constraint k
        join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where k.contype = 'f' and n.nspname = ${store.schema} and k.confrelid = (select oid from pg_class where relname = 'cases' and relnamespace = n.oid)
        order by 1`.execute(store.db);
      const referencing = rows.map((r) => r.rel);
      expect(referencing).not.toContain('events');
      expect(referencing).not.toContain('outbox');
      // The others keep theirs: none is written on every event.
      expect(referencing).toEqual(['case_links', 'case_links', 'notifications', 'personal_data_reads', 'points_ledger', 'timers']);
    });

    it('lead the key of every table that grows with cases with case_id (DESIGN §3 scale-out)', async () => {
      const { rows } = await sql<{ table_name: string; first_column: string }>`
        select c.relname as table_name, a.attname as first_column
        from pg_index i
        join pg_class c on c.oid = i.indrelid
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
        where i.indisprimary and n.nspname = ${store.schema}
        order by c.relname`.execute(store.db);
      const firstKeyColumn = Object.fromEntries(rows.map((row) => [row.table_name, row.first_column]));
      for (const table of ['events', 'timers', 'outbox', 'idempotency_keys', 'points_ledger', 'case_links', 'archive_tombstones']) {
        expect(firstKeyColumn[table], table).toBe('case_id');
      }
      expect(firstKeyColumn.cases).toBe('id');
    });

    it.each([
      ['due-timer poller', 'timers_due_idx', sql`select case_id, timer_id from timers where state = 'scheduled' and due_at <= now() order by due_at limit 50 for update skip locked`],
      ['expired-claim sweep', 'timers_claim_expiry_idx', sql`select case_id, timer_id from timers where state = 'claimed' and claimed_until < now() limit 50 for update skip locked`],
      ['outbox poller', 'outbox_due_idx', sql`select case_id, seq, effect_no from outbox where status = 'pending' and next_attempt_at <= now() order by next_attempt_at limit 50 for update skip locked`],
    ])('give the %s an index (%s)', async (_name, index, query) => {
      // Empty tables would make a sequential scan cheapest; forbid it to see which index serves.
      const plan = await store.db.transaction().execute(async (trx) => {
        await sql`set local enable_seqscan = off`.execute(trx);
        const { rows } = await sql<{ 'QUERY PLAN': string }>`explain ${query}`.execute(trx);
        return rows.map((row) => row['QUERY PLAN']).join('\n');
      });
      expect(plan).toContain(index);
    });
  });

  describe('the event log', () => {
    beforeAll(async () => {
      await seedCase(store.db, 'append-1', 2);
    });

    it('keeps the hash chain intact through jsonb storage', async () => {
      await seedCase(store.db, 'chain-1', 3);
      const events = await store.db.selectFrom('events').selectAll().where('case_id', '=', 'chain-1').orderBy('seq').execute();
      let prev: string | null = null;
      for (const event of events) {
        const canonical = canonicalJson({ case_id: event.case_id, seq: event.seq, type: event.type, payload: event.payload, recorded_at: event.recorded_at.toISOString() });
        expect(event.prev_hash).toBe(prev);
        expect(chainHash(prev, canonical)).toBe(event.hash);
        prev = event.hash;
      }
      expect(events).toHaveLength(3);
    });

    it.each([
      ['UPDATE', sql`update events set type = 'forged' where case_id = 'append-1'`],
      ['DELETE', sql`delete from events where case_id = 'append-1'`],
      ['TRUNCATE', sql`truncate events`],
    ])('refuses %s, even for the owner', async (_name, statement) => {
      expect(await sqlStateOfRejection(statement.execute(store.db))).toBe(SQLSTATE.eventsAppendOnly);
      const count = await store.db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('case_id', '=', 'append-1').executeTakeFirstOrThrow();
      expect(count.n).toBe('2');
    });

    // The events no longer reference cases (migration 0006), so the cascade does not reach their guard; the cases' own does.
    it('refuses TRUNCATE … CASCADE from cases, even for the owner, leaving cases and events as they were', async () => {
      const cases = async (): Promise<string> => (await store.db.selectFrom('cases').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n;
      const before = await cases();
      expect(await sqlStateOfRejection(sql`truncate cases cascade`.execute(store.db))).toBe(SQLSTATE.casesNotTruncated);
      expect(await cases()).toBe(before);
      const count = await store.db.selectFrom('events').select((eb) => eb.fn.countAll<string>().as('n')).where('case_id', '=', 'append-1').executeTakeFirstOrThrow();
      expect(count.n).toBe('2');
    });

    it('refuses UPDATE with session_replication_role = replica (the guards are ENABLE ALWAYS)', async () => {
      await seedCase(store.db, 'replica-1', 1);
      const state = await sqlStateOfRejection(
        store.db.transaction().execute(async (trx) => {
          await sql`set local session_replication_role = replica`.execute(trx);
          await sql`update events set type = 'forged' where case_id = 'replica-1'`.execute(trx);
        }),
      );
      expect(state).toBe(SQLSTATE.eventsAppendOnly);
    });

    it('regression: a temporary table named archive_tombstones cannot open the delete guard', async () => {
      await seedCase(store.db, 'shadow-1', 1);
      const state = await sqlStateOfRejection(
        store.db.transaction().execute(async (trx) => {
          await sql`create temporary table archive_tombstones (case_id text) on commit drop`.execute(trx);
          await sql`insert into pg_temp.archive_tombstones values ('shadow-1')`.execute(trx);
          await sql`delete from events where case_id = 'shadow-1'`.execute(trx);
        }),
      );
      expect(state).toBe(SQLSTATE.eventsAppendOnly);
    });

    it.each([
      ['a first event with a previous hash', { seq: 1, prev_hash: 'a'.repeat(64), hash: 'b'.repeat(64) }],
      ['a later event without one', { seq: 2, prev_hash: null, hash: 'b'.repeat(64) }],
      ['a hash that is not lowercase hex SHA-256', { seq: 1, prev_hash: null, hash: 'B'.repeat(64) }],
    ])('refuses %s (check constraint)', async (name, row) => {
      const caseId = `check-${name}`;
      await seedCase(store.db, caseId, 0);
      const insert = store.db
        .insertInto('events')
        .values({
          case_id: caseId,
          ...row,
          type: 'x',
          actor_id: null,
          on_behalf_of: null,
          role: null,
          org_unit_id: null,
          payload: '{}',
          recorded_at: new Date(),
          facts: '{}',
          resulting_state: '"x"',
          decision: null,
        })
        .execute();
      expect(await sqlStateOfRejection(insert)).toBe('23514');
    });
  });

  describe('definitions', () => {
    it.each([
      ['UPDATE', sql`update definitions set source = 'changed' where id = 'def-1'`],
      ['DELETE', sql`delete from definitions where id = 'def-1'`],
      ['TRUNCATE', sql`truncate definitions cascade`],
    ])('are immutable: %s is refused', async (_name, statement) => {
      expect(await sqlStateOfRejection(statement.execute(store.db))).toBe(SQLSTATE.definitionsImmutable);
      const row = await store.db.selectFrom('definitions').select('source').where('id', '=', 'def-1').executeTakeFirstOrThrow();
      expect(row.source).toBe('workflow 五单服务');
    });

    it('are versioned: a name and version are unique, a new version is a new row', async () => {
      const values = { name: '五单服务', source: 'v', compiled: '{}', compiler_version: 'test' };
      expect(await sqlStateOfRejection(store.db.insertInto('definitions').values({ id: 'def-dup', version: 1, ...values }).execute())).toBe(
        SQLSTATE.uniqueViolation,
      );
      await store.db.insertInto('definitions').values({ id: 'def-2', version: 2, ...values }).execute();
    });
  });

  describe('archive_case', () => {
    it('refuses a wrong head hash and removes nothing', async () => {
      const head = await seedCase(store.db, 'archive-1', 3);
      expect(await storeErrorCode(archiveCase(store.db, 'archive-1', chainHash(head, '{}')))).toBe('STORE_ARCHIVE_HEAD_MISMATCH');
      const events = await store.db.selectFrom('events').select('seq').where('case_id', '=', 'archive-1').execute();
      expect(events).toHaveLength(3);
      expect(await store.db.selectFrom('archive_tombstones').selectAll().where('case_id', '=', 'archive-1').execute()).toEqual([]);
    });

    it('with the right head hash removes the events and timers, leaving a tombstone', async () => {
      const head = await seedCase(store.db, 'archive-2', 3);
      await store.db.insertInto('timers').values({ case_id: 'archive-2', timer_id: 't1', event_type: 'xstate.after.1000.m.s', due_at: new Date() }).execute();

      expect(await archiveCase(store.db, 'archive-2', head)).toEqual({ eventCount: 3 });

      expect(await store.db.selectFrom('events').select('seq').where('case_id', '=', 'archive-2').execute()).toEqual([]);
      expect(await store.db.selectFrom('timers').select('timer_id').where('case_id', '=', 'archive-2').execute()).toEqual([]);
      const tombstone = await store.db.selectFrom('archive_tombstones').selectAll().where('case_id', '=', 'archive-2').executeTakeFirstOrThrow();
      expect(tombstone).toMatchObject({ head_hash: head, event_count: 3, archived_by: 'postgres' });
      const caseRow = await store.db.selectFrom('cases').select(['status', 'head_hash']).where('id', '=', 'archive-2').executeTakeFirstOrThrow();
      expect(caseRow).toEqual({ status: 'archived', head_hash: head });

      expect(await storeErrorCode(archiveCase(store.db, 'archive-2', head))).toBe('STORE_ARCHIVE_NOTHING');
    });

    it('refuses a case without events', async () => {
      await seedCase(store.db, 'archive-3', 0);
      expect(await storeErrorCode(archiveCase(store.db, 'archive-3', 'a'.repeat(64)))).toBe('STORE_ARCHIVE_NOTHING');
    });

    it('refuses a history with a gap', async () => {
      const head = await seedCase(store.db, 'archive-4', 3, [1, 2, 4]);
      expect(await storeErrorCode(archiveCase(store.db, 'archive-4', head))).toBe('STORE_ARCHIVE_CHAIN_GAP');
    });
  });

  describe('driver conventions', () => {
    it('returns int8 and numeric as strings and timestamptz as Date on both drivers', async () => {
      await store.db.insertInto('points_ledger').values({ case_id: 'chain-1', entry_no: 1, actor_id: 'actor-1', points: '1.50', hours: 2, reason: '抢单完成' }).execute();
      const row = await store.db.selectFrom('points_ledger').select(['points', 'hours', 'created_at']).where('case_id', '=', 'chain-1').executeTakeFirstOrThrow();
      expect(row.points).toBe('1.50');
      expect(row.hours).toBe('2');
      expect(row.created_at).toBeInstanceOf(Date);
      const { rows } = await sql<{ n: unknown }>`select 9007199254740993::int8 as n`.execute(store.db);
      expect(rows[0]?.n).toBe('9007199254740993');
    });

    it('round-trips jsonb written as JSON text, arrays included', async () => {
      const data = { 诉求: '修路灯', tags: ['夜间', 2], nested: { ok: true, none: null } };
      await seedCase(store.db, 'json-1', 0);
      await store.db.updateTable('cases').set({ data: JSON.stringify(data), state: JSON.stringify(['a', 'b']) }).where('id', '=', 'json-1').execute();
      const row = await store.db.selectFrom('cases').select(['data', 'state']).where('id', '=', 'json-1').executeTakeFirstOrThrow();
      expect(row).toEqual({ data, state: ['a', 'b'] });
    });
  });
});
