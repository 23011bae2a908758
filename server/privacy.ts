/**
 * Who may read which case (属地), and residents' personal data in what they read.
 *
 * Jurisdiction: a caller sees a case when it is in or below a unit where they hold a role, when
 * they submitted it, or when its data names them or such a unit (the department it was dispatched
 * to, the party member who claimed it) — the same notion the inbox uses to find who can act.
 * 督查员, 政策员 and 管理员 see every case. A case out of reach reads as 404 CASE_NOT_FOUND,
 * exactly as a case that does not exist, so that ids cannot be probed.
 *
 * Personal data: text fields of a workflow's case data (and of event payloads) that hold a
 * resident's name or phone number, found from the workflow's own declarations (see
 * {@link personalKind}). They are masked (王**, 138****0000) except for the people who must call
 * the resident: the submitter, a contact role (社区书记, 代办员, 网格员 by default) held in the
 * case's unit or a unit above it, and a person the case names as its handler (an `actor` field,
 * such as the party member who claimed it). Lists are always masked; so are the answers to writes
 * (events, case operations) except to the submitter. Every unmasked read by someone other than
 * the submitter is logged (a pino line and a `personal_data_reads` row) before the data is sent.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { CompiledDefinition } from '../dsl/compile.ts';
import type { FieldType, Value } from '../dsl/types.ts';
import type { CaseView, Engine } from '../engine/engine.ts';
import { EngineError } from '../engine/errors.ts';
import { lineage, type OrgView } from '../engine/org.ts';
import { recordPersonalDataRead } from '../engine/store/personal-data.ts';
import type { CaseReachInfo } from '../engine/changes.ts';
import { holds, SERVER_ROLES, type Principal } from './auth.ts';
import { principalOf } from './context.ts';

// ---- which fields are personal ------------------------------------------------------------

export type PersonalKind = 'name' | 'phone';

const PHONE_WORDS = /电话|手机|联系方式/;
const NAME_WORDS = /姓名|联系人/;
/** A mainland mobile-number pattern as workflows write it: `^1[0-9]{10}$`, `^1[3-9]\d{9}$`, `^1\d{10}$`. */
const MOBILE_PATTERN = /^\^1(\[|\\d)/;

/**
 * Whether a declared field holds a resident's name or phone number: a text field (or list of
 * text) whose name or label says so (电话, 手机, 联系方式 → phone; 姓名, 联系人 → name), or whose
 * pattern is a mobile-number pattern (→ phone). Other fields are not personal data.
 * @example personalKind('电话', { type: { kind: 'text' }, optional: false, constraints: { pattern: '^1[0-9]{10}$' } }) // 'phone'
 */
export function personalKind(name: string, f: FieldType): PersonalKind | null {
  const t = f.type.kind === 'list' ? f.type.item : f.type;
  if (t.kind !== 'text') return null;
  const words = `${name} ${f.label ?? ''}`;
  if (PHONE_WORDS.test(words) || (f.constraints.pattern !== undefined && MOBILE_PATTERN.test(f.constraints.pattern))) return 'phone';
  if (NAME_WORDS.test(words)) return 'name';
  return null;
}

/** The personal fields of a workflow: in its case data, in each event's payload; and its `actor` fields. */
export interface PersonalSpec {
  readonly caseFields: ReadonlyMap<string, PersonalKind>;
  /** Event type → its payload's personal fields (over every state that accepts it). */
  readonly eventFields: ReadonlyMap<string, ReadonlyMap<string, PersonalKind>>;
  /** Case fields naming a person (e.g. the party member who claimed the case): its handlers. */
  readonly actorFields: readonly string[];
}

function personalOf(fields: Readonly<Record<string, FieldType>>, into: Map<string, PersonalKind> = new Map()): Map<string, PersonalKind> {
  for (const [name, f] of Object.entries(fields)) {
    const k = personalKind(name, f);
    if (k !== null) into.set(name, k);
  }
  return into;
}

const specs = new WeakMap<CompiledDefinition, PersonalSpec>();

/**
 * The personal fields of a compiled workflow, worked out once per definition.
 * @example personalSpec(runtime.definition).caseFields // Map { '姓名' => 'name', '电话' => 'phone' }
 */
export function personalSpec(def: CompiledDefinition): PersonalSpec {
  let s = specs.get(def);
  if (s === undefined) {
    const eventFields = new Map<string, Map<string, PersonalKind>>();
    for (const state of Object.values(def.states)) {
      for (const [type, ev] of Object.entries(state.events)) {
        const m = personalOf(ev.payload, eventFields.get(type));
        if (m.size > 0) eventFields.set(type, m);
      }
    }
    const actorFields = Object.entries(def.caseFields).filter(([, f]) => f.type.kind === 'actor').map(([n]) => n);
    s = { caseFields: personalOf(def.caseFields), eventFields, actorFields };
    specs.set(def, s);
  }
  return s;
}

// ---- masks ------------------------------------------------------------------------------------

/**
 * `13800001234` → `138****1234`: enough to recognise, not enough to call.
 * @example maskPhone('13800001234') // '138****1234'
 */
export function maskPhone(phone: string): string {
  const digits = phone.replace(/\D/g, '');
  if (digits.length < 7) return '****';
  return `${digits.slice(0, 3)}****${digits.slice(-4)}`;
}

/**
 * The family name and a star per other character: `王先生` → `王**`.
 * @example maskName('欧阳娜娜') // '欧***'
 */
export function maskName(name: string): string {
  const chars = Array.from(name.trim());
  if (chars.length <= 1) return '*';
  return `${chars[0] ?? ''}${'*'.repeat(chars.length - 1)}`;
}

function maskValue(kind: PersonalKind, v: Value | undefined): Value | undefined {
  const one = (s: string): string => (kind === 'phone' ? maskPhone(s) : maskName(s));
  if (typeof v === 'string') return one(v);
  if (Array.isArray(v)) return v.map((x: Value) => (typeof x === 'string' ? one(x) : x));
  return v;
}

function present(v: unknown): boolean {
  return v !== null && v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0);
}

/**
 * A record with its personal fields masked, and the names of the fields that held a value.
 * @example maskFields({ 姓名: '王先生', 心愿: '修灯' }, new Map([['姓名', 'name']])) // { data: { 姓名: '王**', 心愿: '修灯' }, masked: ['姓名'] }
 */
export function maskFields(data: Readonly<Record<string, Value>>, fields: ReadonlyMap<string, PersonalKind>): { data: Record<string, Value>; masked: string[] } {
  const out: Record<string, Value> = { ...data };
  const masked: string[] = [];
  for (const [name, kind] of fields) {
    if (!present(out[name])) continue;
    out[name] = maskValue(kind, out[name]) ?? null;
    masked.push(name);
  }
  return { data: out, masked };
}

/** The personal values of a record, each with its mask, for finding them again elsewhere (effects, replay diffs). */
function secretsOf(data: unknown, fields: ReadonlyMap<string, PersonalKind>, into: Map<string, string>): void {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return;
  const rec = data as Record<string, unknown>;
  for (const [name, kind] of fields) {
    const v = rec[name];
    for (const s of Array.isArray(v) ? v : [v]) {
      if (typeof s === 'string' && s.length > 0) into.set(s, kind === 'phone' ? maskPhone(s) : maskName(s));
    }
  }
}

/** Replaces every string equal to a known personal value, anywhere in a JSON value. */
function scrub(v: unknown, secrets: ReadonlyMap<string, string>): unknown {
  if (secrets.size === 0) return v;
  if (typeof v === 'string') return secrets.get(v) ?? v;
  if (Array.isArray(v)) return v.map((x) => scrub(x, secrets));
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x, secrets)]));
  return v;
}

// ---- jurisdiction -----------------------------------------------------------------------------

/** Roles that see every case (督查员 still changes nothing through the role). */
export const SEE_ALL_ROLES: readonly string[] = [SERVER_ROLES.auditor, SERVER_ROLES.policy, SERVER_ROLES.admin];

/**
 * Whether the caller reads every case regardless of jurisdiction.
 * @example if (!seesEverything(p)) filter.visibleTo = p.actor;
 */
export function seesEverything(p: Principal): boolean {
  return p.caseScope === undefined && SEE_ALL_ROLES.some((r) => holds(p, r));
}

/** What jurisdiction is judged on: the change feed's case facts (engine/changes.ts). */
export type CaseReach = CaseReachInfo;

/**
 * Whether the caller may read the case (see the module comment); a case token reads its own case
 * only. Matches the ledger's `visibleTo` filter (engine/store/queries.ts `casePage`).
 * @example canSee(org, { actor: '卫健局书记钱', roles }, view) // true once 派单 named 县卫健局
 */
export function canSee(org: OrgView, p: Principal, c: CaseReach): boolean {
  if (p.caseScope !== undefined) return p.caseScope === c.id;
  if (seesEverything(p)) return true;
  if (c.submitter !== null && c.submitter === p.actor) return true;
  const held = new Set(p.roles.map((g) => g.unit));
  const holdsAbove = (unit: string): boolean => lineage(org, unit).some((u) => held.has(u));
  if (c.unit !== null && holdsAbove(c.unit)) return true;
  for (const v of Object.values(c.data)) {
    for (const s of Array.isArray(v) ? v : [v]) {
      if (typeof s === 'string' && (s === p.actor || holdsAbove(s))) return true;
    }
  }
  return false;
}

// ---- who may see personal data unmasked -------------------------------------------------------

/** Why a reader may see a case's personal data unmasked. */
export type DisclosureReason = 'submitter' | 'contact' | 'handler';

/** Roles that must call residents: they see names and phone numbers of cases in their units. */
export const DEFAULT_CONTACT_ROLES: readonly string[] = ['社区书记', '代办员', '网格员'];

/**
 * Why the caller may see the case's personal data unmasked, or null when they may not.
 * @example disclosure(org, { actor: '社区书记张', roles }, view, spec, new Set(DEFAULT_CONTACT_ROLES)) // 'contact'
 */
export function disclosure(org: OrgView, p: Principal, view: CaseReach, spec: PersonalSpec, contactRoles: ReadonlySet<string>): DisclosureReason | null {
  if (view.submitter !== null && view.submitter === p.actor) return 'submitter';
  if (p.caseScope !== undefined) return null;
  if (view.unit !== null) {
    const line = lineage(org, view.unit);
    if (p.roles.some((g) => contactRoles.has(g.role) && line.includes(g.unit))) return 'contact';
  }
  if (spec.actorFields.some((f) => view.data[f] === p.actor)) return 'handler';
  return null;
}

// ---- the HTTP layer's use of it ------------------------------------------------------------------

/** Case data as one reader receives it. */
export interface ShownData {
  readonly data: Record<string, Value>;
  /** Fields shown masked. */
  readonly masked: readonly string[];
}

/** A history event as the history route answers it (only the fields masking touches are typed). */
export interface MaskableEvent {
  readonly type: string;
  readonly payload: unknown;
  readonly effects: readonly unknown[];
}

export interface PersonalDataOptions {
  /** Roles that see personal data of cases in their units (default {@link DEFAULT_CONTACT_ROLES}). */
  readonly contactRoles?: readonly string[];
}

function routeOf(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0] ?? ''}`;
}

/**
 * Applies jurisdiction and masking for the routes, and keeps the log of unmasked reads.
 * @example
 * const privacy = new PersonalData(engine);
 * const view = await privacy.readableCase(request, id);
 * return caseBody(view, actions, await privacy.forRead(request, view));
 */
export class PersonalData {
  private readonly contactRoles: ReadonlySet<string>;

  constructor(private readonly engine: Engine, options: PersonalDataOptions = {}) {
    this.contactRoles = new Set(options.contactRoles ?? DEFAULT_CONTACT_ROLES);
  }

  /** The case, or 404 CASE_NOT_FOUND when it does not exist or is out of the caller's reach. */
  async readableCase(request: FastifyRequest, caseId: string): Promise<CaseView> {
    const view = await this.engine.getCase(caseId);
    await this.requireVisible(request, view);
    return view;
  }

  /** Refuses with 404 CASE_NOT_FOUND, as for an unknown case, when the caller may not read it. */
  async requireVisible(request: FastifyRequest, c: CaseReach): Promise<void> {
    const org = await this.engine.org();
    const p = principalOf(request);
    // Roles as they are now: the same as the request's, except for a stream that outlives its request.
    if (canSee(org, p.caseScope === undefined ? { ...p, roles: org.rolesOf(p.actor) } : p, c)) return;
    request.log.info({ caseId: c.id }, 'case outside the caller\'s jurisdiction');
    throw new EngineError('CASE_NOT_FOUND', `No case ${c.id}.`, { caseId: c.id });
  }

  private async spec(definitionId: string): Promise<PersonalSpec> {
    return personalSpec((await this.engine.loadDefinition(definitionId)).runtime.definition);
  }

  private async decide(request: FastifyRequest, view: CaseView): Promise<{ spec: PersonalSpec; reason: DisclosureReason | null }> {
    const spec = await this.spec(view.definitionId);
    if (spec.caseFields.size === 0 && spec.eventFields.size === 0) return { spec, reason: null };
    return { spec, reason: disclosure(await this.engine.org(), principalOf(request), view, spec, this.contactRoles) };
  }

  /**
   * Records an unmasked read (a pino line and a database row) before it is answered; the
   * submitter reading what they gave is not recorded.
   */
  private async record(request: FastifyRequest, caseId: string, reason: DisclosureReason, fields: readonly string[]): Promise<void> {
    if (reason === 'submitter' || fields.length === 0) return;
    const p = principalOf(request);
    const route = routeOf(request);
    request.log.info({ caseId, reason, fields, route }, 'personal data read unmasked');
    await recordPersonalDataRead(this.engine.store, {
      caseId, at: this.engine.now(), readId: randomUUID(), actor: p.actor, reason, fields: [...fields], route, requestId: request.id,
    });
  }

  /** A case's current data for a reader of that one case: unmasked (and logged) or masked. */
  async forRead(request: FastifyRequest, view: CaseView): Promise<ShownData> {
    return this.dataAsOf(request, view, view.data);
  }

  /** Data of the case as it stood at another time, judged by who may read the case now. */
  async dataAsOf(request: FastifyRequest, view: CaseView, data: Readonly<Record<string, Value>>): Promise<ShownData> {
    const { spec, reason } = await this.decide(request, view);
    const { data: masked, masked: fields } = maskFields(data, spec.caseFields);
    if (reason === null) return { data: masked, masked: fields };
    await this.record(request, view.id, reason, fields);
    return { data: { ...data }, masked: [] };
  }

  /** For the answer to a write (an event, a case operation): unmasked only to the submitter; never logged. */
  async forWrite(request: FastifyRequest, view: CaseView): Promise<ShownData> {
    const spec = await this.spec(view.definitionId);
    if (view.submitter !== null && view.submitter === principalOf(request).actor) return { data: { ...view.data }, masked: [] };
    return maskFields(view.data, spec.caseFields);
  }

  /** For a list (the inbox): always masked. */
  async forList(definitionId: string, data: Readonly<Record<string, Value>>): Promise<ShownData> {
    return maskFields(data, (await this.spec(definitionId)).caseFields);
  }

  /**
   * A page of history: personal fields of payloads (the start's case data, an event's declared
   * fields) masked, and any copy of those values elsewhere in the events (effects) too, unless the
   * caller may see them, in which case the read is logged.
   */
  async history<E extends MaskableEvent>(request: FastifyRequest, view: CaseView, events: readonly E[]): Promise<E[]> {
    const { spec, reason } = await this.decide(request, view);
    const keysOf = (type: string): ReadonlyMap<string, PersonalKind> => (type === 'start' ? spec.caseFields : spec.eventFields.get(type) ?? new Map());
    if (reason !== null) {
      const fields = new Set<string>();
      for (const e of events) {
        if (typeof e.payload !== 'object' || e.payload === null) continue;
        for (const k of keysOf(e.type).keys()) if (present((e.payload as Record<string, unknown>)[k])) fields.add(k);
      }
      await this.record(request, view.id, reason, [...fields]);
      return [...events];
    }
    const secrets = new Map<string, string>();
    secretsOf(view.data, spec.caseFields, secrets);
    for (const e of events) secretsOf(e.payload, keysOf(e.type), secrets);
    return events.map((e) => ({ ...e, payload: scrub(e.payload, secrets), effects: e.effects.map((x) => scrub(x, secrets)) }));
  }

  /** Replay's stored and replayed values (which may hold the case data): always masked. */
  async forReplay(view: CaseView, values: readonly unknown[]): Promise<unknown[]> {
    const spec = await this.spec(view.definitionId);
    const secrets = new Map<string, string>();
    secretsOf(view.data, spec.caseFields, secrets);
    for (const v of values) {
      if (typeof v === 'object' && v !== null) secretsOf((v as Record<string, unknown>)['data'], spec.caseFields, secrets);
    }
    return values.map((v) => scrub(v, secrets));
  }
}
