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
