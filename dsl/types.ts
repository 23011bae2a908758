/**
 * Semantic types of case data, payloads, expressions and rule-table columns, and the runtime
 * representation of their values. Values are plain JSON so snapshots and events store as they are.
 *
 * | type       | runtime value                                                        |
 * |------------|----------------------------------------------------------------------|
 * | text       | string                                                               |
 * | number     | number (finite)                                                      |
 * | boolean    | boolean                                                              |
 * | datetime   | ISO-8601 string in UTC, as `Date.prototype.toISOString()` writes it    |
 * | duration   | `{ ms, workdays }`: clock milliseconds plus working days (工作日)       |
 * | org        | string: the org unit's id                                            |
 * | actor      | string: the actor's id                                               |
 * | enum       | string: one of the members                                           |
 * | list of T  | array                                                                |
 * | record     | object                                                               |
 * | (any type) | null when absent                                                     |
 */

export type Type =
  | { readonly kind: 'text' }
  | { readonly kind: 'number' }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'datetime' }
  | { readonly kind: 'duration' }
  | { readonly kind: 'org' }
  | { readonly kind: 'actor' }
  | { readonly kind: 'enum'; readonly members: readonly string[] }
  | { readonly kind: 'list'; readonly item: Type }
  | { readonly kind: 'record'; readonly fields: Readonly<Record<string, FieldType>> }
  /** The type of the literal `null`; fits every type. */
  | { readonly kind: 'null' }
  /** Stands for a type that could not be worked out because of an earlier error; fits everything, so one mistake is reported once. */
  | { readonly kind: 'unknown' };

export type TypeKind = Type['kind'];

/** Validation of one field, checked when a case starts and whenever an event sets it. */
export interface FieldConstraints {
  /** ECMAScript pattern source, matched with the `u` flag. */
  readonly pattern?: string;
  readonly min?: number | string;
  readonly max?: number | string;
  readonly minLength?: number;
  readonly maxLength?: number;
}

export interface FieldType {
  readonly type: Type;
  readonly optional: boolean;
  readonly label?: string;
  readonly constraints: FieldConstraints;
  /** A constant default, already a runtime value. */
  readonly default?: Value;
}

/** A duration: clock milliseconds plus working days; either part may be zero. */
export interface DurationValue {
  readonly ms: number;
  readonly workdays: number;
}

export type Value =
  | null
  | string
  | number
  | boolean
  | DurationValue
  | readonly Value[]
  | { readonly [key: string]: Value };

export const T = {
  text: { kind: 'text' },
  number: { kind: 'number' },
  boolean: { kind: 'boolean' },
  datetime: { kind: 'datetime' },
  duration: { kind: 'duration' },
  org: { kind: 'org' },
  actor: { kind: 'actor' },
  null: { kind: 'null' },
  unknown: { kind: 'unknown' },
} as const satisfies Record<string, Type>;

/** The names a field or column type may be written with; Chinese aliases read naturally to policy staff. */
export const TYPE_NAMES: Readonly<Record<string, Type>> = {
  text: T.text, 文本: T.text,
  number: T.number, 数字: T.number,
  boolean: T.boolean, 是否: T.boolean,
  datetime: T.datetime, date: T.datetime, 时间: T.datetime, 日期: T.datetime,
  duration: T.duration, 时长: T.duration,
  org: T.org, 单位: T.org,
  actor: T.actor, 人员: T.actor,
};

/** Duration units as written after a number: `2 workdays`, `24 小时`. */
export const DURATION_UNITS: Readonly<Record<string, { readonly ms: number; readonly workdays: number }>> = {
  minute: { ms: 60_000, workdays: 0 }, minutes: { ms: 60_000, workdays: 0 }, 分钟: { ms: 60_000, workdays: 0 },
  hour: { ms: 3_600_000, workdays: 0 }, hours: { ms: 3_600_000, workdays: 0 }, 小时: { ms: 3_600_000, workdays: 0 },
  day: { ms: 86_400_000, workdays: 0 }, days: { ms: 86_400_000, workdays: 0 }, 天: { ms: 86_400_000, workdays: 0 }, 日: { ms: 86_400_000, workdays: 0 },
  workday: { ms: 0, workdays: 1 }, workdays: { ms: 0, workdays: 1 }, 工作日: { ms: 0, workdays: 1 },
};

/** Reads a type back as the source would write it, for messages: `list of text`, `one of 高, 低`. */
export function showType(t: Type): string {
  switch (t.kind) {
    case 'enum': return `one of ${t.members.join(', ')}`;
    case 'list': return `list of ${showType(t.item)}`;
    case 'record': return `record { ${Object.entries(t.fields).map(([k, f]) => `${k}: ${showType(f.type)}${f.optional ? '?' : ''}`).join(', ')} }`;
    default: return t.kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers over types and values, shared by the checker, the evaluator and the rule tables.

function recordFits(from: Readonly<Record<string, FieldType>>, to: Readonly<Record<string, FieldType>>): boolean {
  for (const k of Object.keys(from)) if (!Object.hasOwn(to, k)) return false;
  for (const [k, f] of Object.entries(to)) {
    const g = Object.hasOwn(from, k) ? from[k] : undefined;
    if (g === undefined) {
      if (!f.optional && f.default === undefined) return false;
    } else if (!isAssignable(g.type, f.type)) return false;
  }
  return true;
}

/**
 * Whether a value of type `from` may stand where `to` is expected. `null` and `unknown` fit
 * everything (absence is allowed everywhere; unknown stands for an error already reported);
 * an enum fits text and any enum with all its members; a record must have exactly the fields.
 * @example isAssignable({ kind: 'enum', members: ['高', '低'] }, T.text) // true
 */
export function isAssignable(from: Type, to: Type): boolean {
  if (from.kind === 'unknown' || from.kind === 'null' || to.kind === 'unknown') return true;
  switch (to.kind) {
    case 'text': return from.kind === 'text' || from.kind === 'enum';
    case 'enum': return from.kind === 'enum' && from.members.every((m) => to.members.includes(m));
    case 'list': return from.kind === 'list' && isAssignable(from.item, to.item);
    case 'record': return from.kind === 'record' && recordFits(from.fields, to.fields);
    default: return from.kind === to.kind;
  }
}

/**
 * The least type both may be read as (for `a ?? b`, `if … then a else b`, list items), or
 * undefined when they have none. Two enums join to the enum of all their members.
 * @example joinTypes({ kind: 'enum', members: ['高'] }, T.text) // T.text
 */
export function joinTypes(a: Type, b: Type): Type | undefined {
  if (a.kind === 'unknown' || b.kind === 'unknown') return T.unknown;
  if (a.kind === 'null') return b;
  if (b.kind === 'null') return a;
  if (a.kind === 'enum' && b.kind === 'enum') return { kind: 'enum', members: [...new Set([...a.members, ...b.members])] };
  if (a.kind === 'list' && b.kind === 'list') {
    const item = joinTypes(a.item, b.item);
    return item === undefined ? undefined : { kind: 'list', item };
  }
  if (isAssignable(a, b)) return b;
  if (isAssignable(b, a)) return a;
  return undefined;
}

/**
 * Whether a runtime value has the shape of a duration: finite `ms` and `workdays`.
 * @example isDurationValue({ ms: 0, workdays: 2 }) // true
 */
export function isDurationValue(v: unknown): v is DurationValue {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const d = v as { ms?: unknown; workdays?: unknown };
  return typeof d.ms === 'number' && Number.isFinite(d.ms) && typeof d.workdays === 'number' && Number.isFinite(d.workdays);
}

/** Beyond this nesting values compare by identity, so hostile input cannot exhaust the stack. */
const MAX_EQUAL_DEPTH = 64;

function equalAt(a: unknown, b: unknown, depth: number): boolean {
  if (a === b) return true;
  if (depth > MAX_EQUAL_DEPTH || typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equalAt(a[i], b[i], depth + 1)) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!equalAt((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

/**
 * Structural equality of runtime values, the meaning of `==`: lists item by item, records and
 * durations field by field regardless of key order. Never throws.
 * @example valuesEqual({ ms: 0, workdays: 2 }, { workdays: 2, ms: 0 }) // true
 */
export function valuesEqual(a: Value, b: Value): boolean {
  return equalAt(a, b, 0);
}
