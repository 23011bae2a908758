/**
 * Validation of case data and event payloads against their declared fields, as they arrive from
 * the HTTP API or a scenario file. Values are normalized to their runtime form (types.ts): datetimes
 * to UTC ISO strings, durations to `{ ms, workdays }`. Never throws on any JSON input; every problem is
 * a {@link FieldError} naming the field, so a form can show it beside the input.
 */
import type { FieldConstraints, FieldType, Type, Value } from './types.ts';
import { isDurationValue, showType } from './types.ts';
import { DEFAULT_UTC_OFFSET_MINUTES, normalizeDateTime, parseDateTime, parseDuration } from './time.ts';
import { didYouMean } from './suggest.ts';

/**
 * What kind of problem a field has; stable, so a client may switch on it.
 * @example const code: FieldErrorCode = 'pattern';
 */
export type FieldErrorCode = 'required' | 'type' | 'pattern' | 'range' | 'length' | 'enum' | 'unknown_field' | 'nul_character' | 'too_deep';

/**
 * One problem with one field; `path` is `电话`, `评价.满意度` or `标签[2]` ('' for the whole input).
 * @example { path: '电话', code: 'pattern', message: '"电话" must match the pattern ^1[0-9]{10}$; got the text "123".' }
 */
export interface FieldError {
  readonly path: string;
  readonly code: FieldErrorCode;
  readonly message: string;
}

/**
 * A normalized value and the problems found on the way.
 * @example const { value, errors } = validateValue(field, input, '电话');
 */
export interface Validated<V> {
  /** The normalized value; a field with an error holds null. */
  readonly value: V;
  readonly errors: FieldError[];
}

/**
 * Lists and records nested deeper than this are refused: below a validated record or value (see
 * {@link storable}), and within an untyped (`unknown`) field.
 */
const MAX_DEPTH = 64;

/** A value refused for storability is reported at no more than this many places. */
const MAX_STORABILITY_ERRORS = 20;

const patterns = new Map<string, RegExp | null>();
function compiled(source: string): RegExp | null {
  let re = patterns.get(source);
  if (re === undefined) {
    try {
      re = new RegExp(source, 'u');
    } catch {
      re = null;
    }
    patterns.set(source, re);
  }
  return re;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string': return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    case 'number': return `the number ${String(v)}`;
    case 'boolean': return String(v);
    case 'object': return 'an object';
    default: return typeof v;
  }
}

function expectation(t: Type): string {
  switch (t.kind) {
    case 'text': return 'text';
    case 'number': return 'a finite number';
    case 'boolean': return 'true or false';
    case 'datetime': return 'a date-time such as "2024-05-01T09:00:00+08:00" or "2024-05-01"';
    case 'duration': return 'a duration such as "2 workdays", "48 hours", "PT30M" or { "ms": 0, "workdays": 2 }';
    case 'org': return 'an org unit id (a non-empty text)';
    case 'actor': return 'an actor id (a non-empty text)';
    case 'enum': return `one of ${t.members.join(', ')}`;
    case 'list': return `a list of ${showType(t.item)}`;
    case 'record': return `an object with the fields ${Object.keys(t.fields).join(', ')}`;
    case 'null': return 'null';
    case 'unknown': return 'a JSON value';
  }
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function isPlainObject(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function jsonValue(v: unknown, depth: number): Value | undefined {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v + 0 : undefined;
  if (depth > MAX_DEPTH || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    const out: Value[] = [];
    for (const x of v) {
      const y = jsonValue(x, depth + 1);
      if (y === undefined) return undefined;
      out.push(y);
    }
    return out;
  }
  const entries: [string, Value][] = [];
  for (const [k, x] of Object.entries(v)) {
    const y = jsonValue(x, depth + 1);
    if (y === undefined) return undefined;
    entries.push([k, y]);
  }
  return Object.fromEntries(entries);
}

class Collector {
  readonly errors: FieldError[] = [];
  add(path: string, code: FieldErrorCode, message: string): null {
    this.errors.push({ path, code, message });
    return null;
  }
}

function name(path: string): string {
  return path === '' ? 'The value' : `"${path}"`;
}

/** A key as it appears in a path; a NUL is shown escaped, so the path itself can be stored and logged. */
function shownKey(k: string): string {
  return k.includes('\u0000') ? k.replaceAll('\u0000', '\\u0000') : k;
}

/**
 * Finds what no declared type can make storable: a NUL character (U+0000) in any text or key, which
 * Postgres `text` and `jsonb` refuse, and lists or records nested more than {@link MAX_DEPTH} levels
 * below `value`. Walks with a stack of its own rather than recursing, so input of any depth is
 * refused, not a stack overflow. Stops after {@link MAX_STORABILITY_ERRORS} problems.
 */
function storable(value: unknown, path: string, out: Collector): void {
  // A key holding a NUL is queued as this marker, so its problem is reported in the input's order.
  const badKey = Symbol('key with a NUL');
  // Paths are worked out from the parent links only for what is reported.
  interface Item { readonly v: unknown; readonly parent: Item | null; readonly key: string | number | null; readonly depth: number }
  const pathOf = (item: Item): string => {
    const parts: (string | number)[] = [];
    for (let at: Item | null = item; at !== null && at.key !== null; at = at.parent) parts.push(at.key);
    let p = path;
    for (let i = parts.length - 1; i >= 0; i--) {
      const k = parts[i] as string | number;
      p = typeof k === 'number' ? `${p}[${k}]` : p === '' ? shownKey(k) : `${p}.${shownKey(k)}`;
    }
    return p;
  };
  const todo: Item[] = [{ v: value, parent: null, key: null, depth: 0 }];
  let found = 0;
  for (let next = todo.pop(); next !== undefined && found < MAX_STORABILITY_ERRORS; next = todo.pop()) {
    const { v, depth } = next;
    if (v === badKey) {
      const p = pathOf(next);
      out.add(p, 'nul_character', `The key ${name(p)} contains a NUL character (U+0000), which cannot be stored; rename it.`);
      found++;
    } else if (typeof v === 'string') {
      if (v.includes('\u0000')) {
        const p = pathOf(next);
        out.add(p, 'nul_character', `${name(p)} contains a NUL character (U+0000), which cannot be stored; remove it.`);
        found++;
      }
    } else if (typeof v === 'object' && v !== null) {
      if (depth > MAX_DEPTH) {
        const p = pathOf(next);
        out.add(p, 'too_deep', `${name(p)} is nested more than ${MAX_DEPTH} lists or objects deep; send a flatter value.`);
        found++;
      } else if (Array.isArray(v)) {
        // Pushed in reverse, so problems are reported in the input's order.
        for (let i = v.length - 1; i >= 0; i--) todo.push({ v: v[i] as unknown, parent: next, key: i, depth: depth + 1 });
      } else {
        const keys = Object.keys(v);
        for (let i = keys.length - 1; i >= 0; i--) {
          const k = keys[i] ?? '';
          todo.push({ v: k.includes('\u0000') ? badKey : (v as Readonly<Record<string, unknown>>)[k], parent: next, key: k, depth: depth + 1 });
        }
      }
    }
  }
}

function checkLength(n: number, c: FieldConstraints, path: string, unit: string, out: Collector): boolean {
  const lo = c.minLength;
  const hi = c.maxLength;
  if ((lo !== undefined && n < lo) || (hi !== undefined && n > hi)) {
    const want = lo !== undefined && hi !== undefined ? `between ${lo} and ${hi}` : lo !== undefined ? `at least ${lo}` : `at most ${hi ?? 0}`;
    out.add(path, 'length', `${name(path)} must have ${want} ${unit}; it has ${n}.`);
    return false;
  }
  return true;
}

function checkRange(v: number, show: string, c: FieldConstraints, path: string, toNumber: (b: number | string) => number | null, out: Collector): boolean {
  const lo = c.min === undefined ? null : toNumber(c.min);
  const hi = c.max === undefined ? null : toNumber(c.max);
  if ((lo !== null && v < lo) || (hi !== null && v > hi)) {
    const want = lo !== null && hi !== null ? `between ${String(c.min)} and ${String(c.max)}` : lo !== null ? `at least ${String(c.min)}` : `at most ${String(c.max)}`;
    out.add(path, 'range', `${name(path)} must be ${want}; got ${show}.`);
    return false;
  }
  return true;
}

const asNumber = (b: number | string): number | null => (typeof b === 'number' ? b : null);
const asInstant = (b: number | string): number | null => (typeof b === 'string' ? parseDateTime(b) : null);

function durationInput(v: unknown): Value | null {
  if (typeof v === 'string') return parseDuration(v);
  if (isDurationValue(v) && Object.keys(v).length === 2) return { ms: v.ms + 0, workdays: v.workdays + 0 };
  return null;
}

function checkValue(type: Type, c: FieldConstraints, v: unknown, path: string, out: Collector): Value {
  const wrong = (): null => out.add(path, 'type', `${name(path)} must be ${expectation(type)}; got ${describe(v)}.`);
  switch (type.kind) {
    case 'text': {
      if (typeof v !== 'string') return wrong();
      if (c.pattern !== undefined) {
        const re = compiled(c.pattern);
        if (re === null || !re.test(v)) return out.add(path, 'pattern', `${name(path)} must match the pattern ${c.pattern}; got ${describe(v)}.`);
      }
      return checkLength(codePoints(v), c, path, 'characters', out) ? v : null;
    }
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) return wrong();
      // -0 would not survive a JSON round trip; store what the database will give back.
      return checkRange(v, String(v), c, path, asNumber, out) ? v + 0 : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : wrong();
    case 'datetime': {
      const iso = typeof v === 'string' ? normalizeDateTime(v, DEFAULT_UTC_OFFSET_MINUTES) : null;
      if (iso === null) return wrong();
      return checkRange(Date.parse(iso), iso, c, path, asInstant, out) ? iso : null;
    }
    case 'duration':
      return durationInput(v) ?? wrong();
    case 'org':
    case 'actor':
      return typeof v === 'string' && v.trim() !== '' ? v : wrong();
    case 'enum':
      if (typeof v !== 'string') return wrong();
      if (!type.members.includes(v)) {
        const hint = didYouMean(v, type.members);
        return out.add(path, 'enum', `${name(path)} must be one of ${type.members.join(', ')}; got ${describe(v)}.${hint === undefined ? '' : ` ${hint}`}`);
      }
      return v;
    case 'list': {
      if (!Array.isArray(v)) return wrong();
      const before = out.errors.length;
      const item: FieldType = { type: type.item, optional: false, constraints: {} };
      const items = v.map((x, i) => validateInto(item, x, `${path}[${i}]`, out));
      if (out.errors.length > before) return null;
      return checkLength(v.length, c, path, 'items', out) ? items : null;
    }
    case 'record': {
      if (!isPlainObject(v)) return wrong();
      const before = out.errors.length;
      const r = recordInto(type.fields, v, path, false, out);
      return out.errors.length > before ? null : r;
    }
    case 'null':
      return v === null ? null : wrong();
    case 'unknown':
      return jsonValue(v, 0) ?? wrong();
  }
}

function validateInto(field: FieldType, value: unknown, path: string, out: Collector): Value {
  if (value === undefined || value === null) {
    if (field.default !== undefined) return field.default;
    if (field.optional || field.type.kind === 'null' || field.type.kind === 'unknown') return null;
    return out.add(path, 'required', `${name(path)} is required${field.label === undefined ? '' : ` (${field.label})`}: give ${expectation(field.type)}.`);
  }
  return checkValue(field.type, field.constraints, value, path, out);
}

function recordInto(
  fields: Readonly<Record<string, FieldType>>,
  input: Readonly<Record<string, unknown>>,
  prefix: string,
  partial: boolean,
  out: Collector,
): Record<string, Value> {
  const at = (k: string): string => (prefix === '' ? k : `${prefix}.${k}`);
  const known = Object.keys(fields);
  for (const k of Object.keys(input)) {
    if (!Object.hasOwn(fields, k)) {
      const hint = didYouMean(k, known);
      out.add(at(k), 'unknown_field', `"${at(k)}" is not a field here. ${hint ?? (known.length === 0 ? 'No fields are expected.' : `The fields are: ${known.join(', ')}.`)}`);
    }
  }
  const entries: [string, Value][] = [];
  for (const [k, field] of Object.entries(fields)) {
    const present = Object.hasOwn(input, k) && input[k] !== undefined;
    if (partial && !present) continue;
    entries.push([k, validateInto(field, present ? input[k] : undefined, at(k), out)]);
  }
  // fromEntries defines own properties, so a field named __proto__ cannot reach the prototype.
  return Object.fromEntries(entries);
}

/**
 * Validates and normalizes one value for a field. A missing or null value takes the field's default,
 * else is null if the field is optional, else is a `required` error. A value that cannot be stored
 * whatever its type (a NUL character in a text or key, or lists and objects nested more than 64
 * deep) is refused first, with `nul_character` / `too_deep` errors and nothing else.
 * @example validateValue({ type: T.duration, optional: false, constraints: {} }, '2 工作日', '时限')
 *   // { value: { ms: 0, workdays: 2 }, errors: [] }
 */
export function validateValue(field: FieldType, value: unknown, path: string): Validated<Value> {
  const out = new Collector();
  storable(value, path, out);
  if (out.errors.length > 0) return { value: null, errors: out.errors };
  const v = validateInto(field, value, path, out);
  return { value: out.errors.length === 0 ? v : null, errors: out.errors };
}

/**
 * Validates an object against declared fields: unknown fields are refused, defaults filled in, and every
 * field's problems reported at once. With `partial`, fields left out are neither required nor defaulted
 * (an update of some fields); `path` prefixes the reported paths. Input that cannot be stored is
 * refused first, as {@link validateValue} says.
 * @example validateRecord({ 电话: { type: T.text, optional: false, constraints: { pattern: '^1[0-9]{10}$' } } }, { 电话: '123' }, {})
 *   // errors: [{ path: '电话', code: 'pattern', … }]
 */
export function validateRecord(
  fields: Readonly<Record<string, FieldType>>,
  input: unknown,
  opts: { readonly partial?: boolean; readonly path?: string } = {},
): Validated<Record<string, Value>> {
  const out = new Collector();
  const prefix = opts.path ?? '';
  if (!isPlainObject(input)) {
    const known = Object.keys(fields);
    out.add(prefix, 'type', `${name(prefix)} must be an object${known.length === 0 ? '' : ` with the fields ${known.join(', ')}`}; got ${describe(input)}.`);
    return { value: {}, errors: out.errors };
  }
  // First, as the paths of later errors (an unknown key) may hold what cannot be stored.
  storable(input, prefix, out);
  if (out.errors.length > 0) return { value: {}, errors: out.errors };
  const value = recordInto(fields, input, prefix, opts.partial ?? false, out);
  return { value, errors: out.errors };
}
