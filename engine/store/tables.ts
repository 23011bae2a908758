/**
 * Row types of the store's tables, as Kysely sees them. The migrations are the source of truth;
 * these types follow them by hand.
 *
 * Conventions that keep both drivers (`pg` and PGlite) behaving the same:
 * - `jsonb` columns are written as JSON text (`JSON.stringify(value)`) and read back parsed. `pg`
 *   would send a JS array as a Postgres array literal, so objects are never passed raw.
 * - no `int8` columns (`pg` returns them as strings, PGlite as bigints); `numeric` comes back as a
 *   string from both.
 * - append-only columns have update type `never`, so an UPDATE of them does not compile.
 *
 * @module
 */
import type { ColumnType, Generated } from 'kysely';
import type { JsonValue } from '../hash.ts';

/** A `jsonb` column: parsed on read, JSON text on write. */
export type Jsonb<T extends JsonValue = JsonValue> = ColumnType<T, string, string>;
/** A `jsonb` column of an append-only table: parsed on read, JSON text on insert, never updated. */
export type FrozenJsonb<T extends JsonValue | null = JsonValue> = ColumnType<T, T extends null ? string | null : string, never>;
/** A value written once on insert. */
export type Frozen<T> = ColumnType<T, T, never>;
/** A `timestamptz` the database fills in on insert and nobody changes. */
export type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
/** A `timestamptz` column. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;

/** The org-unit levels of the five-level hierarchy and the units beside it (see DESIGN §2.3). */
export type OrgUnitLevel = 'prefecture' | 'county' | 'street' | 'community' | 'grid' | 'department' | 'co_building';
/** XState's snapshot statuses, plus `archived` once `archive_case` has removed the history. */
export type CaseStatus = 'active' | 'done' | 'error' | 'stopped' | 'archived';
export type TimerState = 'scheduled' | 'claimed' | 'fired' | 'cancelled';
export type OutboxStatus = 'pending' | 'delivered' | 'dead';

/** A deployed workflow version; immutable (a trigger refuses UPDATE, DELETE and TRUNCATE). */
export interface DefinitionsTable {
  id: Frozen<string>;
  name: Frozen<string>;
  version: Frozen<number>;
  source: Frozen<string>;
  compiled: FrozenJsonb;
  compiler_version: Frozen<string>;
  created_at: CreatedAt;
}

export interface OrgUnitsTable {
  id: string;
  parent_id: string | null;
  level: OrgUnitLevel;
  name: string;
}

export interface ActorsTable {
  id: string;
  name: string;
  phone: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ActorRolesTable {
  actor_id: string;
  role: string;
  org_unit_id: string;
}

export interface CasesTable {
  id: Frozen<string>;
  definition_id: string;
  /** The responsible unit (属地). */
  org_unit_id: string;
  state: Jsonb;
  /** The case's typed data; `{}` when omitted on insert. */
  data: ColumnType<JsonValue, string | undefined, string>;
  snapshot: Jsonb;
  /** Bumped by every event; the optimistic-concurrency check compares it. */
  version: Generated<number>;
  head_hash: ColumnType<string | null, string | null | undefined, string | null>;
  status: ColumnType<CaseStatus, CaseStatus | undefined, CaseStatus>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface CaseLinksTable {
  case_id: Frozen<string>;
  linked_case_id: Frozen<string>;
  /** e.g. `recurrence_of` when a problem comes back after its case was closed. */
  kind: Frozen<string>;
  created_at: CreatedAt;
}

/** The hash-chained history; append-only (privileges and a trigger refuse UPDATE/DELETE/TRUNCATE). */
export interface EventsTable {
  case_id: Frozen<string>;
  /** 1, 2, 3, … per case without gaps. */
  seq: Frozen<number>;
  type: Frozen<string>;
  actor_id: Frozen<string | null>;
  /** The resident an actor acted for (代办). */
  on_behalf_of: Frozen<string | null>;
  role: Frozen<string | null>;
  org_unit_id: Frozen<string | null>;
  payload: FrozenJsonb;
  recorded_at: ColumnType<Date, Date | string, never>;
  /** What was resolved before the step (roles, org-tree facts, deadlines) so replay needs nothing else. */
  facts: FrozenJsonb;
  resulting_state: FrozenJsonb;
  /** Which guard or rule decided the transition. */
  decision: FrozenJsonb<JsonValue | null>;
  prev_hash: Frozen<string | null>;
  hash: Frozen<string>;
  /** The writing transaction's id, set by the database (migration 0005); NULL on older rows. A bigint, read as text. */
  tx: ColumnType<string | null, never, never>;
}

export interface TimersTable {
  case_id: Frozen<string>;
  /** XState's delayed-event id, e.g. `xstate.after.86400000.machine.state`. */
  timer_id: Frozen<string>;
  event_type: string;
  payload: ColumnType<JsonValue, string | undefined, string>;
  due_at: Timestamp;
  state: ColumnType<TimerState, TimerState | undefined, TimerState>;
  claimed_by: ColumnType<string | null, string | null | undefined, string | null>;
  claimed_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  attempts: Generated<number>;
  created_at: CreatedAt;
}

export interface OutboxTable {
  case_id: Frozen<string>;
  /** The event that produced the effect. */
  seq: Frozen<number>;
  /** Position of the effect among that event's effects. */
  effect_no: Frozen<number>;
  kind: Frozen<string>;
  payload: FrozenJsonb;
  status: ColumnType<OutboxStatus, OutboxStatus | undefined, OutboxStatus>;
  attempts: Generated<number>;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  delivered_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** When the effect gave up and entered the dead-letter list (migration 0003). */
  dead_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** Delivered notify/escalated/reassigned/missed effects: inboxes of people and of roles in units (migration 0003). */
export interface NotificationsTable {
  case_id: Frozen<string>;
  seq: Frozen<number>;
  effect_no: Frozen<number>;
  /** 1 unless one effect reached several units (a `missed` effect names each unit it missed). */
  recipient_no: ColumnType<number, number | undefined, never>;
  kind: Frozen<string>;
  role: Frozen<string | null>;
  org_unit_id: Frozen<string | null>;
  person_id: Frozen<string | null>;
  message: Frozen<string>;
  reason: Frozen<string | null>;
  payload: ColumnType<JsonValue, string | undefined, never>;
  created_at: ColumnType<Date, Date | string, never>;
}

/** Unmasked reads of a case's personal data, append-only for the application (migration 0004). */
export interface PersonalDataReadsTable {
  case_id: Frozen<string>;
  read_at: ColumnType<Date, Date | string, never>;
  read_id: Frozen<string>;
  actor_id: Frozen<string>;
  /** Why the reader may see it: submitter, contact (a role that calls residents) or handler. */
  reason: Frozen<string>;
  /** The fields shown unmasked. */
  fields: FrozenJsonb<string[]>;
  /** The route template, e.g. `GET /v1/cases/:id`. */
  route: Frozen<string>;
  request_id: Frozen<string | null>;
}

export interface IdempotencyKeysTable {
  case_id: Frozen<string>;
  actor_id: Frozen<string>;
  key: Frozen<string>;
  /** SHA-256 of the canonical request, so a reused key with a different request is detected. */
  request_hash: Frozen<string>;
  response: FrozenJsonb;
  created_at: CreatedAt;
}

export interface PointsLedgerTable {
  case_id: Frozen<string>;
  entry_no: Frozen<number>;
  actor_id: Frozen<string>;
  points: ColumnType<string, string | number, never>;
  /** Hours credited to the time bank (时间银行). */
  hours: ColumnType<string, string | number | undefined, never>;
  reason: Frozen<string>;
  event_seq: ColumnType<number | null, number | null | undefined, never>;
  created_at: CreatedAt;
}

/** What is left of a case once `archive_case` has removed its events. */
export interface ArchiveTombstonesTable {
  case_id: Frozen<string>;
  head_hash: Frozen<string>;
  event_count: Frozen<number>;
  archived_at: CreatedAt;
  archived_by: ColumnType<string, string | undefined, never>;
}

/**
 * The store's schema for `Kysely<Database>`.
 *
 * @example
 * ```ts
 * const units = await db.selectFrom('org_units').select(['id', 'name']).where('level', '=', 'community').execute();
 * ```
 */
export interface Database {
  definitions: DefinitionsTable;
  org_units: OrgUnitsTable;
  actors: ActorsTable;
  actor_roles: ActorRolesTable;
  cases: CasesTable;
  case_links: CaseLinksTable;
  events: EventsTable;
  timers: TimersTable;
  outbox: OutboxTable;
  idempotency_keys: IdempotencyKeysTable;
  points_ledger: PointsLedgerTable;
  archive_tombstones: ArchiveTombstonesTable;
  notifications: NotificationsTable;
  personal_data_reads: PersonalDataReadsTable;
}
