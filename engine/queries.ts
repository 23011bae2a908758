/**
 * Reads for front ends and auditors that are not a single case's live state: a case's history
 * with the why of every step, the case ledger (台账) with filters and keyset paging, the list of
 * deployed definitions and the org tree. Errors are `EngineError`s from the one table.
 */
import type { TraceEntry, Effect } from '../dsl/runtime.ts';
import type { Engine } from './engine.ts';
import { CREATED_US, decodeCursor, encodeCursor, PAGE_CURSOR_HINT } from './cursor.ts';
import { EngineError } from './errors.ts';
import { casePage, definitionList, historyPage, orgUnitList, orgUnitWithChildren, ping, type CasePosition, type DefinitionListRow, type OrgUnitListRow } from './store/queries.ts';
import { latestDefinition } from './store/registry.ts';

/** One event of a case's history, as auditors read it. */
export interface HistoryEntry {
  readonly seq: number;
  readonly type: string;
  /** Who sent it; null for a timer or an anonymous resident. */
  readonly actor: string | null;
  /** The resident the actor acted for (代办). */
  readonly onBehalfOf: string | null;
  /** The role that allowed it (null for `anyone`, a person clause, a timer). */
  readonly role: string | null;
  readonly orgUnit: string | null;
  /** The event's recorded time (ISO-8601). */
  readonly at: string;
  readonly payload: unknown;
  /** The state the case was in after this event. */
  readonly state: string;
  readonly status: string;
  /** SHA-256 of the canonical context after the event. */
  readonly contextHash: string | null;
  /** Which guards and rule rows decided the step. */
  readonly trace: readonly TraceEntry[];
  readonly effects: readonly Effect[];
  /** What was resolved before the step (roles, org facts, deadlines), so replay needs nothing else. */
  readonly facts: unknown;
  readonly prevHash: string | null;
  readonly hash: string;
}

export interface HistoryPage {
  readonly caseId: string;
  readonly events: readonly HistoryEntry[];
  /** Pass as `after` for the next page; null when this page reached the end. */
  readonly nextAfter: number | null;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

/**
 * A case's events after `after` (a seq; default 0), at most `limit` (default 100, at most 1,000).
 * Throws CASE_NOT_FOUND.
 * @example
 * let page = await caseHistory(engine, caseId);
 * while (page.nextAfter !== null) page = await caseHistory(engine, caseId, { after: page.nextAfter });
 */
export async function caseHistory(engine: Engine, caseId: string, options: { readonly after?: number; readonly limit?: number } = {}): Promise<HistoryPage> {
  const limit = Math.max(1, Math.min(1_000, Math.floor(options.limit ?? 100)));
  const rows = await historyPage(engine.store, caseId, Math.max(0, Math.floor(options.after ?? 0)), limit + 1);
  if (rows === undefined) throw new EngineError('CASE_NOT_FOUND', `No case ${caseId}.`, { caseId });
  const page = rows.slice(0, limit);
  const events = page.map((r): HistoryEntry => {
    const rs = record(r.resultingState);
    const decision = record(r.decision);
    return {
      seq: r.seq,
      type: r.type,
      actor: r.actorId,
      onBehalfOf: r.onBehalfOf,
      role: r.role,
      orgUnit: r.orgUnitId,
      at: r.recordedAt,
      payload: r.payload,
      state: typeof rs['state'] === 'string' ? rs['state'] : JSON.stringify(rs['state'] ?? null),
      status: typeof rs['status'] === 'string' ? rs['status'] : 'active',
      contextHash: typeof rs['context'] === 'string' ? rs['context'] : null,
      trace: Array.isArray(decision['trace']) ? decision['trace'] as TraceEntry[] : [],
      effects: Array.isArray(decision['effects']) ? decision['effects'] as Effect[] : [],
      facts: r.facts,
      prevHash: r.prevHash,
      hash: r.hash,
    };
  });
  const last = page[page.length - 1];
  return { caseId, events, nextAfter: rows.length > limit && last !== undefined ? last.seq : null };
}

/** Statuses as the API names them; the store calls a suspended case `stopped`. */
export type LedgerStatus = 'active' | 'done' | 'suspended' | 'error' | 'archived';

/** A case in the ledger: no case data, which holds residents' personal data. */
export interface CaseSummary {
  readonly id: string;
  readonly workflow: string;
  readonly definitionId: string;
  readonly definitionVersion: number;
  readonly state: string;
  readonly status: LedgerStatus;
  /** The responsible org unit. */
  readonly unit: string;
  readonly submitter: string | null;
  /** Number of events in its history. */
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface CaseFilter {
  readonly workflow?: string;
  readonly state?: string;
  /** This unit and every unit below it. */
  readonly orgUnit?: string;
  readonly status?: LedgerStatus;
  /** Created at or after (ISO-8601). */
  readonly createdFrom?: string;
  /** Created before (ISO-8601). */
  readonly createdTo?: string;
  /**
   * Only the cases this actor may see (属地): in or below a unit where they hold a role, submitted
   * by them, or naming them or such a unit in their data (a department a case was dispatched to,
   * the party member who claimed it). Omit it for readers who see everything.
   */
  readonly visibleTo?: string;
  /** Default 50, at most 500. */
  readonly limit?: number;
  readonly cursor?: string | null;
}

export interface CaseListPage {
  readonly items: readonly CaseSummary[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  readonly nextCursor: string | null;
}

function decodeListCursor(cursor: string): CasePosition {
  return decodeCursor(cursor, { who: 'this list', field: 'cursor', hint: PAGE_CURSOR_HINT }, (v) =>
    v.length === 2 && typeof v[0] === 'string' && CREATED_US.test(v[0]) && typeof v[1] === 'string' ? { createdUs: v[0], id: v[1] } : undefined);
}

function instant(v: string | undefined, path: string): string | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) {
    throw new EngineError('VALIDATION_FAILED', `${path} is not a date and time: ${v}.`, {
      fields: [{ path, code: 'type', message: 'must be an ISO-8601 date and time, e.g. 2026-03-02T09:00:00+08:00' }],
    });
  }
  return new Date(t).toISOString();
}

const STORED_STATUS: Record<LedgerStatus, string> = { active: 'active', done: 'done', suspended: 'stopped', error: 'error', archived: 'archived' };

function apiStatus(stored: string): LedgerStatus {
  if (stored === 'stopped') return 'suspended';
  return stored === 'done' || stored === 'error' || stored === 'archived' ? stored : 'active';
}

/**
 * The case ledger (台账), newest first. An unknown org unit or workflow is reported
 * (ORG_UNIT_NOT_FOUND, DEFINITION_NOT_FOUND) rather than answered with an empty page, so a typo
 * does not pass for "no cases".
 * @example
 * const page = await listCases(engine, { workflow: '五单服务', orgUnit: '龙形街道', state: '待派单', limit: 20 });
 * const mine = await listCases(engine, { visibleTo: '卫健局书记钱' }); // what a department may see
 * const next = await listCases(engine, { workflow: '五单服务', orgUnit: '龙形街道', state: '待派单', limit: 20, cursor: page.nextCursor });
 */
export async function listCases(engine: Engine, filter: CaseFilter = {}): Promise<CaseListPage> {
  const limit = Math.max(1, Math.min(500, Math.floor(filter.limit ?? 50)));
  const after = filter.cursor === undefined || filter.cursor === null ? undefined : decodeListCursor(filter.cursor);
  const createdFrom = instant(filter.createdFrom, 'createdFrom');
  const createdTo = instant(filter.createdTo, 'createdTo');
  if (filter.orgUnit !== undefined && (await engine.org()).unit(filter.orgUnit) === undefined) {
    throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${filter.orgUnit}.`, { orgUnit: filter.orgUnit });
  }
  if (filter.workflow !== undefined && (await latestDefinition(engine.store, filter.workflow)) === undefined) {
    throw new EngineError('DEFINITION_NOT_FOUND', `No workflow named "${filter.workflow}" is deployed.`, { workflow: filter.workflow, version: null });
  }
  const rows = await casePage(engine.store, {
    ...(filter.workflow === undefined ? {} : { workflow: filter.workflow }),
    ...(filter.state === undefined ? {} : { state: filter.state }),
    ...(filter.orgUnit === undefined ? {} : { orgUnit: filter.orgUnit }),
    ...(filter.status === undefined ? {} : { status: STORED_STATUS[filter.status] }),
    ...(createdFrom === undefined ? {} : { createdFrom }),
    ...(createdTo === undefined ? {} : { createdTo }),
    ...(after === undefined ? {} : { after }),
    ...(filter.visibleTo === undefined ? {} : { visibleTo: filter.visibleTo }),
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => ({
      id: r.id, workflow: r.workflow, definitionId: r.definitionId, definitionVersion: r.definitionVersion, state: r.state,
      status: apiStatus(r.status), unit: r.orgUnitId, submitter: r.submitter, version: r.version, createdAt: r.createdAt, updatedAt: r.updatedAt,
    })),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor([last.createdUs, last.id]) : null,
  };
}

export type DefinitionSummary = DefinitionListRow;

/**
 * Every deployed version of every workflow, by name then version.
 * @example const defs = await listDefinitions(engine); // [{ name: '五单服务', version: 1, id: '五单服务@1', … }]
 */
export function listDefinitions(engine: Engine): Promise<DefinitionSummary[]> {
  return definitionList(engine.store);
}

export type OrgUnitSummary = OrgUnitListRow;

/**
 * The whole org tree as a flat list (parents name their children through `parent`).
 * @example const units = await listOrgUnits(engine);
 */
export function listOrgUnits(engine: Engine): Promise<OrgUnitSummary[]> {
  return orgUnitList(engine.store);
}

/**
 * One org unit with its children's ids. Throws ORG_UNIT_NOT_FOUND.
 * @example const u = await getOrgUnit(engine, '永乐社区');
 */
export async function getOrgUnit(engine: Engine, id: string): Promise<OrgUnitSummary & { readonly children: readonly string[] }> {
  const u = await orgUnitWithChildren(engine.store, id);
  if (u === undefined) throw new EngineError('ORG_UNIT_NOT_FOUND', `No org unit ${id}.`, { orgUnit: id });
  return u;
}

/**
 * Whether the database answers: the readiness probe. Never throws; a failure is `false` with the reason.
 * @example const { ok } = await databaseReady(engine);
 */
export async function databaseReady(engine: Engine): Promise<{ readonly ok: boolean; readonly error?: string }> {
  try {
    return { ok: await ping(engine.store) };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}
