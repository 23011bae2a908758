/**
 * Read-only queries behind the HTTP API's lists: a case's history page by page, the case ledger
 * (台账) filtered by workflow, state, org subtree and time, deployed definitions without their
 * bulky source, and the org tree. Each is one statement; lists page by keyset, never by offset,
 * so a page stays cheap however deep the reader goes and rows inserted meanwhile are not skipped.
 */
import type { OpenedDatabase } from './open.ts';
import { heldUnitsCte, reachesCase } from './reach.ts';
import { createdAtOfUsSql, createdUsSql, eventFromRow, iso, type EventRecord } from './rows.ts';


/** An event as the history shows it. */
export type HistoryRow = Omit<EventRecord, 'caseId'>;

/**
 * Up to `limit` events of a case with `seq > afterSeq`, in order; undefined when there is no such
 * case (an existing case with no further events gives an empty list). One round trip: the case
 * row is joined to the page, so "no case" and "no more events" are told apart without a second query.
 * @example const page = await historyPage(store, caseId, 0, 100);
 */
export async function historyPage(store: OpenedDatabase, caseId: string, afterSeq: number, limit: number): Promise<HistoryRow[] | undefined> {
  const rows = await store.query<Record<string, unknown>>(
    `select c.id as case_found, e.*
       from cases c
       left join lateral (
         select seq, type, actor_id, on_behalf_of, role, org_unit_id, payload, recorded_at, facts, resulting_state, decision, prev_hash, hash
           from events where case_id = c.id and seq > $2 order by seq limit $3
       ) e on true
      where c.id = $1
      order by e.seq`,
    [caseId, afterSeq, limit], 'wf_q_history_page');
  if (rows.length === 0) return undefined;
  const out: HistoryRow[] = [];
  for (const r of rows) {
    if (r['seq'] === null || r['seq'] === undefined) continue;
    const { caseId: _caseId, ...row } = eventFromRow(r);
    out.push(row);
  }
  return out;
}

/** What the case ledger filters on; every field is optional and they combine with AND. */
export interface CaseQuery {
  readonly workflow?: string;
  readonly state?: string;
  /** Cases whose responsible unit is this unit or any unit below it. */
  readonly orgUnit?: string;
  /** A stored status: active, done, stopped (suspended), error, archived. */
  readonly status?: string;
  /** Inclusive lower bound on the creation time (ISO-8601). */
  readonly createdFrom?: string;
  /** Exclusive upper bound on the creation time (ISO-8601). */
  readonly createdTo?: string;
  /** Keyset position: rows strictly after it in the list's order (newest first). */
  readonly after?: CasePosition;
  /**
   * Only cases this actor may see: in or below a unit where they hold a role, submitted by them,
   * or naming them or such a unit in their data (the inbox's notion of "involved").
   */
  readonly visibleTo?: string;
  readonly limit: number;
}

/** A row's place in the ledger's order: creation time in microseconds since the epoch (as text, exact) and id. */
export interface CasePosition {
  readonly createdUs: string;
  readonly id: string;
}

export interface CaseLedgerRow {
  readonly id: string;
  readonly workflow: string;
  readonly definitionId: string;
  readonly definitionVersion: number;
  readonly state: string;
  readonly status: string;
  readonly orgUnitId: string;
  readonly submitter: string | null;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly createdUs: string;
}

/**
 * One page of the case ledger, newest first. The org filter walks the tree in the same statement
 * (a recursive CTE), so "this street and everything below it" needs no second query.
 * @example const rows = await casePage(store, { workflow: '五单服务', orgUnit: '龙形街道', limit: 50 });
 */
export async function casePage(store: OpenedDatabase, q: CaseQuery): Promise<CaseLedgerRow[]> {
  // Not a named (prepared once) statement: Postgres would move it to a generic plan after five
  // runs, which cannot tell "from the start, no filters" from a narrow page, and read and sort
  // every case (3 s at 100,000). Planning each call costs about a millisecond.
  const rows = await store.query<Record<string, unknown>>(
    `with recursive under(id) as (
       select id from org_units where $3::text is not null and id = $3
       union
       select u.id from org_units u join under h on u.parent_id = h.id
     ), ${heldUnitsCte('$10')}
     select c.id, d.name as workflow, c.definition_id, d.version as def_version, c.state, c.status, c.org_unit_id,
            c.snapshot->>'submitter' as submitter, c.version, c.created_at, c.updated_at, ${createdUsSql('c')} as created_us
       from cases c join definitions d on d.id = c.definition_id
      -- From the cursor on, newest first, off the (created_at, id) index; the filters are checked
      -- on the way and the read stops at the limit.
      where (c.created_at, c.id) < (${createdAtOfUsSql('$7', 'infinity')}, coalesce($8::text, ''))
        and c.created_at >= coalesce($5::timestamptz, '-infinity') and c.created_at < coalesce($6::timestamptz, 'infinity')
        and ($1::text is null or d.name = $1)
        and ($2::jsonb is null or c.state = $2::jsonb)
        and ($3::text is null or c.org_unit_id in (select id from under))
        and ($4::text is null or c.status = $4)
        and ($10::text is null or ${reachesCase('c', '$10')})
      order by c.created_at desc, c.id desc
      limit $9`,
    [
      q.workflow ?? null, q.state === undefined ? null : JSON.stringify(q.state), q.orgUnit ?? null, q.status ?? null,
      q.createdFrom ?? null, q.createdTo ?? null, q.after?.createdUs ?? null, q.after?.id ?? null, q.limit, q.visibleTo ?? null,
    ]);
  return rows.map((r) => ({
    id: String(r['id']),
    workflow: String(r['workflow']),
    definitionId: String(r['definition_id']),
    definitionVersion: Number(r['def_version']),
    // jsonb arrives parsed: a state name is a JSON string.
    state: typeof r['state'] === 'string' ? r['state'] : JSON.stringify(r['state']),
    status: String(r['status']),
    orgUnitId: String(r['org_unit_id']),
    submitter: (r['submitter'] as string | null) ?? null,
    version: Number(r['version']),
    createdAt: iso(r['created_at']),
    updatedAt: iso(r['updated_at']),
    createdUs: String(r['created_us']),
  }));
}

/** A deployed version without its source and compiled machine. */
export interface DefinitionListRow {
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly label: string | null;
  readonly compilerVersion: string;
  readonly createdAt: string;
}

/**
 * Every deployed version, by name then version, without the source and machine (which can be
 * large); the label is read out of the stored compiled definition.
 * @example const defs = await definitionList(store);
 */
export async function definitionList(store: OpenedDatabase): Promise<DefinitionListRow[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select id, name, version, compiled->>'label' as label, compiler_version, created_at from definitions order by name, version`,
    [], 'wf_q_definition_list');
  return rows.map((r) => ({
    id: String(r['id']),
    name: String(r['name']),
    version: Number(r['version']),
    label: (r['label'] as string | null) ?? null,
    compilerVersion: String(r['compiler_version']),
    createdAt: iso(r['created_at']),
  }));
}

export interface OrgUnitListRow {
  readonly id: string;
  readonly parent: string | null;
  readonly level: string;
  readonly name: string;
}

/**
 * The whole org tree, by id.
 * @example const units = await orgUnitList(store);
 */
export async function orgUnitList(store: OpenedDatabase): Promise<OrgUnitListRow[]> {
  const rows = await store.query<{ id: string; parent_id: string | null; level: string; name: string }>(
    'select id, parent_id, level, name from org_units order by id', [], 'wf_q_org_units');
  return rows.map((r) => ({ id: r.id, parent: r.parent_id, level: r.level, name: r.name }));
}

/**
 * One org unit with the ids of its children, or undefined.
 * @example const u = await orgUnitWithChildren(store, '龙形街道'); // { id, parent: '黎平县', children: ['永乐社区', …] }
 */
export async function orgUnitWithChildren(store: OpenedDatabase, id: string): Promise<(OrgUnitListRow & { readonly children: readonly string[] }) | undefined> {
  const rows = await store.query<{ id: string; parent_id: string | null; level: string; name: string; children: unknown }>(
    `select u.id, u.parent_id, u.level, u.name,
            coalesce((select jsonb_agg(c.id order by c.id) from org_units c where c.parent_id = u.id), '[]'::jsonb) as children
       from org_units u where u.id = $1`,
    [id], 'wf_q_org_unit');
  const r = rows[0];
  if (r === undefined) return undefined;
  return { id: r.id, parent: r.parent_id, level: r.level, name: r.name, children: Array.isArray(r.children) ? r.children.map(String) : [] };
}

/**
 * Whether the database answers a trivial query: the readiness probe.
 * @example if (!(await ping(store))) reply.code(503);
 */
export async function ping(store: OpenedDatabase): Promise<boolean> {
  const rows = await store.query<{ ok: number }>('select 1 as ok', []);
  return Number(rows[0]?.ok) === 1;
}
