/**
 * The engine's reads and writes of cases, events, timers and the outbox. Events are written by
 * one statement: the version-checked update of the case row, the event insert, timer changes, the
 * outbox effects and the idempotency record, all in one CTE, so it costs one round trip and is
 * atomic on its own (no BEGIN/COMMIT); `AppendBatcher` puts the events of several cases in one
 * such statement (group commit).
 */
import { isStatementError, StoreError } from './errors.ts';
import type { OpenedDatabase } from './open.ts';
import { anyOfJsonIds, eventFromRow, groupBySeq, iso, type EventRecord } from './rows.ts';

/** What the store knows of a case, enough to run its next step. */
export interface CaseRow {
  readonly id: string;
  readonly definitionId: string;
  readonly orgUnitId: string;
  readonly state: string;
  readonly status: string;
  readonly data: Record<string, unknown>;
  /** The machine context without `data` (kept in its own column for queries). */
  readonly snapshot: Record<string, unknown>;
  readonly version: number;
  readonly headHash: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type { EventRecord } from './rows.ts';

export interface TimerWrite {
  readonly id: string;
  readonly type: string;
  readonly due: string;
}

export interface IdempotencyWrite {
  readonly actorId: string;
  readonly key: string;
  readonly requestHash: string;
  readonly response: unknown;
}

/** Everything one event changes. */
export interface AppendInput {
  readonly caseId: string;
  readonly expectedVersion: number;
  readonly state: string;
  readonly status: string;
  readonly orgUnitId: string;
  readonly event: EventRecord;
  readonly schedule: readonly TimerWrite[];
  readonly cancel: readonly string[];
  /** The timer this event fires: the event applies only while this node still holds its claim. */
  readonly firing?: { readonly timerId: string; readonly claimedBy: string; readonly markFired: boolean };
  readonly idempotency?: IdempotencyWrite;
  /** Moves the case to another definition version (migration). */
  readonly definitionId?: string;
  /**
   * The event's parts and the case's data and rest of context as canonical JSON texts (the caller
   * serialized them to hash the event); the outbox effects are the decision's.
   */
  readonly json: PreSerialized;
}

/**
 * Canonical JSON texts of what an event writes, serialized once: the engine needs them to hash
 * the event, and the row is written from the same texts instead of serializing the values again.
 */
export interface PreSerialized {
  readonly data: string;
  readonly snapshot: string;
  readonly payload: string;
  readonly facts: string;
  readonly decision: string;
  readonly resultingState: string;
}

export interface PriorAnswer {
  readonly requestHash: string;
  readonly response: unknown;
}

export type AppendResult = { readonly applied: true } | { readonly applied: false; readonly prior: PriorAnswer | null };

const START_SQL = `
with c as (
  insert into cases (id, definition_id, org_unit_id, state, data, snapshot, version, head_hash, status)
  select $1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, 1, $7, $8
  where ($20::text is null or not exists (select 1 from idempotency_keys where case_id = $1 and actor_id = $19 and key = $20))
  on conflict (id) do nothing
  returning id
), ev as (
  insert into events (case_id, seq, type, actor_id, on_behalf_of, role, org_unit_id, payload, recorded_at, facts, resulting_state, decision, prev_hash, hash)
  select $1, 1, $9, $10, $11, $12, $13, $14::jsonb, $15::timestamptz, $16::jsonb, $17::jsonb, $18::jsonb, null, $7 from c
  returning seq
), sched as (
  insert into timers (case_id, timer_id, event_type, due_at)
  select $1, t.id, t.type, t.due::timestamptz from c, jsonb_to_recordset($23::jsonb) as t(id text, type text, due text)
  returning timer_id
), fx as (
  insert into outbox (case_id, seq, effect_no, kind, payload, next_attempt_at)
  select $1, 1, e.ord::int, e.value->>'kind', e.value, $15::timestamptz from c, jsonb_array_elements(coalesce(($18::jsonb)->'effects', '[]'::jsonb)) with ordinality as e(value, ord)
  returning effect_no
), idem as (
  insert into idempotency_keys (case_id, actor_id, key, request_hash, response)
  select $1, $19, $20, $21, $22::jsonb from c where $20::text is not null
  returning key
)
select (select count(*) from c)::int as applied,
       (select jsonb_build_object('requestHash', request_hash, 'response', response) from idempotency_keys
         where $20::text is not null and case_id = $1 and actor_id = $19 and key = $20) as prior`;

function json(v: unknown): string {
  return JSON.stringify(v ?? null);
}

function readResult(row: Record<string, unknown> | undefined): AppendResult {
  if (row !== undefined && Number(row['applied']) === 1) return { applied: true };
  const prior = row?.['prior'];
  return { applied: false, prior: prior === null || prior === undefined ? null : prior as PriorAnswer };
}

/** Inserts a new case with its first event (seq 1), unless the id is taken or the idempotency key was used. */
export async function insertCase(store: OpenedDatabase, definitionId: string, input: Omit<AppendInput, 'expectedVersion' | 'cancel' | 'firing'>): Promise<AppendResult> {
  const e = input.event;
  const idem = input.idempotency;
  const rows = await store.write(START_SQL, [
    input.caseId, definitionId, input.orgUnitId, json(input.state), input.json.data, input.json.snapshot, e.hash, input.status, // $1-$8
    e.type, e.actorId, e.onBehalfOf, e.role, e.orgUnitId, input.json.payload, e.recordedAt, input.json.facts, input.json.resultingState, input.json.decision, // $9-$18
    idem?.actorId ?? null, idem?.key ?? null, idem?.requestHash ?? null, idem === undefined ? null : json(idem.response), // $19-$22
    json(input.schedule), // $23
  ], 'wf_start_case');
  return readResult(rows[0]);
}

/** Records the answer to a refused request, so a retry with the same key gets the same refusal. */
export async function recordRefusal(store: OpenedDatabase, caseId: string, idem: IdempotencyWrite): Promise<PriorAnswer | null> {
  const rows = await store.query<{ prior: unknown }>(
    `with ins as (
       insert into idempotency_keys (case_id, actor_id, key, request_hash, response) values ($1, $2, $3, $4, $5::jsonb)
       on conflict do nothing returning key
     )
     select (select jsonb_build_object('requestHash', request_hash, 'response', response) from idempotency_keys
              where case_id = $1 and actor_id = $2 and key = $3) as prior`,
    [caseId, idem.actorId, idem.key, idem.requestHash, json(idem.response)],
    'wf_record_refusal',
  );
  const prior = rows[0]?.prior;
  return prior === null || prior === undefined ? null : prior as PriorAnswer;
}

export async function findPrior(store: OpenedDatabase, caseId: string, actorId: string, key: string): Promise<PriorAnswer | null> {
  const rows = await store.query<{ request_hash: string; response: unknown }>(
    'select request_hash, response from idempotency_keys where case_id = $1 and actor_id = $2 and key = $3',
    [caseId, actorId, key], 'wf_find_prior');
  const r = rows[0];
  return r === undefined ? null : { requestHash: r.request_hash, response: r.response };
}

/** Both drivers hand jsonb back already parsed (a JSON string value arrives as a JS string). */
function parseJson<T>(v: unknown): T {
  return v as T;
}


/** Reads a case row, or undefined. */
export async function loadCase(store: OpenedDatabase, caseId: string): Promise<CaseRow | undefined> {
  const rows = await store.query<Record<string, unknown>>(
    'select id, definition_id, org_unit_id, state, status, data, snapshot, version, head_hash, created_at, updated_at from cases where id = $1',
    [caseId], 'wf_load_case');
  const r = rows[0];
  if (r === undefined) return undefined;
  return {
    id: String(r['id']),
    definitionId: String(r['definition_id']),
    orgUnitId: String(r['org_unit_id']),
    state: parseJson<string>(r['state']),
    status: String(r['status']),
    data: parseJson<Record<string, unknown>>(r['data']),
    snapshot: parseJson<Record<string, unknown>>(r['snapshot']),
    version: Number(r['version']),
    headHash: r['head_hash'] === null ? null : String(r['head_hash']),
    createdAt: iso(r['created_at']),
    updatedAt: iso(r['updated_at']),
  };
}


/** A case's events in order, optionally only those recorded up to a time. */
export async function loadEvents(store: OpenedDatabase, caseId: string, upTo?: string): Promise<EventRecord[]> {
  const rows = upTo === undefined
    ? await store.query<Record<string, unknown>>('select * from events where case_id = $1 order by seq', [caseId], 'wf_load_events')
    : await store.query<Record<string, unknown>>('select * from events where case_id = $1 and recorded_at <= $2::timestamptz order by seq', [caseId, upTo], 'wf_load_events_upto');
  return rows.map(eventFromRow);
}

/** Events of many cases at once, grouped by case, for bulk replay. */
export async function loadEventsOfCases(store: OpenedDatabase, caseIds: readonly string[]): Promise<Map<string, EventRecord[]>> {
  const rows = await store.query<Record<string, unknown>>(
    `select * from events where ${anyOfJsonIds('case_id', '$1')}`,
    [json(caseIds)], 'wf_load_events_bulk');
  return groupBySeq(rows.map(eventFromRow));
}

// ---- group commit ---------------------------------------------------------------------------

/**
 * The batch statement, in four forms: with or without the parts for timer firings and for
 * idempotency keys. A batch without them (the common case: people's events sent without a key)
 * uses the form without: every data-changing part of a statement opens its table and indexes and
 * prepares its checks on each run, whether or not it has rows to write, and the two unused parts
 * with their existence checks were about 9% of Postgres's CPU per event in bench:engine
 * (alternated rounds). Each form is a prepared statement of its own.
 *
 * The input is read as json, not jsonb: jsonb would parse the whole batch into a tree first and
 * then copy each jsonb member out of it; json_to_recordset parses each row's members once, straight
 * into their columns (about 6% less of Postgres's CPU per event, alternated). Each form declares only the input columns it reads (a column more costs each row a lookup even
 * when the member is absent: about 1.4% of the statement's latency for the seven unused ones).
 */
function batchSql(firing: boolean, idempotency: boolean): string {
  return `
with input as (
  select * from json_to_recordset($1::json) as t(
    i int, case_id text, expected int, seq int, state jsonb, data jsonb, snapshot jsonb, hash text, status text, unit text,
    definition_id text, type text, actor_id text, on_behalf_of text, role text, event_unit text, payload jsonb,
    recorded_at timestamptz, facts jsonb, resulting_state jsonb, decision jsonb, prev_hash text,
    schedule jsonb, cancel text[]${firing ? ', fire_id text, fire_by text, mark_fired text' : ''}${idempotency ? `,
    idem_actor text, idem_key text, idem_hash text, idem_response jsonb` : ''})
), upd as (
  update cases c set state = i.state, data = i.data, snapshot = i.snapshot, version = i.seq, head_hash = i.hash,
         status = i.status, org_unit_id = i.unit, definition_id = coalesce(i.definition_id, c.definition_id), updated_at = now()
  from input i
  where c.id = i.case_id and c.version = i.expected${firing ? `
    and (i.fire_id is null or exists (select 1 from timers t where t.case_id = i.case_id and t.timer_id = i.fire_id and t.state = 'claimed' and t.claimed_by = i.fire_by))` : ''}${idempotency ? `
    and (i.idem_key is null or not exists (select 1 from idempotency_keys k where k.case_id = i.case_id and k.actor_id = i.idem_actor and k.key = i.idem_key))` : ''}
  returning c.id
), ok as (
  select i.* from input i join upd on upd.id = i.case_id
), ev as (
  insert into events (case_id, seq, type, actor_id, on_behalf_of, role, org_unit_id, payload, recorded_at, facts, resulting_state, decision, prev_hash, hash)
  select case_id, seq, type, actor_id, on_behalf_of, role, event_unit, payload, recorded_at, facts, resulting_state, decision, prev_hash, hash from ok
  returning seq${firing ? `
), fire as (
  update timers t set state = 'fired', claimed_until = null from ok
  where t.case_id = ok.case_id and t.timer_id = ok.mark_fired
  returning t.timer_id` : ''}
), cancel as (
  -- An array comparison the primary key answers (a join with the unnested ids scanned the case's timers).
  update timers t set state = 'cancelled', claimed_until = null
  from ok
  where t.case_id = ok.case_id and t.timer_id = any(ok.cancel) and t.state in ('scheduled', 'claimed')
  returning t.timer_id
), sched as (
  insert into timers (case_id, timer_id, event_type, due_at)
  select ok.case_id, s.id, s.type, s.due::timestamptz from ok cross join lateral jsonb_to_recordset(ok.schedule) as s(id text, type text, due text)
  on conflict (case_id, timer_id) do update
    set event_type = excluded.event_type, due_at = excluded.due_at, state = 'scheduled', claimed_by = null, claimed_until = null, attempts = 0
  returning timer_id
), fx as (
  -- Due at the event's recorded time (the engine's clock), not the database's now(), so the outbox
  -- worker, which polls by the same injected clock, sees effects as soon as they are committed.
  insert into outbox (case_id, seq, effect_no, kind, payload, next_attempt_at)
  select ok.case_id, ok.seq, e.ord::int, e.value->>'kind', e.value, ok.recorded_at
  from ok cross join lateral jsonb_array_elements(coalesce(ok.decision->'effects', '[]'::jsonb)) with ordinality as e(value, ord)
  returning effect_no${idempotency ? `
), idem as (
  insert into idempotency_keys (case_id, actor_id, key, request_hash, response)
  select case_id, idem_actor, idem_key, idem_hash, idem_response from ok where idem_key is not null
  returning key` : ''}
)
select i.i, (u.id is not null) as applied,
       ${idempotency ? `(select jsonb_build_object('requestHash', k.request_hash, 'response', k.response) from idempotency_keys k
         where i.idem_key is not null and k.case_id = i.case_id and k.actor_id = i.idem_actor and k.key = i.idem_key)` : 'null::jsonb'} as prior
from input i left join upd u on u.id = i.case_id`;
}

/** The four forms of the batch statement with their prepared statements' names, by [firing][idempotency]. */
const BATCH_FORMS = [false, true].map((firing) => [false, true].map((idempotency) => ({
  text: batchSql(firing, idempotency),
  name: `wf_append_batch${firing ? '_fire' : ''}${idempotency ? '_idem' : ''}`,
})));

/**
 * One input row of the batch statement as JSON text: the scalars serialized here (absent keys read
 * as NULL in jsonb_to_recordset, so nulls are left out), the JSON parts spliced in as the caller
 * serialized them.
 */
function batchRowJson(i: number, input: AppendInput): string {
  const e = input.event;
  const idem = input.idempotency;
  const j = input.json;
  const scalars = JSON.stringify({
    i, case_id: input.caseId, expected: input.expectedVersion, seq: e.seq, state: input.state, hash: e.hash, status: input.status,
    unit: input.orgUnitId, definition_id: input.definitionId, type: e.type, actor_id: e.actorId ?? undefined, on_behalf_of: e.onBehalfOf ?? undefined,
    role: e.role ?? undefined, event_unit: e.orgUnitId ?? undefined, recorded_at: e.recordedAt, prev_hash: e.prevHash ?? undefined,
    schedule: input.schedule, cancel: input.cancel, fire_id: input.firing?.timerId, fire_by: input.firing?.claimedBy,
    mark_fired: input.firing?.markFired === true ? input.firing.timerId : undefined,
    idem_actor: idem?.actorId, idem_key: idem?.key, idem_hash: idem?.requestHash, idem_response: idem?.response,
  });
  return `${scalars.slice(0, -1)},"data":${j.data},"snapshot":${j.snapshot},"payload":${j.payload},"facts":${j.facts},"decision":${j.decision},"resulting_state":${j.resultingState}}`;
}

interface Pending {
  readonly input: AppendInput;
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * An event the batcher has been told of before its step is computed: {@link PendingAppend.append}
 * hands it over, {@link PendingAppend.withdraw} says it will not come (the step was refused, or
 * failed). Withdrawing after appending does nothing, so callers withdraw in `finally`.
 */
export interface PendingAppend {
  append(input: AppendInput): Promise<AppendResult>;
  withdraw(): void;
}

/**
 * Group commit: events that arrive while every write slot is busy wait and leave together in one
 * statement when a slot frees, so they share one commit (one WAL flush) instead of paying one each.
 * Each event still applies or not on its own version check, and no caller is answered before its
 * event is committed. Callers must not put two events of one case in flight at once (the engine
 * serializes per case).
 *
 * A free slot takes the waiting events at once unless at least as many more are still being
 * computed ({@link prepare}): then it waits for them, up to half of what is in the process. Taking
 * whatever waits at once let the batches settle into a lopsided rhythm (measured: 1 event, then 15,
 * then 1, …): while the 15 were written the process had only 1 step to compute and idled, and
 * while the 1 was written it computed 15. Halves keep the two sides of the pipeline busy together,
 * the database writing one half while the process computes the other; a lone event still leaves
 * at once.
 *
 * While a batch is in flight, a further slot sends only a whole batch: when every event in the
 * process is either waiting or in flight (none is being computed) and at least as many wait as are
 * in flight, or `maxBatch` wait. So the next half leaves as soon as it is complete, and the
 * database starts on it as soon as it has written the one before (on another connection), instead
 * of idling for the round trip while the process reads the answer; and it is not split into
 * smaller batches, each paying the statement's fixed cost (a second slot taking whatever waited
 * made batches of 5 instead of 8 in bench:engine and was slower than one slot; with this rule it
 * was 8–18% faster, three pairs of runs alternated). Events that arrive one by one (HTTP requests,
 * which the batcher sees only once their step starts) still leave in smaller batches with two
 * slots than with one (5.5 against 7.5 in bench:http), which is why the service runs with one
 * (`SERVICE_ENGINE_OPTIONS`).
 * @example
 * const batcher = new AppendBatcher(store);
 * const pending = batcher.prepare();
 * try { const r = await pending.append(input); } finally { pending.withdraw(); }
 */
export class AppendBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  /** Events prepared and not yet appended or withdrawn: steps being computed. */
  private computing = 0;
  /** Events in the batches in flight. */
  private writing = 0;

  constructor(private readonly store: OpenedDatabase, private readonly maxBatch = 64, private readonly maxInFlight = 2) {}

  /** Tells the batcher an event is coming (its step is being computed), so a batch may wait for it. */
  prepare(): PendingAppend {
    let open = true;
    this.computing++;
    const close = (): boolean => {
      if (!open) return false;
      open = false;
      this.computing--;
      return true;
    };
    return {
      append: (input) => {
        if (!close()) return Promise.reject(new StoreError('STORE_APPEND_REUSED', 'This pending append was already appended or withdrawn; call prepare() again for each event.'));
        return this.enqueue(input);
      },
      withdraw: () => {
        if (close()) this.flush();
      },
    };
  }

  /** Appends an event nobody was told of beforehand. */
  append(input: AppendInput): Promise<AppendResult> {
    return this.enqueue(input);
  }

  private enqueue(input: AppendInput): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0 && this.ready()) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.writing += batch.length;
      this.inFlight++;
      void this.write(batch, true);
    }
  }

  /** Whether the waiting events should leave now in a free slot (see the class's comment). */
  private ready(): boolean {
    if (this.queue.length >= this.maxBatch) return true;
    if (this.inFlight === 0) return this.queue.length >= this.computing;
    return this.computing === 0 && this.queue.length >= this.writing;
  }

  /** Writes a batch; `slot`: it holds a write slot, freed as soon as the statement returns. */
  private async write(batch: Pending[], slot: boolean): Promise<void> {
    try {
      let rows: readonly { i: number; applied: boolean; prior: unknown }[];
      try {
        const form = BATCH_FORMS[batch.some((p) => p.input.firing !== undefined) ? 1 : 0]![batch.some((p) => p.input.idempotency !== undefined) ? 1 : 0]!;
        rows = await this.store.write<{ i: number; applied: boolean; prior: unknown }>(
          form.text, [`[${batch.map((p, i) => batchRowJson(i, p.input)).join(',')}]`], form.name);
      } finally {
        if (slot) {
          // The next batch leaves before this one's callers go on computing their next steps.
          this.inFlight--;
          this.writing -= batch.length;
          this.flush();
        }
      }
      const byIndex = new Map(rows.map((r) => [Number(r.i), r]));
      batch.forEach((p, i) => {
        const r = byIndex.get(i);
        if (r !== undefined && r.applied === true) p.resolve({ applied: true });
        else p.resolve({ applied: false, prior: r?.prior === null || r?.prior === undefined ? null : r.prior as PriorAnswer });
      });
    } catch (e) {
      if (batch.length > 1 && isStatementError(e)) {
        // One bad event must not sink the others: write them one by one so only it fails.
        await Promise.all(batch.map((p) => this.write([p], false)));
        return;
      }
      for (const p of batch) p.reject(e);
    }
  }
}
