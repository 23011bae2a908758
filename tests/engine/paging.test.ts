// Paging the case ledger (newest first) and the inbox's candidates (oldest first) by
// (created_at, id): every case exactly once and in order across pages, ties on created_at broken
// by id, and each page read off an index from the cursor on rather than sorting every case.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboxCandidates, type InboxPosition } from '../../engine/store/admin.ts';
import type { OpenedDatabase, RawQuery } from '../../engine/store/index.ts';
import { casePage } from '../../engine/store/queries.ts';
import { upsertActor } from '../../engine/store/registry.ts';
import { backend, openTestDatabase, planNodes, seedReferenceData } from './support.ts';

const ACTOR = 'paging-actor';

describe(`paging cases on ${backend}`, () => {
  let store: OpenedDatabase;
  /** Every case, as the pages must give them: oldest first. */
  let oldestFirst: { id: string; active: boolean }[];

  beforeAll(async () => {
    store = await openTestDatabase();
    await seedReferenceData(store.db);
    await upsertActor(store, { id: ACTOR, name: ACTOR, phone: null, roles: [{ role: '社区书记', unit: 'community-1' }] });
    // 20 cases created in one statement share created_at, so only the id orders them; 20 more a
    // microsecond apart (the cursor's key must come back to exactly the same time); every third done.
    await sql`insert into cases (id, definition_id, org_unit_id, state, snapshot, status, created_at)
      select 'p-a' || lpad(g::text, 2, '0'), 'def-1', 'community-1', '"甲"'::jsonb, '{}'::jsonb,
             case when g % 3 = 0 then 'done' else 'active' end, timestamptz '2026-03-02 09:00:00.123456+08'
        from generate_series(0, 19) g`.execute(store.db);
    await sql`insert into cases (id, definition_id, org_unit_id, state, snapshot, status, created_at)
      select 'p-b' || lpad(g::text, 2, '0'), 'def-1', 'community-1', '"甲"'::jsonb, '{}'::jsonb,
             case when g % 3 = 0 then 'done' else 'active' end, timestamptz '2026-03-02 09:00:00.999990+08' + g * interval '1 microsecond'
        from generate_series(0, 19) g`.execute(store.db);
    const a = Array.from({ length: 20 }, (_, g) => ({ id: `p-a${String(g).padStart(2, '0')}`, active: g % 3 !== 0 }));
    const b = Array.from({ length: 20 }, (_, g) => ({ id: `p-b${String(g).padStart(2, '0')}`, active: g % 3 !== 0 }));
    oldestFirst = [...a, ...b];
  });
  afterAll(async () => {
    await store?.close();
  });

  it('the ledger gives every case once, newest first, across pages of 7', async () => {
    const seen: string[] = [];
    let after: { createdUs: string; id: string } | undefined;
    for (let page = 0; page < 20; page++) {
      const rows = await casePage(store, { limit: 7, ...(after === undefined ? {} : { after }) });
      seen.push(...rows.map((r) => r.id));
      const last = rows[rows.length - 1];
      if (rows.length < 7 || last === undefined) break;
      after = { createdUs: last.createdUs, id: last.id };
    }
    expect(seen).toEqual(oldestFirst.map((c) => c.id).reverse());
  });

  it('the inbox candidates give every active case in reach once, oldest first, across pages of 7', async () => {
    const seen: string[] = [];
    let after: InboxPosition | null = null;
    for (let page = 0; page < 20; page++) {
      const rows = await inboxCandidates(store, ACTOR, after, 7);
      seen.push(...rows.map((r) => r.id));
      const last = rows[rows.length - 1];
      if (rows.length < 7 || last === undefined) break;
      after = { createdUs: last.createdUs, id: last.id };
    }
    expect(seen).toEqual(oldestFirst.filter((c) => c.active).map((c) => c.id));
  });

  it('the ledger pages the same with filters on the way (status, time range)', async () => {
    const rows = await casePage(store, { limit: 100, status: 'done', createdFrom: '2026-03-02T01:00:00.999995Z' });
    expect(rows.map((r) => r.id)).toEqual(['p-b18', 'p-b15', 'p-b12', 'p-b09', 'p-b06']);
  });

  it('reach: a case whose data names the actor, or a unit they hold a role in, at the top level or in a list; not deeper, not as another type', async () => {
    await sql`insert into org_units (id, parent_id, level, name) values ('reach-unit-a', null, 'department', 'A'), ('reach-unit-b', null, 'department', 'B'), ('reach-unit-c', null, 'department', 'C') on conflict do nothing`.execute(store.db);
    await upsertActor(store, { id: 'reach-actor', name: 'reach-actor', phone: null, roles: [{ role: '单位书记', unit: 'reach-unit-a' }, { role: '单位书记', unit: 'reach-unit-b' }] });
    const cases: [string, unknown][] = [
      ['r-actor', { 党员: 'reach-actor' }],
      ['r-unit-b', { 单位: 'reach-unit-b' }],
      ['r-list', { 被叫部门: ['reach-unit-c', 'reach-unit-b'] }],
      ['r-none', { 单位: 'reach-unit-c', 备注: 'reach-actor 来过' }],
      ['r-deep', { 详情: { 党员: 'reach-actor' } }],
      ['r-nested-list', { 名单: [['reach-actor']] }],
    ];
    for (const [id, data] of cases) {
      await sql`insert into cases (id, definition_id, org_unit_id, state, data, snapshot, created_at)
        values (${id}, 'def-1', 'community-1', '"甲"'::jsonb, ${JSON.stringify(data)}::jsonb, '{}'::jsonb, timestamptz '2027-01-01 00:00:00+00')`.execute(store.db);
    }
    const reached = ['r-actor', 'r-list', 'r-unit-b'];
    expect((await inboxCandidates(store, 'reach-actor', null, 100)).map((r) => r.id).sort()).toEqual(reached);
    expect((await casePage(store, { limit: 100, visibleTo: 'reach-actor' })).map((r) => r.id).sort()).toEqual(reached);
  });

  it('read each page off an index from the cursor, planned for its own values (regression: every page sorted every case)', async () => {
    const sent: { text: string; values: readonly (string | number | boolean | null)[]; name: string | undefined }[] = [];
    const query: RawQuery = (text, values, name) => {
      sent.push({ text, values, name });
      return store.query(text, values, name);
    };
    const recording: OpenedDatabase = { ...store, query };
    const first = await casePage(recording, { limit: 7 });
    const last = first[first.length - 1] as { createdUs: string; id: string };
    await casePage(recording, { limit: 7, after: { createdUs: last.createdUs, id: last.id } });
    await inboxCandidates(recording, ACTOR, null, 7);
    await inboxCandidates(recording, ACTOR, { createdUs: last.createdUs, id: last.id }, 7);
    expect(sent).toHaveLength(4);
    const expectedIndex = ['cases_created_idx', 'cases_created_idx', 'cases_active_created_idx', 'cases_active_created_idx'];
    for (const [i, { text, values, name }] of sent.entries()) {
      // A prepared statement would be moved to a generic plan after five runs, which reads and sorts everything.
      expect(name, text).toBeUndefined();
      // On a table this small a scan and a sort would be cheapest; forbid them to see that an index serves the order.
      const plan = await store.db.transaction().execute(async (trx) => {
        await sql`set local enable_sort = off`.execute(trx);
        await sql`set local enable_seqscan = off`.execute(trx);
        await sql`set local enable_bitmapscan = off`.execute(trx);
        const { rows } = await sql.raw<Record<string, unknown>>(`explain (format json) ${inline(text, values)}`).execute(trx);
        return planNodes(rows[0]?.['QUERY PLAN']);
      });
      const described = plan.map((n) => `${String(n['Node Type'])} ${String(n['Index Name'] ?? n['Relation Name'] ?? '')} ${String(n['Index Cond'] ?? '')}`).join('\n');
      expect(plan.filter((n) => n['Node Type'] === 'Sort' || n['Node Type'] === 'Incremental Sort'), described).toEqual([]);
      const scan = plan.find((n) => n['Relation Name'] === 'cases');
      expect(scan?.['Index Name'], described).toBe(expectedIndex[i]);
      expect(String(scan?.['Index Cond'] ?? ''), described).toContain('created_at');
    }
  });
});

/** The statement with its parameters written in as literals, so EXPLAIN plans it for these values. */
function inline(text: string, values: readonly (string | number | boolean | null)[]): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const v = values[Number(n) - 1];
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return `'${v.replace(/'/g, "''")}'`;
  });
}
