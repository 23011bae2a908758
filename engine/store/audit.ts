/**
 * Reads for auditing in bulk: case rows and replay logs of many cases, so a replay of many cases
 * costs two queries per batch instead of two per case. Read-only; safe on a read replica.
 */
import type { CaseRow, EventRecord } from './cases.ts';
import type { OpenedDatabase } from './open.ts';
import { anyOfJsonIds, groupBySeq, iso, isoUtcSql, replayFieldsFromRow, type ReplayFields } from './rows.ts';


/**
 * The rows of the given cases, by id; ids with no row are absent from the map.
 * @example const rows = await loadCaseRows(store, ['c-1', 'c-2']); rows.get('c-1')?.headHash
 */
export async function loadCaseRows(store: OpenedDatabase, caseIds: readonly string[]): Promise<Map<string, CaseRow>> {
  const rows = await store.query<Record<string, unknown>>(
    `select id, definition_id, org_unit_id, state, status, data, snapshot, version, head_hash, created_at, updated_at
       from cases where ${anyOfJsonIds('id', '$1')}`,
    [JSON.stringify(caseIds)], 'wf_audit_load_cases');
  const out = new Map<string, CaseRow>();
  for (const r of rows) {
    const id = String(r['id']);
    out.set(id, {
      id,
      definitionId: String(r['definition_id']),
      orgUnitId: String(r['org_unit_id']),
      // Both drivers hand jsonb back parsed.
      state: r['state'] as string,
      status: String(r['status']),
      data: r['data'] as Record<string, unknown>,
      snapshot: r['snapshot'] as Record<string, unknown>,
      version: Number(r['version']),
      headHash: r['head_hash'] === null ? null : String(r['head_hash']),
      createdAt: iso(r['created_at']),
      updatedAt: iso(r['updated_at']),
    });
  }
  return out;
}

/** An event row without its chain and decision columns: what replay reads. */
export type ReplayRow = ReplayFields;

/**
 * A machine event's facts as replay reads them: the oracle's answers, the multi-unit instance and
 * the definition, without the rest of the recorded authorization (role, unit, clause), which
 * replay does not repeat; parsing it was a tenth of a replayed event's cost. System events
 * (`case.*`, or `system: true`) keep their facts whole, for the replayers registered for them.
 */
const REPLAY_FACTS_SQL = `case when type like 'case.%' or facts ? 'system' then facts
  else jsonb_build_object('oracle', facts->'oracle', 'authorization', jsonb_build_object('instance', facts->'authorization'->'instance'), 'definitionId', facts->'definitionId') end`;

/**
 * The events of many cases in seq order, grouped by case, with only the columns replay uses: the
 * decision trace and the hashes are most of a row's bytes and half the parsing, and replay needs
 * neither (verify reads them); of a machine event's facts, only what replay asks of them.
 * @example const logs = await loadReplayLogs(store, ids); for (const [id, events] of logs) …
 */
export async function loadReplayLogs(store: OpenedDatabase, caseIds: readonly string[]): Promise<Map<string, ReplayRow[]>> {
  const rows = await store.query<Record<string, unknown>>(
    `select case_id, seq, type, actor_id, on_behalf_of, role, org_unit_id, payload, ${isoUtcSql('recorded_at')} as recorded_at, ${REPLAY_FACTS_SQL} as facts, resulting_state
       from events where ${anyOfJsonIds('case_id', '$1')}`,
    [JSON.stringify(caseIds)], 'wf_audit_load_replay_logs');
  return groupBySeq(rows.map(replayFieldsFromRow));
}
