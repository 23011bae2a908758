/**
 * The built-in functions of the expression language: each entry's signatures, read by the checker,
 * and its implementation over runtime values, called by the evaluator.
 *
 * Every implementation is total: given any values at all (wrong shapes, nulls, NaN, huge numbers)
 * it returns a value and never throws. An argument of the wrong shape, a null where a value is
 * needed, or a result that is not a finite number gives null. Aggregates (`sum`, `avg`, `min`,
 * `max`) skip items that are not numbers, as SQL's do with nulls.
 *
 * Facts from outside the case (the org tree, the working-day calendar) come from an {@link Oracle},
 * whose answers the engine records so a replay sees the same ones.
 */
import type { DurationValue, Type, Value } from './types.ts';
import { T, isDurationValue, valuesEqual } from './types.ts';
import {
  DAY_MS, DEFAULT_UTC_OFFSET_MINUTES, HOUR_MS, MINUTE_MS,
  formatIso, localParts, normalizeDateTime, parseDateTime, showDuration,
} from './time.ts';

/**
 * Facts about the world outside the case. The engine records every answer with the event, so a
 * replay gets the same answers even after the org tree or the holiday calendar has changed.
 * Implementations may throw or return nonsense; the evaluator turns that into null.
 * @example const o: Oracle = simpleOracle({ 网格1: '社区1', 社区1: null });
 */
export interface Oracle {
  /** The parent unit of an org unit; null at the root or for an unknown unit. */
  parentOf(unit: string): string | null;
  /** The level of an org unit (`社区`, `街道`, …); null when unknown. */
  levelOf(unit: string): string | null;
  /**
   * The datetime a duration after `fromIso` (negative durations go back): working days per the
   * holiday calendar, then clock time. Null when the result cannot be represented.
   */
  addDuration(fromIso: string, d: DurationValue): string | null;
  /** Whether the local day of this instant is a working day (make-up workdays included, holidays not). */
  isWorkday(iso: string): boolean;
  /** The deployment's zone as minutes east of UTC, for `year`/`month`/`day`/`hour`; default UTC+8 (480). */
  readonly utcOffsetMinutes?: number;
}

/**
 * What an implementation may use besides its arguments.
 * @example FUNCTIONS['is_workday']?.impl(['2024-05-04T02:00:00.000Z'], { oracle }) // false
 */
export interface FnContext {
  readonly oracle: Oracle;
}

/**
 * A parameter or result in a signature: a fixed type, the item type `T` of a generic function,
 * a list of `T`, or any type at all.
 * @example const listOfT: TypePattern = { kind: 'listOfVar' };
 */
export type TypePattern =
  | { readonly kind: 'type'; readonly type: Type }
  | { readonly kind: 'var' }
  | { readonly kind: 'listOfVar' }
  | { readonly kind: 'any' };

/**
 * One way to call a function. The last `optional` parameters may be left out.
 * @example const roundSig: Overload = { params: [NUMBER, NUMBER], optional: 1, result: NUMBER };
 */
export interface Overload {
  readonly params: readonly TypePattern[];
  readonly optional?: number;
  readonly result: TypePattern;
}

/**
 * A built-in function: its signatures for the checker and its total implementation for the evaluator.
 * @example FUNCTIONS['len']?.impl([['a', 'b']], { oracle }) // 2
 */
export interface BuiltinFunction {
  /** The canonical (English) name; aliases map to the same entry. */
  readonly name: string;
  /** One line for completion and hover. */
  readonly doc: string;
  readonly overloads: readonly Overload[];
  readonly impl: (args: readonly Value[], ctx: FnContext) => Value;
}

// ---------------------------------------------------------------------------------------------
// Runtime helpers (all total)

const MAX_TEXT = 1 << 20;

function isNum(v: Value | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
function isText(v: Value | undefined): v is string {
  return typeof v === 'string';
}
function isList(v: Value | undefined): v is readonly Value[] {
  return Array.isArray(v);
}
/**
 * A finite number, or null: the evaluator never hands out NaN or ±Infinity (or -0, which JSON loses).
 * @example finite(1 / 0) // null
 */
export function finite(n: number): number | null {
  return Number.isFinite(n) ? (Object.is(n, -0) ? 0 : n) : null;
}
/**
 * A duration value if both parts are finite, else null.
 * @example durationOf(3_600_000, 0) // { ms: 3_600_000, workdays: 0 }
 */
export function durationOf(ms: number, workdays: number): DurationValue | null {
  return Number.isFinite(ms) && Number.isFinite(workdays) ? { ms: ms + 0, workdays: workdays + 0 } : null;
}

/**
 * The oracle's zone, or UTC+8 when it names none or names nonsense.
 * @example zoneOf(simpleOracle({}, {}, 0)) // 0
 */
export function zoneOf(oracle: Oracle): number {
  try {
    const z = oracle.utcOffsetMinutes;
    return typeof z === 'number' && Number.isFinite(z) && Math.abs(z) <= 18 * 60 ? z : DEFAULT_UTC_OFFSET_MINUTES;
  } catch {
    return DEFAULT_UTC_OFFSET_MINUTES;
  }
}

/**
 * Calls the oracle, turning a throw or a wrong-typed answer into null.
 * @example ask(() => oracle.parentOf('网格1'), (v): v is string | null => v === null || typeof v === 'string')
 */
export function ask<R>(f: () => unknown, accept: (v: unknown) => v is R): R | null {
  try {
    const v = f();
    return accept(v) ? v : null;
  } catch {
    return null;
  }
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';

/** Epoch ms of a datetime value (or a written date), in the oracle's zone; null if it is not one. */
function instant(v: Value | undefined, ctx: FnContext): number | null {
  return isText(v) ? parseDateTime(v, zoneOf(ctx.oracle)) : null;
}

/**
 * A datetime moved by a duration. Clock-only durations are plain arithmetic; working days need the
 * calendar, so only they go to the oracle (whose answers the engine must record).
 * @example shiftDateTime('2024-05-01T00:00:00.000Z', { ms: 3_600_000, workdays: 0 }, ctx) // '2024-05-01T01:00:00.000Z'
 */
export function shiftDateTime(v: Value | undefined, d: Value | undefined, ctx: FnContext): string | null {
  if (!isDurationValue(d)) return null;
  const start = instant(v, ctx);
  if (start === null) return null;
  if (d.workdays === 0) return formatIso(start + d.ms);
  const from = formatIso(start);
  if (from === null) return null;
  const to = ask(() => ctx.oracle.addDuration(from, { ms: d.ms, workdays: d.workdays }), isString);
  return to === null ? null : normalizeDateTime(to, 0);
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function numbersIn(v: Value | undefined): number[] | null {
  if (!isList(v)) return null;
  const out: number[] = [];
  for (const x of v) if (isNum(x)) out.push(x);
  return out;
}

function roundHalfAway(n: number, digits: number): number | null {
  const f = 10 ** digits;
  // toPrecision(15) removes the binary noise in e.g. 1.005 * 100 = 100.49999999999999.
  const scaled = Number((Math.abs(n) * f).toPrecision(15));
  return finite((Math.sign(n) * Math.round(scaled)) / f);
}

function textOf(v: Value | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return isNum(v) ? String(v) : null;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (isDurationValue(v)) return showDuration(v);
  try {
    const s = JSON.stringify(v);
    return typeof s === 'string' && s.length <= MAX_TEXT ? s : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Signatures

const ty = (type: Type): TypePattern => ({ kind: 'type', type });
const TEXT = ty(T.text);
const NUMBER = ty(T.number);
const BOOLEAN = ty(T.boolean);
const DATETIME = ty(T.datetime);
const DURATION = ty(T.duration);
const NUMBERS = ty({ kind: 'list', item: T.number });
const VAR: TypePattern = { kind: 'var' };
const LIST: TypePattern = { kind: 'listOfVar' };
const ANY: TypePattern = { kind: 'any' };

const sig = (params: readonly TypePattern[], result: TypePattern, optional?: number): Overload =>
  optional === undefined ? { params, result } : { params, result, optional };

function unaryNumber(name: string, doc: string, f: (n: number) => number): BuiltinFunction {
  return { name, doc, overloads: [sig([NUMBER], NUMBER)], impl: ([n]) => (isNum(n) ? finite(f(n)) : null) };
}

function durationMaker(name: string, doc: string, ms: number, workdays: number): BuiltinFunction {
  return {
    name, doc, overloads: [sig([NUMBER], DURATION)],
    impl: ([n]) => (isNum(n) ? durationOf(n * ms, n * workdays) : null),
  };
}

function localPart(name: string, doc: string, pick: (p: ReturnType<typeof localParts>) => number): BuiltinFunction {
  return {
    name, doc, overloads: [sig([DATETIME], NUMBER)],
    impl: ([d], ctx) => {
      const ms = instant(d, ctx);
      return ms === null ? null : finite(pick(localParts(ms, zoneOf(ctx.oracle))));
    },
  };
}

function between(name: string, doc: string, unit: number): BuiltinFunction {
  return {
    name, doc, overloads: [sig([DATETIME, DATETIME], NUMBER)],
    impl: ([a, b], ctx) => {
      const x = instant(a, ctx);
      const y = instant(b, ctx);
      return x === null || y === null ? null : finite((y - x) / unit);
    },
  };
}

function extreme(name: string, doc: string, pick: (a: number, b: number) => number): BuiltinFunction {
  return {
    name, doc,
    overloads: [sig([NUMBERS], NUMBER), sig([NUMBER, NUMBER], NUMBER)],
    impl: (args) => {
      if (args.length >= 2) {
        const [a, b] = args;
        return isNum(a) && isNum(b) ? pick(a, b) : null;
      }
      const ns = numbersIn(args[0]);
      if (ns === null || ns.length === 0) return null;
      return ns.reduce((a, b) => pick(a, b));
    },
  };
}

const CANONICAL: readonly BuiltinFunction[] = [
  {
    name: 'len', doc: 'Number of characters in a text, or of items in a list.',
    overloads: [sig([TEXT], NUMBER), sig([LIST], NUMBER)],
    impl: ([v]) => (isText(v) ? codePoints(v) : isList(v) ? v.length : null),
  },
  {
    name: 'contains', doc: 'Whether a text contains another, or a list contains an item.',
    overloads: [sig([TEXT, TEXT], BOOLEAN), sig([LIST, VAR], BOOLEAN)],
    impl: ([a, b]) => {
      if (isText(a)) return isText(b) ? a.includes(b) : false;
      if (isList(a)) return b === undefined ? false : a.some((x) => valuesEqual(x, b));
      return false;
    },
  },
  {
    name: 'starts_with', doc: 'Whether a text starts with another.',
    overloads: [sig([TEXT, TEXT], BOOLEAN)],
    impl: ([a, b]) => (isText(a) && isText(b) ? a.startsWith(b) : false),
  },
  {
    name: 'ends_with', doc: 'Whether a text ends with another.',
    overloads: [sig([TEXT, TEXT], BOOLEAN)],
    impl: ([a, b]) => (isText(a) && isText(b) ? a.endsWith(b) : false),
  },
  { name: 'trim', doc: 'A text without leading and trailing white space.', overloads: [sig([TEXT], TEXT)], impl: ([a]) => (isText(a) ? a.trim() : null) },
  { name: 'upper', doc: 'A text in upper case.', overloads: [sig([TEXT], TEXT)], impl: ([a]) => (isText(a) ? a.toUpperCase() : null) },
  { name: 'lower', doc: 'A text in lower case.', overloads: [sig([TEXT], TEXT)], impl: ([a]) => (isText(a) ? a.toLowerCase() : null) },
  {
    name: 'text', doc: 'Any value written as text, e.g. to build a message: "共" + text(n) + "件".',
    overloads: [sig([ANY], TEXT)],
    impl: ([v]) => textOf(v),
  },
  {
    name: 'sum', doc: 'Sum of the numbers in a list (0 for an empty list).',
    overloads: [sig([NUMBERS], NUMBER)],
    impl: ([v]) => {
      const ns = numbersIn(v);
      return ns === null ? null : finite(ns.reduce((s, n) => s + n, 0));
    },
  },
  {
    name: 'avg', doc: 'Mean of the numbers in a list (null for an empty list).',
    overloads: [sig([NUMBERS], NUMBER)],
    impl: ([v]) => {
      const ns = numbersIn(v);
      if (ns === null || ns.length === 0) return null;
      return finite(ns.reduce((s, n) => s + n / ns.length, 0));
    },
  },
  extreme('min', 'The smallest number in a list, or the smaller of two numbers.', Math.min),
  extreme('max', 'The largest number in a list, or the larger of two numbers.', Math.max),
  {
    name: 'count', doc: 'Number of items in a list.',
    overloads: [sig([LIST], NUMBER)],
    impl: ([v]) => (isList(v) ? v.length : null),
  },
  unaryNumber('abs', 'Absolute value.', Math.abs),
  {
    name: 'round', doc: 'Rounds half away from zero (四舍五入), to `digits` decimals (default 0).',
    overloads: [sig([NUMBER, NUMBER], NUMBER, 1)],
    impl: ([n, d]) => {
      if (!isNum(n)) return null;
      if (d !== undefined && !isNum(d)) return null;
      const digits = Math.max(-15, Math.min(15, Math.trunc(d ?? 0)));
      return roundHalfAway(n, digits);
    },
  },
  unaryNumber('floor', 'Largest whole number not above.', Math.floor),
  unaryNumber('ceil', 'Smallest whole number not below.', Math.ceil),
  {
    name: 'append', doc: 'A list with an item added at the end.',
    overloads: [sig([LIST, VAR], LIST)],
    impl: ([l, x]) => (isList(l) && x !== undefined ? [...l, x] : null),
  },
  {
    name: 'remove', doc: 'A list without any item equal to the given one.',
    overloads: [sig([LIST, VAR], LIST)],
    impl: ([l, x]) => (isList(l) && x !== undefined ? l.filter((y) => !valuesEqual(y, x)) : null),
  },
  durationMaker('minutes', 'A duration of n minutes.', MINUTE_MS, 0),
  durationMaker('hours', 'A duration of n hours.', HOUR_MS, 0),
  durationMaker('days', 'A duration of n calendar days (24 hours each).', DAY_MS, 0),
  durationMaker('workdays', 'A duration of n working days (工作日), per the holiday calendar.', 0, 1),
  {
    name: 'date', doc: 'Reads an ISO date or date-time (`2024-05-01`, `2024-05-01 09:00`); null if it is not one. No offset means local time.',
    overloads: [sig([TEXT], DATETIME)],
    impl: ([t], ctx) => (isText(t) ? normalizeDateTime(t, zoneOf(ctx.oracle)) : null),
  },
  between('hours_between', 'Hours from the first datetime to the second (negative if the second is earlier).', HOUR_MS),
  between('days_between', 'Days of 24 hours from the first datetime to the second, with a fraction.', DAY_MS),
  {
    name: 'add', doc: 'A datetime plus a duration; working days follow the holiday calendar.',
    overloads: [sig([DATETIME, DURATION], DATETIME)],
    impl: ([d, by], ctx) => shiftDateTime(d, by, ctx),
  },
  {
    name: 'is_workday', doc: 'Whether the local day of a datetime is a working day per the holiday calendar.',
    overloads: [sig([DATETIME], BOOLEAN)],
    impl: ([d], ctx) => {
      const ms = instant(d, ctx);
      const iso = ms === null ? null : formatIso(ms);
      return iso === null ? null : ask(() => ctx.oracle.isWorkday(iso), isBoolean);
    },
  },
  localPart('year', 'The local year of a datetime.', (p) => p.year),
  localPart('month', 'The local month of a datetime, 1–12.', (p) => p.month),
  localPart('day', 'The local day of the month of a datetime, 1–31.', (p) => p.day),
  localPart('hour', 'The local hour of a datetime, 0–23.', (p) => p.hour),
  localPart('weekday', 'The local weekday of a datetime, 1 = Monday … 7 = Sunday.', (p) => p.weekday),
];

/** Chinese names for the functions policy staff reach for most. */
const ALIASES: Readonly<Record<string, string>> = {
  长度: 'len', 包含: 'contains', 开头是: 'starts_with', 结尾是: 'ends_with', 文本: 'text',
  求和: 'sum', 平均: 'avg', 最小: 'min', 最大: 'max', 计数: 'count', 绝对值: 'abs',
  四舍五入: 'round', 向下取整: 'floor', 向上取整: 'ceil', 追加: 'append', 移除: 'remove',
  日期: 'date', 相差小时: 'hours_between', 相差天数: 'days_between', 加上: 'add', 是工作日: 'is_workday',
  年份: 'year', 月份: 'month', 星期: 'weekday',
};

/**
 * Every built-in function by every name it may be called with (English and Chinese).
 * @example FUNCTIONS['len']?.impl(['单位'], ctx) // 2
 */
export const FUNCTIONS: Readonly<Record<string, BuiltinFunction>> = (() => {
  const table: Record<string, BuiltinFunction> = {};
  for (const f of CANONICAL) table[f.name] = f;
  for (const [alias, target] of Object.entries(ALIASES)) {
    const f = table[target];
    if (f !== undefined) table[alias] = f;
  }
  return table;
})();

/**
 * The function called `name`, if it is a built-in.
 * @example lookupFunction('四舍五入')?.name // 'round'
 */
export function lookupFunction(name: string): BuiltinFunction | undefined {
  return Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
}

function showPattern(p: TypePattern): string {
  switch (p.kind) {
    case 'type': return p.type.kind === 'list' ? `list of ${p.type.item.kind}` : p.type.kind;
    case 'var': return 'T';
    case 'listOfVar': return 'list of T';
    case 'any': return 'any';
  }
}

/**
 * The ways to call a function, as a hint would show them.
 * @example showSignatures(FUNCTIONS['round']!) // 'round(number, number?) -> number'
 */
export function showSignatures(f: BuiltinFunction, calledAs: string = f.name): string {
  return f.overloads
    .map((o) => {
      const firstOptional = o.params.length - (o.optional ?? 0);
      const ps = o.params.map((p, i) => showPattern(p) + (i >= firstOptional ? '?' : ''));
      return `${calledAs}(${ps.join(', ')}) -> ${showPattern(o.result)}`;
    })
    .join(' or ');
}
