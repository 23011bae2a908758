/**
 * Reads and small writes for case operations (engine/admin.ts, engine/actions.ts): a case's live
 * timers, case links, the candidate cases of an inbox and the cases a migration selects. The
 * events these operations record go through the engine's one-statement append like any other.
 */
import type { OpenedDatabase } from './open.ts';
import { heldUnitsCte, reachesCase } from './reach.ts';
import { anyOfJsonIds, createdAtOfUsSql, createdUsSql, iso } from './rows.ts';

function json(v: unknown): string {
  return JSON.stringify(v ?? null);
}


/** A timer that has not fired or been cancelled yet. */
export interface LiveTimer {
  readonly id: string;
  readonly eventType: string;
  readonly dueAt: string;
  readonly state: 'scheduled' | 'claimed';
}

/**
 * A case's scheduled and claimed timers together with the case's version, read in one statement
 * so the caller knows which history the list belongs to. Undefined when there is no such case.
 * @example const live = await liveTimers(store, caseId); // { version: 3, timers: [{ id, eventType, dueAt, state }] }
 */
export async function liveTimers(store: OpenedDatabase, caseId: string): Promise<{ version: number; timers: LiveTimer[] } | undefined> {
  const rows = await store.query<{ version: number; timer_id: string | null; event_type: string | null; due_at: unknown; state: string | null }>(
    `select c.version, t.timer_id, t.event_type, t.due_at, t.state
       from cases c left join timers t on t.case_id = c.id and t.state in ('scheduled', 'claimed')
      where c.id = $1
      order by t.due_at, t.timer_id`,
    [caseId], 'wf_admin_live_timers');
  const first = rows[0];
  if (first === undefined) return undefined;
  const timers: LiveTimer[] = [];
  for (const r of rows) {
    if (r.timer_id === null || r.event_type === null) continue;
    timers.push({ id: r.timer_id, eventType: r.event_type, dueAt: iso(r.due_at), state: r.state === 'claimed' ? 'claimed' : 'scheduled' });
  }
  return { version: Number(first.version), timers };
}

/** A link between two cases: `caseId` is the newer case, `linkedCaseId` the one it refers to. */
export interface CaseLinkRow {
  readonly caseId: string;
  readonly linkedCaseId: string;
  readonly kind: string;
  readonly createdAt: string;
}

/**
 * Inserts a link unless it exists; true when this call inserted it.
 * @example await insertCaseLink(store, { caseId: newId, linkedCaseId: oldId, kind: 'recurrence_of' })
 */
export async function insertCaseLink(store: OpenedDatabase, link: Omit<CaseLinkRow, 'createdAt'>): Promise<boolean> {
  const rows = await store.query<{ case_id: string }>(
    `insert into case_links (case_id, linked_case_id, kind) values ($1, $2, $3)
     on conflict do nothing returning case_id`,
    [link.caseId, link.linkedCaseId, link.kind], 'wf_admin_insert_link');
  return rows.length > 0;
}

/**
 * Links from and to a case, oldest first.
 * @example const links = await caseLinks(store, caseId);
 */
export async function caseLinks(store: OpenedDatabase, caseId: string): Promise<CaseLinkRow[]> {
  const rows = await store.query<{ case_id: string; linked_case_id: string; kind: string; created_at: unknown }>(
    `select case_id, linked_case_id, kind, created_at from case_links where case_id = $1
     union all
     select case_id, linked_case_id, kind, created_at from case_links where linked_case_id = $1 and case_id <> $1
     order by created_at, case_id, linked_case_id, kind`,
    [caseId], 'wf_admin_case_links');
  return rows.map((r) => ({ caseId: r.case_id, linkedCaseId: r.linked_case_id, kind: r.kind, createdAt: iso(r.created_at) }));
}

/**
 * Whether a case's history already holds an event of this type whose payload contains `payload`
 * (JSON containment), so that an operation retried after a failure does not record itself twice.
 * @example await hasEventWith(store, caseId, 'case.linked', { linkedCaseId: oldId, kind: 'recurrence_of' })
 */
export async function hasEventWith(store: OpenedDatabase, caseId: string, type: string, payload: Readonly<Record<string, unknown>>): Promise<boolean> {
  const rows = await store.query<{ found: boolean }>(
    'select exists (select 1 from events where case_id = $1 and type = $2 and payload @> $3::jsonb) as found',
    [caseId, type, json(payload)], 'wf_admin_has_event');
  return rows[0]?.found === true;
}

/** A case row as the inbox and migration read it. */
export interface CaseListRow {
  readonly id: string;
  readonly definitionId: string;
  /** The definition's version number. */
  readonly definitionVersion: number;
  readonly state: string;
  readonly status: string;
  readonly orgUnitId: string;
  readonly data: Record<string, unknown>;
  /** The context without `data`. */
  readonly snapshot: Record<string, unknown>;
  readonly version: number;
  /** Microseconds since the epoch, as text: an exact sort key for paging. */
  readonly createdUs: string;
}

type ListRow = {
  id: string; definition_id: string; def_version: number; state: unknown; status: string; org_unit_id: string;
  data: unknown; snapshot: unknown; version: number; created_us: string;
};

/** The columns of a {@link CaseListRow}, from `cases c join definitions d`. */
const LIST_COLUMNS = `c.id, c.definition_id, d.version as def_version, c.state, c.status, c.org_unit_id, c.data, c.snapshot, c.version,
            ${createdUsSql('c')} as created_us`;

function toListRow(r: ListRow): CaseListRow {
  return {
    id: r.id,
    definitionId: r.definition_id,
    definitionVersion: Number(r.def_version),
    // Both drivers hand jsonb back parsed.
    state: r.state as string,
    status: r.status,
    orgUnitId: r.org_unit_id,
    data: r.data as Record<string, unknown>,
    snapshot: r.snapshot as Record<string, unknown>,
    version: Number(r.version),
    createdUs: String(r.created_us),
  };
}

/** Position after which a page starts. */
export interface InboxPosition {
  readonly createdUs: string;
  readonly id: string;
}

/**
 * Active cases an actor may be able to act on, oldest first: those whose responsible unit lies in
 * the subtree of a unit where the actor holds a role (a role held in U counts for U's descendants),
 * those the actor submitted, and those whose data names the actor or such a unit in a top-level
 * field or list (`case.党员`, `case.单位`, `case.被叫部门`). A superset: the caller filters each
 * candidate with the machine. Cases only `by anyone` could act on are not candidates.
 * @example const rows = await inboxCandidates(store, '卫健局书记钱', null, 50);
 */
export async function inboxCandidates(store: OpenedDatabase, actorId: string, after: InboxPosition | null, limit: number): Promise<CaseListRow[]> {
  const rows = await store.query<ListRow>(
    `with recursive ${heldUnitsCte('$1')}
     select ${LIST_COLUMNS}
       from cases c join definitions d on d.id = c.definition_id
      -- From the cursor on, oldest first, off the index of active cases by (created_at, id).
      where c.status = 'active'
        and (c.created_at, c.id) > (${createdAtOfUsSql('$2', '-infinity')}, coalesce($3::text, ''))
        and ${reachesCase('c', '$1')}
      order by c.created_at, c.id
      limit $4`,
    // Unnamed, so planned for these values each time (see casePage).
    [actorId, after?.createdUs ?? null, after?.id ?? null, limit]);
  return rows.map(toListRow);
}

/** Which cases a migration looks at. */
export interface MigrationSelection {
  readonly workflow: string;
  /** The target definition: its cases are left out unless named in `caseIds`. */
  readonly targetDefinitionId: string;
  readonly fromVersion?: number;
  readonly state?: string;
  /** Only these cases; closed ones are then included too, so the caller can say why they stay. */
  readonly caseIds?: readonly string[];
}

/**
 * One page (by case id) of the cases of a workflow a migration selects: open cases (active or
 * suspended) on other versions, narrowed by version, state or ids.
 * @example const page = await casesForMigration(store, { workflow: '五单服务', targetDefinitionId: '五单服务@2' }, null, 500);
 */
export async function casesForMigration(store: OpenedDatabase, sel: MigrationSelection, afterId: string | null, limit: number): Promise<CaseListRow[]> {
  const rows = await store.query<ListRow>(
    `select ${LIST_COLUMNS}
       from cases c join definitions d on d.id = c.definition_id
      where d.name = $1
        and ($3::int is null or d.version = $3)
        and ($4::jsonb is null or c.state = $4::jsonb)
        and ($5::jsonb is null or ${anyOfJsonIds('c.id', '$5')})
        and ($5::jsonb is not null or (c.definition_id <> $2 and c.status in ('active', 'stopped')))
        and ($6::text is null or c.id > $6)
      order by c.id
      limit $7`,
    [sel.workflow, sel.targetDefinitionId, sel.fromVersion ?? null, sel.state === undefined ? null : json(sel.state),
      sel.caseIds === undefined ? null : json(sel.caseIds), afterId, limit],
    'wf_admin_migration_cases');
  return rows.map(toListRow);
}

/**
 * The current rows of the given cases (those that exist), as the inbox reads them.
 * @example const rows = await casesByIds(store, ['c-1', 'c-2']);
 */
export async function casesByIds(store: OpenedDatabase, ids: readonly string[]): Promise<CaseListRow[]> {
  if (ids.length === 0) return [];
  const rows = await store.query<ListRow>(
    `select ${LIST_COLUMNS}
       from cases c join definitions d on d.id = c.definition_id
      where ${anyOfJsonIds('c.id', '$1')}`,
    [json(ids)], 'wf_changes_cases');
  return rows.map(toListRow);
}
