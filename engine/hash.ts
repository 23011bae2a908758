/**
 * Canonical JSON and the per-case hash chain that makes the event log tamper-evident.
 *
 * The canonical form follows RFC 8785 (JSON Canonicalization Scheme) for the values JSON can
 * hold: object keys sorted by UTF-16 code units, no whitespace, numbers and strings exactly as
 * ECMAScript's `JSON.stringify` writes them. Strings are not Unicode-normalized: the hash must
 * change when the stored text changes, even to a canonically equivalent spelling.
 *
 * @module
 */
import { hash as oneShotHash } from 'node:crypto';

/**
 * A value JSON can represent, as stored in a `jsonb` column.
 *
 * @example
 * ```ts
 * const payload: JsonValue = { wish: '修路灯', votes: [1, 2], urgent: false, note: null };
 * ```
 */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Why a value could not be canonicalized or hashed; codes are stable and never reused. */
export type HashErrorCode = 'HASH_NON_FINITE_NUMBER' | 'HASH_UNSUPPORTED_VALUE' | 'HASH_CYCLE' | 'HASH_INVALID_PREV_HASH';

/**
 * The error thrown by {@link canonicalJson} and {@link chainHash}. `path` locates the offending
 * value inside the input, e.g. `$.payload.items[2]`.
 *
 * @example
 * ```ts
 * try {
 *   canonicalJson({ score: Number.NaN });
 * } catch (error) {
 *   if (error instanceof HashError) console.log(error.code, error.path); // HASH_NON_FINITE_NUMBER $.score
 * }
 * ```
 */
export class HashError extends Error {
  override readonly name = 'HashError';
  readonly code: HashErrorCode;
  readonly path: string;

  constructor(code: HashErrorCode, path: string, message: string) {
    super(message);
    this.code = code;
    this.path = path;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Serializes a JSON value canonically, so that equal values always give the same text.
 *
 * Accepts what `JSON.stringify` would write without loss: plain objects and arrays, strings,
 * booleans, `null`, finite numbers, and objects with `toJSON` (such as `Date`). Object members
 * whose value is `undefined` are omitted, as `JSON.stringify` and therefore `jsonb` storage omit
 * them. Everything that `JSON.stringify` would silently change is refused instead: `NaN` and
 * infinities, `undefined` at the top or in an array, functions, symbols, `bigint`, `Map`, `Set`
 * and other class instances, and cycles.
 *
 * @throws {HashError} `HASH_NON_FINITE_NUMBER`, `HASH_UNSUPPORTED_VALUE`, `HASH_CYCLE`.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: ['网格', true] }); // '{"a":["网格",true],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  // The fast writer handles the values the engine writes; anything it refuses is written again by
  // the careful one, which says where and why.
  const fast = writeFast(value, 0);
  return fast ?? write(value);
}

/** Characters JSON.stringify escapes: quote, backslash, controls, and surrogates (paired or not). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON.stringify writes it; most need no escaping and skip the native call. */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** Object keys repeat from event to event (field names, state names), so their quoted form is kept. */
const quotedKeys = new Map<string, string>();

function quoteKey(key: string): string {
  let q = quotedKeys.get(key);
  if (q === undefined) {
    q = JSON.stringify(key);
    if (quotedKeys.size < 10_000) quotedKeys.set(key, q);
  }
  return q;
}

/**
 * The canonical JSON of an object whose members are already canonical JSON texts (undefined
 * members are left out, as `canonicalJson` leaves them out): the same text `canonicalJson` gives
 * for the object itself, without serializing the members again. For writers that need both a
 * record's canonical form and its parts (the event hash and the row written).
 *
 * @example
 * ```ts
 * canonicalObject({ b: '1', a: canonicalJson(['网格']) }) === canonicalJson({ b: 1, a: ['网格'] }); // true
 * ```
 */
export function canonicalObject(members: Readonly<Record<string, string | undefined>>): string {
  const keys = Object.keys(members).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = members[key];
    if (member === undefined) continue;
    out += first ? `${quoteKey(key)}:${member}` : `,${quoteKey(key)}:${member}`;
    first = false;
  }
  return `${out}}`;
}

/** Deeper than this, the careful writer takes over (and tells a cycle from a deep value). */
const FAST_MAX_DEPTH = 200;

/**
 * The canonical text of `value`, or undefined for anything needing a diagnosis (a non-finite
 * number, undefined in an array, a class instance, a cycle, great depth). It keeps no paths and
 * no ancestor set, which makes it several times faster than `write` on the hot path.
 */
function writeFast(value: unknown, depth: number): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : undefined;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return undefined;
  }
  if (depth > FAST_MAX_DEPTH) return undefined;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return undefined;
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) return undefined;
      const s = writeFast(item, depth + 1);
      if (s === undefined) return undefined;
      out += i === 0 ? s : `,${s}`;
    }
    return `${out}]`;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if ((prototype !== Object.prototype && prototype !== null) || hasToJson(value)) return undefined;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length > 1) keys.sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    const s = writeFast(member, depth + 1);
    if (s === undefined) return undefined;
    out += first ? `${quoteKey(key)}:${s}` : `,${quoteKey(key)}:${s}`;
    first = false;
  }
  return `${out}}`;
}

/** A container the careful writer is inside of, with what it has written so far. */
type Frame =
  | { readonly kind: 'array'; readonly object: object; readonly items: readonly unknown[]; readonly path: string; index: number; readonly parts: string[] }
  | { readonly kind: 'object'; readonly object: object; readonly record: Readonly<Record<string, unknown>>; readonly path: string; readonly keys: readonly string[]; index: number; key: string; readonly parts: string[] }
  | { readonly kind: 'toJSON'; readonly object: { toJSON(): unknown }; readonly path: string; started: boolean };

/**
 * The careful writer: the canonical text of `value`, or a HashError naming the path of the first
 * value JSON cannot hold. It keeps its own stack of open containers instead of recursing, so a
 * value nested a hundred thousand levels deep is written (or refused) rather than overflowing the
 * call stack.
 */
function write(value: unknown): string {
  const stack: Frame[] = [];
  // Containers open on the path from the root to the value being written: a value met again
  // among them is a cycle; met elsewhere it is only shared.
  const ancestors = new Set<object>();

  // The text of a scalar; for an object, pushes its frame and returns undefined.
  const open = (v: unknown, path: string): string | undefined => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'boolean':
        return v ? 'true' : 'false';
      case 'string':
        return JSON.stringify(v);
      case 'number':
        if (!Number.isFinite(v)) {
          throw new HashError('HASH_NON_FINITE_NUMBER', path, `${path} is ${v}, which JSON cannot represent; use null or a finite number.`);
        }
        return JSON.stringify(v);
      case 'object':
        break;
      default:
        throw new HashError('HASH_UNSUPPORTED_VALUE', path, `${path} is a ${typeof v}, which JSON cannot represent.`);
    }
    const object = v as object;
    if (ancestors.has(object)) {
      throw new HashError('HASH_CYCLE', path, `${path} refers back to one of its own ancestors; JSON cannot represent a cycle.`);
    }
    // Before toJSON is called, so a toJSON that returns its own object is a cycle, not a hang.
    if (hasToJson(object)) {
      ancestors.add(object);
      stack.push({ kind: 'toJSON', object, path, started: false });
      return undefined;
    }
    if (Array.isArray(object)) {
      ancestors.add(object);
      stack.push({ kind: 'array', object, items: object as unknown[], path, index: 0, parts: [] });
      return undefined;
    }
    const prototype: unknown = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = object.constructor?.name ?? 'object';
      throw new HashError('HASH_UNSUPPORTED_VALUE', path, `${path} is a ${kind}; only plain objects and arrays are JSON. Convert it first.`);
    }
    const record = object as Record<string, unknown>;
    ancestors.add(object);
    // The default sort compares UTF-16 code units, which is the order RFC 8785 prescribes.
    stack.push({ kind: 'object', object, record, path, keys: Object.keys(record).sort(), index: 0, key: '', parts: [] });
    return undefined;
  };

  // `done` is the text of the value last finished, waiting to be taken by the frame on top.
  let done = open(value, '$');
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined) return done ?? '';
    if (top.kind === 'toJSON') {
      if (!top.started) {
        top.started = true;
        done = open(top.object.toJSON(), top.path);
        continue;
      }
      // Its one value is written: `done` holds the text, which stands for the object.
      ancestors.delete(top.object);
      stack.pop();
      continue;
    }
    if (top.kind === 'array') {
      if (done !== undefined) top.parts.push(done);
      if (top.index < top.items.length) {
        const index = top.index++;
        const item = top.items[index];
        const itemPath = `${top.path}[${index}]`;
        if (item === undefined) {
          throw new HashError('HASH_UNSUPPORTED_VALUE', itemPath, `${itemPath} is undefined (or a hole); JSON would turn it into null. Write null explicitly.`);
        }
        done = open(item, itemPath);
        continue;
      }
      ancestors.delete(top.object);
      stack.pop();
      done = `[${top.parts.join(',')}]`;
      continue;
    }
    if (done !== undefined) top.parts.push(`${JSON.stringify(top.key)}:${done}`);
    let member: unknown;
    while (top.index < top.keys.length && (member = top.record[top.keys[top.index] ?? '']) === undefined) top.index++;
    if (top.index < top.keys.length) {
      top.key = top.keys[top.index++] ?? '';
      done = open(member, `${top.path}.${top.key}`);
      continue;
    }
    ancestors.delete(top.object);
    stack.pop();
    done = `{${top.parts.join(',')}}`;
  }
}

function hasToJson(value: object): value is { toJSON(): unknown } {
  return typeof (value as { toJSON?: unknown }).toJSON === 'function';
}

/**
 * Links one event into its case's hash chain: the lowercase hex SHA-256 of the previous hash's
 * 32 bytes (nothing for a case's first event) followed by the UTF-8 bytes of the event's
 * canonical JSON. Changing, removing or reordering any earlier event changes every later hash.
 *
 * @throws {HashError} `HASH_INVALID_PREV_HASH` if `prevHash` is not 64 lowercase hex digits.
 *
 * @example
 * ```ts
 * const first = chainHash(null, canonicalJson({ seq: 1, type: '点单' }));
 * const second = chainHash(first, canonicalJson({ seq: 2, type: '派单' }));
 * ```
 */
export function chainHash(prevHash: string | null, canonicalEvent: string): string {
  if (prevHash === null) return oneShotHash('sha256', canonicalEvent, 'hex');
  if (!SHA256_HEX.test(prevHash)) {
    throw new HashError('HASH_INVALID_PREV_HASH', '$', `The previous hash must be 64 lowercase hex digits, got ${JSON.stringify(prevHash)}.`);
  }
  // One-shot hashing (no Hash object per event) over the previous hash's bytes and the event's UTF-8.
  return oneShotHash('sha256', Buffer.concat([Buffer.from(prevHash, 'hex'), Buffer.from(canonicalEvent, 'utf8')]), 'hex');
}

/**
 * Lowercase hex SHA-256 of a string's UTF-8 bytes, e.g. to fingerprint a request body for an
 * idempotency key.
 *
 * @example
 * ```ts
 * const requestHash = sha256Hex(canonicalJson(body));
 * ```
 */
export function sha256Hex(text: string): string {
  return oneShotHash('sha256', text, 'hex');
}
