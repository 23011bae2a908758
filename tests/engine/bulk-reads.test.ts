// Reads that must stay index reads as the tables grow: the bulk reads of replay and audit (many
// cases' rows and logs per query) return the asked cases' events grouped and in seq order, and look
// the ids up in the index rather than scanning the whole events table for every batch; the change
// feed's poll stays within the tail of the tx index.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCaseRows, loadReplayLogs } from '../../engine/store/audit.ts';
import { loadEventsOfCases } from '../../engine/store/cases.ts';
import { changesAfter } from '../../engine/store/changes.ts';
import type { OpenedDatabase, RawQuery } from '../../engine/store/index.ts';
import { groupBySeq } from '../../engine/store/rows.ts';
import { backend, openTestDatabase, planNodes, seedReferenceData } from './support.ts';

describe('groupBySeq', () => {
  it('groups rows by case and puts each case in seq order, whatever order they came in', () => {
    const rows = [
      { caseId: 'b', seq: 2 }, { caseId: 'a', seq: 1 }, { caseId: 'b', seq: 1 }, { caseId: 'a', seq: 3 }, { caseId: 'a', seq: 2 }, { caseId: 'c', seq: 1 },
    ];
    const grouped = groupBySeq(rows);
    expect([...grouped.keys()]).toEqual(['b', 'a', 'c']);
    expect(grouped.get('a')?.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(grouped.get('b')?.map((e) => e.seq)).toEqual([1, 2]);
    expect(grouped.get('c')?.map((e) => e.seq)).toEqual([1]);
  });

  it('keeps the rows themselves', () => {
    const first = { caseId: 'a', seq: 1, type: 'start' };
    expect(groupBySeq([first]).get('a')?.[0]).toBe(first);
  });
});

const CASES = 2000;
const EVENTS_PER_CASE = 5;

describe(`bulk reads on ${backend}`, () => {
  let store: OpenedDatabase;
  const caseId = (i: number): string => `bulk-${String(i).padStart(4, '0')}`;

  beforeAll(async () => {
    store = await openTestDatabase();
    await seedReferenceData(store.db);
    // Rows as the bulk reads see them, written in one statement each (the chain is not what is tested here).
    await sql`insert into cases (id, definition_id, org_unit_id, state, snapshot, version)
      select 'bulk-' || lpad(g::text, 4, '0'), 'def-1', 'community-1', '"甲"'::jsonb, '{}'::jsonb, ${EVENTS_PER_CASE}
        from generate_series(0, ${CASES - 1}) g`.execute(store.db);
    // Interleaved across cases and, within a case, newest first: the order the database hands
    // them back in is then not the order replay needs.
    await sql`insert into events (case_id, seq, type, payload, recorded_at, facts, resulting_state, prev_hash, hash)
      select 'bulk-' || lpad(c::text, 4, '0'), s, '推进', '{}'::jsonb, '2026-10-08T02:00:00Z', '{}'::jsonb, '{"state": "甲"}'::jsonb,
             case when s = 1 then null else repeat('0', 64) end, repeat('a', 64)
        from generate_series(${EVENTS_PER_CASE}, 1, -1) s, generate_series(0, ${CASES - 1}) c`.execute(store.db);
    await sql`analyze events`.execute(store.db);
    await sql`analyze cases`.execute(store.db);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
  });

  const batch = [caseId(7), caseId(123), caseId(399), 'no-such-case', caseId(0)];

  it('return the asked cases only, each log whole and in seq order', async () => {
    const replayLogs = await loadReplayLogs(store, batch);
    const fullLogs = await loadEventsOfCases(store, batch);
    for (const logs of [replayLogs, fullLogs]) {
      expect([...logs.keys()].sort()).toEqual([caseId(0), caseId(7), caseId(123), caseId(399)]);
      for (const log of logs.values()) expect(log.map((e) => e.seq)).toEqual(Array.from({ length: EVENTS_PER_CASE }, (_, i) => i + 1));
    }
    const rows = await loadCaseRows(store, batch);
    expect([...rows.keys()].sort()).toEqual([caseId(0), caseId(7), caseId(123), caseId(399)]);
  });

  it('look the ids up in the primary keys instead of scanning the tables (regression: every batch scanned all events)', async () => {
    // The statements the readers send, captured from the store and explained with the same values.
    const sent: { text: string; values: readonly (string | number | boolean | null)[] }[] = [];
    const recording: OpenedDatabase = {
      ...store,
      query: (text, values, name) => {
        sent.push({ text, values });
        return store.query(text, values, name);
      },
    };
    await loadReplayLogs(recording, batch);
    await loadEventsOfCases(recording, batch);
    await loadCaseRows(recording, batch);
    expect(sent).toHaveLength(3);
    for (const { text, values } of sent) {
      const plan = await store.query<Record<string, unknown>>(`explain (format json) ${text}`, values);
      const scans = planNodes(plan[0]?.['QUERY PLAN'])
        .filter((n) => n['Relation Name'] === 'events' || n['Relation Name'] === 'cases')
        .map((n) => `${String(n['Node Type'])} on ${String(n['Relation Name'])}`);
      expect(scans.length, text).toBeGreaterThan(0);
      expect(scans.filter((s) => s.startsWith('Seq Scan')), `${text}\n${scans.join('\n')}`).toEqual([]);
    }
  });

  it('the change feed asks whether events are held back within the BRIN index of tx, from the position on (regression: a whole-table scan on every poll)', async () => {
    const sent: { text: string; values: readonly (string | number | boolean | null)[] }[] = [];
    const query: RawQuery = (text, values, name) => {
      sent.push({ text, values });
      return store.query(text, values, name);
    };
    const { rows } = await sql<{ tx: string }>`select max(tx)::text as tx from events`.execute(store.db);
    const position = { tx: rows[0]?.tx ?? '0', caseId: '', seq: 0 };
    await changesAfter({ ...store, query }, position, 500);
    expect(sent).toHaveLength(1);
    const { text, values } = sent[0] as (typeof sent)[number];
    // Planned for these values, as the unnamed statement is, with scans made dear to see which index conditions are possible.
    const inlined = text.replace(/\$(\d+)/g, (_, n: string) => {
      const v = values[Number(n) - 1];
      return typeof v === 'string' ? `'${v}'` : String(v);
    });
    const plan = await store.db.transaction().execute(async (trx) => {
      await sql`set local enable_seqscan = off`.execute(trx);
      const { rows: explained } = await sql.raw<Record<string, unknown>>(`explain (format json) ${inlined}`).execute(trx);
      return planNodes(explained[0]?.['QUERY PLAN']);
    });
    const onTx = plan.filter((n) => n['Index Name'] === 'events_tx_brin');
    const described = plan.map((n) => `${String(n['Node Type'])} ${String(n['Index Name'] ?? n['Relation Name'] ?? '')} ${String(n['Index Cond'] ?? '')}`).join('\n');
    // The page of changes and the held-back check: both bounded below by the position itself.
    expect(onTx.length, described).toBe(2);
    for (const n of onTx) expect(String(n['Index Cond']), described).toContain(position.tx);
  });
});
