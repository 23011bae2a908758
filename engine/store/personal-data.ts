/**
 * The log of unmasked reads of residents' personal data (names, phone numbers in case data):
 * one row per read, written before the data is sent, so a read that could not be recorded is a
 * read that did not happen. Append-only for the application role (it may insert and select).
 */
import type { OpenedDatabase } from './open.ts';
import { iso } from './rows.ts';

/** One unmasked read of a case's personal data. */
export interface PersonalDataRead {
  readonly caseId: string;
  /** ISO-8601, on the engine's clock. */
  readonly at: string;
  /** Unique with `at` within the case. */
  readonly readId: string;
  /** Who read it. */
  readonly actor: string;
  /** Why they may: `submitter`, `contact` (a role that calls residents) or `handler` (named on the case). */
  readonly reason: string;
  /** The fields shown unmasked, e.g. `['姓名', '电话']`. */
  readonly fields: readonly string[];
  /** The route template, e.g. `GET /v1/cases/:id`. */
  readonly route: string;
  readonly requestId: string | null;
}

/** A row's place in a case's read log: time, then id. */
export interface PersonalDataReadPosition {
  readonly at: string;
  readonly readId: string;
}

/**
 * Records one unmasked read.
 * @example await recordPersonalDataRead(store, { caseId, at: engine.now(), readId: randomUUID(), actor: '社区书记张', reason: 'contact', fields: ['电话'], route: 'GET /v1/cases/:id', requestId: 'req-1' });
 */
export async function recordPersonalDataRead(store: OpenedDatabase, r: PersonalDataRead): Promise<void> {
  await store.query(
    `insert into personal_data_reads (case_id, read_at, read_id, actor_id, reason, fields, route, request_id)
     values ($1, $2::timestamptz, $3, $4, $5, $6::jsonb, $7, $8)`,
    [r.caseId, r.at, r.readId, r.actor, r.reason, JSON.stringify(r.fields), r.route, r.requestId],
    'wf_pd_record_read');
}

/**
 * Up to `limit` reads of a case after `after`, oldest first.
 * @example const rows = await personalDataReadPage(store, caseId, null, 100);
 */
export async function personalDataReadPage(store: OpenedDatabase, caseId: string, after: PersonalDataReadPosition | null, limit: number): Promise<PersonalDataRead[]> {
  const rows = await store.query<Record<string, unknown>>(
    `select case_id, read_at, read_id, actor_id, reason, fields, route, request_id
       from personal_data_reads
      where case_id = $1
        and ($2::timestamptz is null or (read_at, read_id) > ($2::timestamptz, $3::text))
      order by read_at, read_id
      limit $4`,
    [caseId, after?.at ?? null, after?.readId ?? null, limit], 'wf_pd_read_page');
  return rows.map((r) => ({
    caseId: String(r['case_id']),
    at: iso(r['read_at']),
    readId: String(r['read_id']),
    actor: String(r['actor_id']),
    reason: String(r['reason']),
    // Both drivers hand jsonb back parsed.
    fields: Array.isArray(r['fields']) ? r['fields'].map(String) : [],
    route: String(r['route']),
    requestId: (r['request_id'] as string | null) ?? null,
  }));
}
