/**
 * Reading rows the same way in every store module: timestamps as the ISO strings the engine
 * writes (so hashed and replayed times match to the millisecond), and event rows as `EventRecord`.
 * Both drivers hand jsonb back already parsed.
 */
/** An event row as written and read back. JSON columns are given as values. */
export interface EventRecord {
  readonly caseId: string;
  readonly seq: number;
  readonly type: string;
  readonly actorId: string | null;
  readonly onBehalfOf: string | null;
  readonly role: string | null;
  readonly orgUnitId: string | null;
  readonly payload: unknown;
  readonly recordedAt: string;
  readonly facts: unknown;
  readonly resultingState: unknown;
  readonly decision: unknown;
  readonly prevHash: string | null;
  readonly hash: string;
}

/** A timestamp column as `toISOString()` writes it. */
export function iso(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  // Already in toISOString's form (a column read with ISO_UTC_SQL): no round trip through Date.
  if (typeof v === 'string' && ISO_UTC.test(v)) return v;
  return new Date(String(v)).toISOString();
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * SQL that reads a timestamptz column as `Date.prototype.toISOString` writes it (UTC,
 * milliseconds), which spares the driver parsing a date per row on bulk reads.
 * @example `select ${isoUtcSql('recorded_at')} as recorded_at from events`
 */
export function isoUtcSql(column: string): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/**
 * SQL that matches `column` with the ids of a jsonb array parameter by looking each one up in the
 * column's index. Written as `in (select jsonb_array_elements_text(…))`, the ids are a set the
 * planner cannot count, and on a table of a few thousand cases it hashed them and scanned all of
 * `events` for every batch of a bulk replay; as an array it fetches the rows of those ids only.
 * @example `select * from events where ${anyOfJsonIds('case_id', '$1')}`
 */
export function anyOfJsonIds(column: string, param: string): string {
  return `${column} = any(array(select jsonb_array_elements_text(${param}::jsonb)))`;
}

/**
 * Rows of many cases grouped by case, each case's in seq order. Bulk reads leave the order to
 * this: sorting the rows by a text case id in the database costs a collation compare per pair
 * (a quarter of the query's time), and a case's rows mostly come back in seq order anyway.
 * @example const logs = groupBySeq(rows.map(eventFromRow));
 */
export function groupBySeq<E extends { readonly caseId: string; readonly seq: number }>(events: readonly E[]): Map<string, E[]> {
  const out = new Map<string, E[]>();
  const unordered = new Set<E[]>();
  for (const e of events) {
    const list = out.get(e.caseId);
    if (list === undefined) {
      out.set(e.caseId, [e]);
      continue;
    }
    if ((list[list.length - 1] as E).seq > e.seq) unordered.add(list);
    list.push(e);
  }
  for (const list of unordered) list.sort((a, b) => a.seq - b.seq);
  return out;
}

/**
 * SQL for a case's paging key: its `created_at` in microseconds since the epoch, as text (exact,
 * and safe in a cursor). Pages are read in (created_at, id) order, which the indexes of migration
 * 0007 hold; this is only the key handed out.
 * @example `select ${createdUsSql('c')} as created_us from cases c`
 */
export function createdUsSql(alias: string): string {
  return `((extract(epoch from ${alias}.created_at) * 1000000)::bigint)::text`;
}

/**
 * SQL for the `created_at` a paging key (a bigint parameter, microseconds) was read from, exactly
 * (integer arithmetic on intervals), or `fallback` when the parameter is null, so that "from the
 * start" is a position like any other and the comparison with it stays an index condition.
 * @example `where (c.created_at, c.id) < (${createdAtOfUsSql('$7', 'infinity')}, coalesce($8::text, ''))`
 */
export function createdAtOfUsSql(param: string, fallback: 'infinity' | '-infinity'): string {
  return `coalesce(timestamptz 'epoch' + (${param}::bigint / 1000000) * interval '1 second' + (${param}::bigint % 1000000) * interval '1 microsecond', '${fallback}'::timestamptz)`;
}

export function isoOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : iso(v);
}

/** An event without the columns replay does not read (the decision trace and the hashes). */
export type ReplayFields = Omit<EventRecord, 'decision' | 'prevHash' | 'hash'>;

/**
 * The columns of an `events` row that replay reads.
 * @example const e = replayFieldsFromRow(row);
 */
export function replayFieldsFromRow(r: Record<string, unknown>): ReplayFields {
  return {
    caseId: String(r['case_id']),
    seq: Number(r['seq']),
    type: String(r['type']),
    actorId: (r['actor_id'] as string | null) ?? null,
    onBehalfOf: (r['on_behalf_of'] as string | null) ?? null,
    role: (r['role'] as string | null) ?? null,
    orgUnitId: (r['org_unit_id'] as string | null) ?? null,
    payload: r['payload'],
    // As the engine wrote it (toISOString), so replay's `now` is the step's `now`.
    recordedAt: iso(r['recorded_at']),
    facts: r['facts'],
    resultingState: r['resulting_state'],
  };
}

/**
 * An `events` row as the engine wrote it.
 * @example const events = rows.map(eventFromRow);
 */
export function eventFromRow(r: Record<string, unknown>): EventRecord {
  return {
    ...replayFieldsFromRow(r),
    decision: r['decision'] ?? null,
    prevHash: (r['prev_hash'] as string | null) ?? null,
    hash: String(r['hash']),
  };
}
