/**
 * What an actor may do now: the events a case accepts from them (with the form to fill in, as a
 * JSON Schema), and the inbox built from it. Decided by the same checks `sendEvent` makes — the
 * state accepts the event, and a dry run of `authorize` admits the actor — so the inbox never
 * offers what would then be refused for the state or the sender. `require` conditions are not
 * checked here: most depend on the payload, which is not known until the form is sent.
 */
import type { CaseContext, CaseEvent, Runtime } from '../dsl/runtime.ts';
import type { FieldType, Type, Value } from '../dsl/types.ts';
import type { WhoSpec } from '../dsl/compile.ts';
import { authorize, type Authorization } from './authorize.ts';
import type { CaseState, Engine } from './engine.ts';
import { CREATED_US, decodeCursor, encodeCursor, PAGE_CURSOR_HINT } from './cursor.ts';
import { EngineError } from './errors.ts';
import { liveOracle, type OrgView } from './org.ts';
import { acceptedEvents, type CaseSnapshot } from './step.ts';
import { inboxCandidates, type CaseListRow, type InboxPosition } from './store/admin.ts';
import type { Oracle } from '../dsl/expr-eval.ts';

// ---- JSON Schema of payloads -------------------------------------------------------------

export type JsonSchemaType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';

/**
 * The subset of JSON Schema (draft 2020-12 and draft-07 alike) the payload forms use. `x-wf-type`
 * is an annotation naming the workflow type where JSON has none (org unit, actor, duration), so
 * a form can offer an org-tree or people picker; validators that refuse unknown keywords (Ajv in
 * strict mode) need it declared or `strict: false`.
 */
export interface JsonSchema {
  readonly type?: JsonSchemaType | readonly JsonSchemaType[];
  readonly title?: string;
  readonly description?: string;
  readonly format?: string;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  /** Bounds of a date-time (Ajv's `ajv-formats` keywords). */
  readonly formatMinimum?: string;
  readonly formatMaximum?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly enum?: readonly (string | null)[];
  readonly items?: JsonSchema;
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean;
  readonly anyOf?: readonly JsonSchema[];
  readonly default?: Value;
  readonly 'x-wf-type'?: 'org' | 'actor' | 'duration';
}

function typeSchema(t: Type, c: FieldType['constraints']): JsonSchema {
  switch (t.kind) {
    case 'text':
      return {
        type: 'string',
        ...(c.pattern === undefined ? {} : { pattern: c.pattern }),
        ...(c.minLength === undefined ? {} : { minLength: c.minLength }),
        ...(c.maxLength === undefined ? {} : { maxLength: c.maxLength }),
      };
    case 'number':
      return {
        type: 'number',
        ...(typeof c.min === 'number' ? { minimum: c.min } : {}),
        ...(typeof c.max === 'number' ? { maximum: c.max } : {}),
      };
    case 'boolean':
      return { type: 'boolean' };
    case 'datetime':
      return {
        type: 'string', format: 'date-time',
        ...(typeof c.min === 'string' ? { formatMinimum: c.min } : {}),
        ...(typeof c.max === 'string' ? { formatMaximum: c.max } : {}),
      };
    case 'duration':
      // As `validateRecord` takes it: text such as "2 workdays" / "48 小时" / "PT30M", or the runtime form.
      return {
        'x-wf-type': 'duration',
        anyOf: [
          { type: 'string', description: 'A duration such as "2 workdays", "48 hours" or "PT30M".' },
          {
            type: 'object',
            properties: { ms: { type: 'number' }, workdays: { type: 'number' } },
            required: ['ms', 'workdays'],
            additionalProperties: false,
          },
        ],
      };
    case 'org':
      return { type: 'string', minLength: 1, 'x-wf-type': 'org' };
    case 'actor':
      return { type: 'string', minLength: 1, 'x-wf-type': 'actor' };
    case 'enum':
      return { type: 'string', enum: t.members };
    case 'list':
      return {
        type: 'array',
        items: typeSchema(t.item, {}),
        ...(c.minLength === undefined ? {} : { minItems: c.minLength }),
        ...(c.maxLength === undefined ? {} : { maxItems: c.maxLength }),
      };
    case 'record':
      return fieldTypesToJsonSchema(t.fields);
    case 'null':
      return { type: 'null' };
    case 'unknown':
      return {};
  }
}

/** Null stands for "absent" (validateRecord takes it so), so a field that need not be given may be null. */
function nullable(s: JsonSchema): JsonSchema {
  if (typeof s.type === 'string' && s.anyOf === undefined) {
    return { ...s, type: [s.type, 'null'], ...(s.enum === undefined ? {} : { enum: [...s.enum, null] }) };
  }
  if (s.anyOf !== undefined) return { ...s, anyOf: [...s.anyOf, { type: 'null' }] };
  return s;
}

/**
 * The JSON Schema of a record of declared fields (an event's payload, the case data): a field
 * with neither `?` nor a default is required; labels become titles; constraints map to
 * pattern / minimum / maximum / minLength / maxLength (minItems / maxItems on lists); unknown
 * fields are refused, as `validateRecord` refuses them.
 * @example
 * fieldTypesToJsonSchema({ 单位: { type: { kind: 'org' }, optional: false, label: '接单单位', constraints: {} } })
 * // { type: 'object', properties: { 单位: { type: 'string', minLength: 1, 'x-wf-type': 'org', title: '接单单位' } },
 * //   required: ['单位'], additionalProperties: false }
 */
export function fieldTypesToJsonSchema(fields: Readonly<Record<string, FieldType>>): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [name, f] of Object.entries(fields)) {
    let s = typeSchema(f.type, f.constraints);
    const mustGive = !f.optional && f.default === undefined;
    if (!mustGive) s = nullable(s);
    if (f.label !== undefined) s = { ...s, title: f.label };
    if (f.default !== undefined) s = { ...s, default: f.default };
    if (mustGive) required.push(name);
    properties[name] = s;
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

// ---- available actions -------------------------------------------------------------------

/** One event an actor may send now. */
export interface AvailableAction {
  readonly event: string;
  readonly label?: string;
  /** Who may send it, as a person would read it: "社区书记 of 永乐社区; 街道书记 of 永乐社区". */
  readonly who: string;
  /** The clause that admits this actor (what `sendEvent` will record). */
  readonly as: Pick<Authorization, 'role' | 'unit' | 'clause'>;
  /** The form to fill in. */
  readonly payloadSchema: JsonSchema;
  /** For a multi-unit step (吹哨报到): the pending units this actor may act for, to send as `instance`. */
  readonly units?: readonly string[];
}

/** What deciding needs besides the case: the org view and the event envelope's time and oracle. */
export interface ActionContext {
  readonly org: OrgView;
  readonly now: string;
  readonly oracle: Oracle;
}

function describeWho(rt: Runtime, state: string, who: readonly WhoSpec[], ctx: CaseContext, probe: CaseEvent, pending: readonly string[] | undefined): string {
  const parts: string[] = [];
  for (const w of who) {
    switch (w.kind) {
      case 'anyone':
        parts.push('anyone');
        break;
      case 'person': {
        const p = rt.evalWho(w, state, ctx, probe);
        parts.push(typeof p === 'string' ? p : 'nobody (the person field is empty)');
        break;
      }
      case 'role': {
        if (pending !== undefined && w.of !== undefined) {
          const units = pending.map((u) => rt.evalWho(w, state, ctx, { ...probe, instance: u })).filter((u): u is string => typeof u === 'string');
          parts.push(units.length === 0 ? w.role : `${w.role} of ${units.join(', ')}`);
          break;
        }
        const unit = rt.evalWho(w, state, ctx, probe);
        parts.push(typeof unit === 'string' ? `${w.role} of ${unit}` : w.role);
        break;
      }
    }
  }
  return parts.join('; ');
}

function dryAuthorize(run: () => Authorization): Authorization | undefined {
  try {
    return run();
  } catch (e) {
    // NOT_POSSIBLE: a unit that has already acted in this multi-unit step.
    if (e instanceof EngineError && (e.code === 'NOT_ALLOWED' || e.code === 'NOT_POSSIBLE')) return undefined;
    throw e;
  }
}

/**
 * The events `actor` may send to a case in this snapshot; pure. A closed case (or, passing
 * `suspended`, a suspended one) has none. For a multi-unit step, an action is offered when the
 * actor may act for at least one pending unit, and `units` lists them.
 * @example const actions = actionsFor(rt, snapshot, false, '社区书记张', { org, now, oracle });
 */
export function actionsFor(rt: Runtime, snapshot: CaseSnapshot, suspended: boolean, actor: string, at: ActionContext): AvailableAction[] {
  if (suspended || snapshot.status === 'done') return [];
  const stateSpec = rt.definition.states[snapshot.state];
  if (stateSpec === undefined) return [];
  const ctx = snapshot.context;
  const out: AvailableAction[] = [];
  for (const type of acceptedEvents(rt, snapshot)) {
    const spec = stateSpec.events[type];
    if (spec === undefined) continue;
    const probe: CaseEvent = { type, actor, payload: {}, now: at.now, oracle: at.oracle };
    const m = ctx.multi;
    const isMulti = stateSpec.multi?.event === type && m !== null && m.state === snapshot.state && spec.instanceVariable !== undefined;
    let auth: Authorization | undefined;
    let units: string[] | undefined;
    let pending: string[] | undefined;
    if (isMulti && spec.instanceVariable !== undefined) {
      pending = m.items.filter((u) => m.done[u] === undefined);
      const multi = { pending, variable: spec.instanceVariable, done: m.items.filter((u) => m.done[u] !== undefined) };
      units = [];
      for (const u of pending) {
        const a = dryAuthorize(() => authorize(rt, snapshot.state, spec.who, ctx, { ...probe, instance: u }, at.org, multi));
        if (a !== undefined && a.instance === u) {
          auth ??= a;
          units.push(u);
        }
      }
      if (units.length === 0) continue;
    } else {
      auth = dryAuthorize(() => authorize(rt, snapshot.state, spec.who, ctx, probe, at.org));
      if (auth === undefined) continue;
    }
    if (auth === undefined) continue;
    out.push({
      event: type,
      ...(spec.label === undefined ? {} : { label: spec.label }),
      who: describeWho(rt, snapshot.state, spec.who, ctx, probe, pending),
      as: { role: auth.role, unit: auth.unit, clause: auth.clause },
      payloadSchema: fieldTypesToJsonSchema(spec.payload),
      ...(units === undefined ? {} : { units }),
    });
  }
  return out;
}

/** What judging actions needs now: the org tree, the time and a live oracle. */
export async function actionContext(engine: Engine): Promise<ActionContext> {
  const org = await engine.org();
  return { org, now: engine.now(), oracle: liveOracle(org, engine.workCalendar) };
}

/**
 * The events an actor may send to a case now, each with its label, who may send it, the payload
 * form as JSON Schema and, for a multi-unit step, the units the actor may act for. A suspended or
 * closed case has none. Throws CASE_NOT_FOUND.
 * @example
 * const actions = await availableActions(engine, caseId, '社区书记张');
 * // [{ event: '派单', label: '派单', who: '社区书记 of 永乐社区; 街道书记 of 永乐社区', payloadSchema: { … } }]
 */
export async function availableActions(engine: Engine, caseId: string, actorId: string): Promise<AvailableAction[]> {
  return actionsInState(engine, await engine.caseState(caseId), actorId);
}

/**
 * {@link availableActions} for a case already read with `engine.caseState` (a caller that checks
 * the case before offering its actions reads it once).
 * @example const cs = await engine.caseState(id); const actions = await actionsInState(engine, cs, actor);
 */
export async function actionsInState(engine: Engine, cs: Pick<CaseState, 'runtime' | 'snapshot' | 'suspended'>, actorId: string): Promise<AvailableAction[]> {
  return actionsFor(cs.runtime, cs.snapshot, cs.suspended, actorId, await actionContext(engine));
}

// ---- inbox -------------------------------------------------------------------------------

/** A case in an inbox with what the actor may do to it. */
export interface InboxItem {
  readonly caseId: string;
  readonly workflow: string;
  readonly definitionVersion: number;
  /** The id of that version's stored definition. */
  readonly definitionId: string;
  readonly state: string;
  readonly stateLabel?: string;
  /** The responsible org unit. */
  readonly unit: string | null;
  readonly submitter: string | null;
  readonly data: Readonly<Record<string, Value>>;
  readonly due: Readonly<Record<string, string>>;
  readonly actions: readonly AvailableAction[];
}

export interface InboxPage {
  readonly items: readonly InboxItem[];
  /** Pass back as `cursor` for the next page; null when there is none. */
  readonly nextCursor: string | null;
}

export interface InboxOptions {
  /** At most this many items (default 20, at most 200). */
  readonly limit?: number;
  readonly cursor?: string | null;
}

function encodeInboxCursor(p: InboxPosition): string {
  return encodeCursor([p.createdUs, p.id]);
}

function decodeInboxCursor(cursor: string): InboxPosition {
  return decodeCursor(cursor, { who: 'this inbox', field: 'cursor', hint: PAGE_CURSOR_HINT }, (v) =>
    v.length === 2 && typeof v[0] === 'string' && CREATED_US.test(v[0]) && typeof v[1] === 'string' ? { createdUs: v[0], id: v[1] } : undefined);
}

/** A listed case row as the snapshot the step functions take. */
export function snapshotOf(row: CaseListRow): CaseSnapshot {
  const context = { ...(row.snapshot as Omit<CaseContext, 'data'>), data: row.data as CaseContext['data'] };
  return { state: row.state, status: row.status === 'done' ? 'done' : 'active', context };
}

/** Candidates read per query; most are kept when the actor's roles are narrow. */
const BATCH = 100;
/** Candidates looked at per page at most, so one call stays bounded; the cursor continues the scan. */
const MAX_SCANNED = 2_000;

/**
 * The cases where an actor can act now, oldest first, with their actions. Candidates come from
 * the database (cases in the subtree of the units where the actor holds a role, cases they
 * submitted, cases whose data names them or such a unit) and each is kept only if
 * {@link actionsFor} offers it something. A page may hold fewer than `limit` items while
 * `nextCursor` is not null: the scan stopped at its bound; ask again with the cursor.
 * @example
 * let page = await inbox(engine, '卫健局书记钱', { limit: 20 });
 * while (page.nextCursor !== null) page = await inbox(engine, '卫健局书记钱', { limit: 20, cursor: page.nextCursor });
 */
export async function inbox(engine: Engine, actorId: string, options: InboxOptions = {}): Promise<InboxPage> {
  const limit = Math.max(1, Math.min(200, Math.floor(options.limit ?? 20)));
  let after: InboxPosition | null = options.cursor === undefined || options.cursor === null ? null : decodeInboxCursor(options.cursor);
  const at = await actionContext(engine);
  const items: InboxItem[] = [];
  let scanned = 0;
  for (;;) {
    const rows = await inboxCandidates(engine.store, actorId, after, BATCH);
    for (const row of rows) {
      scanned++;
      after = { createdUs: row.createdUs, id: row.id };
      const def = await engine.loadDefinition(row.definitionId);
      const snapshot = snapshotOf(row);
      const actions = actionsFor(def.runtime, snapshot, false, actorId, at);
      if (actions.length === 0) continue;
      const label = def.runtime.definition.states[snapshot.state]?.label;
      items.push({
        caseId: row.id,
        workflow: def.row.name,
        definitionVersion: def.row.version,
        definitionId: def.row.id,
        state: snapshot.state,
        ...(label === undefined ? {} : { stateLabel: label }),
        unit: snapshot.context.unit,
        submitter: snapshot.context.submitter,
        data: snapshot.context.data,
        due: snapshot.context.due,
        actions,
      });
      if (items.length === limit) return { items, nextCursor: encodeInboxCursor(after) };
    }
    if (rows.length < BATCH) return { items, nextCursor: null };
    if (scanned >= MAX_SCANNED && after !== null) return { items, nextCursor: encodeInboxCursor(after) };
  }
}
