/**
 * Evaluation of checked expressions. `compileExpr` turns the tree into closures once; running one
 * is then a few function calls. Nothing is interpreted from text at run time (no eval).
 *
 * Evaluation is total: for any values in the environment, whatever their shape, an evaluator returns
 * a value and never throws. Reading a field of null is null; arithmetic with null, division by zero
 * and any result that is not a finite number are null; an ordering comparison (`<`, `>=`, …) with
 * null is false, while `null == null` is true. `and`, `or` and `not` read anything but `true` as false.
 * Calls out to the oracle and to rule tables are guarded: a throw or a malformed answer becomes null.
 */
import type { BinaryOp, Expr, ExprKind } from './ast.ts';
import type { DurationValue, Type, Value } from './types.ts';
import { DURATION_UNITS, isDurationValue, valuesEqual } from './types.ts';
import { BUILTIN_NAMES, ORG_PROPERTIES, inferTypes, type ExprScope } from './expr-check.ts';
import { ask, durationOf, finite, lookupFunction, shiftDateTime, zoneOf, type FnContext, type Oracle } from './functions.ts';
import { DEFAULT_UTC_OFFSET_MINUTES, addDurationMonToFri, approxMs, isWeekdayMonToFri, parseDateTime } from './time.ts';

/** Re-exported so the engine imports the oracle from where it is used. @example import type { Oracle } from './expr-eval.ts'; */
export type { Oracle } from './functions.ts';

/**
 * Everything an expression may read when it runs.
 * @example const env: EvalEnv = { case: {}, payload: {}, locals: {}, actor: 'u1', submitter: 'u2', unit: '社区1', now: '2024-05-01T00:00:00.000Z', oracle: simpleOracle({}), tables: {} };
 */
export interface EvalEnv {
  readonly case: Readonly<Record<string, Value>>;
  readonly payload: Readonly<Record<string, Value>>;
  readonly locals: Readonly<Record<string, Value>>;
  readonly actor: string | null;
  readonly submitter: string | null;
  readonly unit: string | null;
  /** The event's recorded time, ISO. */
  readonly now: string;
  readonly oracle: Oracle;
  readonly tables: Readonly<Record<string, (args: readonly Value[], env: EvalEnv) => Value>>;
}

/**
 * A compiled expression.
 * @example const ok: boolean = compileExpr(guard, scope)(env) === true;
 */
export type Evaluator = (env: EvalEnv) => Value;

/** Texts longer than this (in UTF-16 units) are not built; the result is null instead of an exhausted heap. */
const MAX_TEXT = 1 << 20;

interface CompileCtx {
  readonly scope: ExprScope;
  readonly types: ReadonlyMap<Expr, Type>;
}

type Compilers = { readonly [K in ExprKind]: (e: Extract<Expr, { readonly kind: K }>, c: CompileCtx) => Evaluator };

const NULL: Evaluator = () => null;
const constant = (v: Value): Evaluator => () => v;

/** Any JavaScript value as a Value at its top level: undefined, NaN, ±Infinity, functions become null. */
function sane(v: unknown): Value {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return finite(v);
    case 'object':
      return v as Value;
    default:
      return null;
  }
}

/** An own property of a record, or null; never the prototype's (`constructor`, `__proto__`). */
function field(obj: unknown, name: string): Value {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return null;
  return Object.hasOwn(obj, name) ? sane((obj as Record<string, unknown>)[name]) : null;
}

const isNum = (v: Value): v is number => typeof v === 'number' && Number.isFinite(v);
const isText = (v: Value): v is string => typeof v === 'string';

function ctxOf(env: EvalEnv): FnContext {
  return { oracle: env.oracle };
}

function instant(v: Value, env: EvalEnv): number | null {
  return isText(v) ? parseDateTime(v, zoneOf(env.oracle)) : null;
}

function concat(a: string, b: string): string | null {
  return a.length + b.length > MAX_TEXT ? null : a + b;
}

function negate(d: DurationValue): DurationValue | null {
  return durationOf(-d.ms, -d.workdays);
}

function add(a: Value, b: Value, env: EvalEnv): Value {
  if (isNum(a) && isNum(b)) return finite(a + b);
  if (isText(a) && isText(b)) return concat(a, b);
  if (isDurationValue(a) && isDurationValue(b)) return durationOf(a.ms + b.ms, a.workdays + b.workdays);
  if (isText(a) && isDurationValue(b)) return shiftDateTime(a, b, ctxOf(env));
  if (isDurationValue(a) && isText(b)) return shiftDateTime(b, a, ctxOf(env));
  return null;
}

function subtract(a: Value, b: Value, env: EvalEnv): Value {
  if (isNum(a) && isNum(b)) return finite(a - b);
  if (isDurationValue(a) && isDurationValue(b)) return durationOf(a.ms - b.ms, a.workdays - b.workdays);
  if (isText(a) && isDurationValue(b)) {
    const back = negate(b);
    return back === null ? null : shiftDateTime(a, back, ctxOf(env));
  }
  if (isText(a) && isText(b)) {
    const x = instant(a, env);
    const y = instant(b, env);
    return x === null || y === null ? null : durationOf(x - y, 0);
  }
  return null;
}

function multiply(a: Value, b: Value): Value {
  if (isNum(a) && isNum(b)) return finite(a * b);
  if (isNum(a) && isDurationValue(b)) return durationOf(a * b.ms, a * b.workdays);
  if (isDurationValue(a) && isNum(b)) return durationOf(a.ms * b, a.workdays * b);
  return null;
}

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

/** -1, 0 or 1, or null when the two are not ordered (null, mixed shapes, unreadable datetimes). */
function order(a: Value, b: Value, datetime: boolean, env: EvalEnv): number | null {
  if (datetime) {
    const x = instant(a, env);
    const y = instant(b, env);
    return x === null || y === null ? null : sign(x - y);
  }
  if (isNum(a) && isNum(b)) return sign(a - b);
  // Code-unit order: the same on every machine, unlike localeCompare.
  if (isText(a) && isText(b)) return a < b ? -1 : a > b ? 1 : 0;
  if (isDurationValue(a) && isDurationValue(b)) return sign(approxMs(a) - approxMs(b));
  return null;
}

function equal(a: Value, b: Value, datetime: boolean, env: EvalEnv): boolean {
  if (datetime && isText(a) && isText(b)) {
    const x = instant(a, env);
    const y = instant(b, env);
    if (x !== null && y !== null) return x === y;
  }
  return valuesEqual(a, b);
}

function member(v: Value, needle: Value, datetime: boolean, env: EvalEnv): boolean {
  if (Array.isArray(v)) return v.some((x: Value) => equal(needle, sane(x), datetime, env));
  if (isText(v)) return isText(needle) && v.includes(needle);
  return false;
}

function binary(op: BinaryOp, l: Evaluator, r: Evaluator, datetime: boolean): Evaluator {
  switch (op) {
    case 'and': return (env) => l(env) === true && r(env) === true;
    case 'or': return (env) => l(env) === true || r(env) === true;
    case '??': return (env) => {
      const v = l(env);
      return v === null ? r(env) : v;
    };
    case '==': return (env) => equal(l(env), r(env), datetime, env);
    case '!=': return (env) => !equal(l(env), r(env), datetime, env);
    case '<': return (env) => (order(l(env), r(env), datetime, env) ?? 0) < 0;
    case '<=': return (env) => {
      const o = order(l(env), r(env), datetime, env);
      return o !== null && o <= 0;
    };
    case '>': return (env) => (order(l(env), r(env), datetime, env) ?? 0) > 0;
    case '>=': return (env) => {
      const o = order(l(env), r(env), datetime, env);
      return o !== null && o >= 0;
    };
    case 'in': return (env) => {
      const needle = l(env);
      return member(r(env), needle, datetime, env);
    };
    case '+': return (env) => add(l(env), r(env), env);
    case '-': return (env) => subtract(l(env), r(env), env);
    case '*': return (env) => multiply(l(env), r(env));
    case '/': return (env) => {
      const a = l(env);
      const b = r(env);
      return isNum(a) && isNum(b) && b !== 0 ? finite(a / b) : null;
    };
    case '%': return (env) => {
      const a = l(env);
      const b = r(env);
      return isNum(a) && isNum(b) && b !== 0 ? finite(a % b) : null;
    };
  }
}

function isDatetime(e: Expr, c: CompileCtx): boolean {
  return c.types.get(e)?.kind === 'datetime';
}

function itemIsDatetime(e: Expr, c: CompileCtx): boolean {
  const t = c.types.get(e);
  return t?.kind === 'list' && t.item.kind === 'datetime';
}

function compileRef(name: string, c: CompileCtx): Evaluator {
  const { scope } = c;
  if (scope.locals !== undefined && Object.hasOwn(scope.locals, name)) return (env) => field(env.locals, name);
  if (scope.payload !== undefined && Object.hasOwn(scope.payload, name)) return (env) => field(env.payload, name);
  if (!Object.hasOwn(BUILTIN_NAMES, name)) return NULL;
  switch (name) {
    case 'actor': return (env) => (isText(env.actor) ? env.actor : null);
    case 'submitter': return (env) => (isText(env.submitter) ? env.submitter : null);
    case 'unit': return (env) => (isText(env.unit) ? env.unit : null);
    case 'now': return (env) => (isText(env.now) ? env.now : null);
    default: return NULL;
  }
}

const isOptString = (v: unknown): v is string | null => v === null || typeof v === 'string';

const COMPILERS: Compilers = {
  number: (e) => constant(finite(e.value)),
  string: (e) => constant(e.value),
  bool: (e) => constant(e.value),
  null: () => NULL,
  error: () => NULL,
  duration: (e) => {
    const u = Object.hasOwn(DURATION_UNITS, e.unit.text) ? DURATION_UNITS[e.unit.text] : undefined;
    return u === undefined ? NULL : constant(durationOf(e.amount * u.ms, e.amount * u.workdays));
  },
  ref: (e, c) => compileRef(e.name.text, c),
  member: (e, c) => {
    const prop = e.property.text;
    // `case` is the case record unless a local or payload field of that name hides it (as in the checker).
    if (e.object.kind === 'ref' && e.object.name.text === 'case' && compileRef('case', c) === NULL) {
      return (env) => field(env.case, prop);
    }
    const obj = compile(e.object, c);
    if (c.types.get(e.object)?.kind === 'org') {
      const p = Object.hasOwn(ORG_PROPERTIES, prop) ? ORG_PROPERTIES[prop] : undefined;
      if (p === 'parent') return (env) => {
        const u = obj(env);
        return isText(u) ? ask(() => env.oracle.parentOf(u), isOptString) : null;
      };
      if (p === 'level') return (env) => {
        const u = obj(env);
        return isText(u) ? ask(() => env.oracle.levelOf(u), isOptString) : null;
      };
      return NULL;
    }
    return (env) => field(obj(env), prop);
  },
  index: (e, c) => {
    const obj = compile(e.object, c);
    const idx = compile(e.index, c);
    return (env) => {
      const o = obj(env);
      const i = idx(env);
      if (!isNum(i) || !Number.isInteger(i) || i < 0) return null;
      if (Array.isArray(o)) return i < o.length ? sane(o[i]) : null;
      if (isText(o)) {
        // Count code points so index agrees with len().
        let k = 0;
        for (const ch of o) if (k++ === i) return ch;
      }
      return null;
    };
  },
  call: (e, c) => {
    const name = e.callee.text;
    const args = e.args.map((a) => compile(a, c));
    const evalArgs = (env: EvalEnv): Value[] => args.map((a) => a(env));
    if (Object.hasOwn(c.scope.tables, name)) {
      return (env) => {
        const values = evalArgs(env);
        const tables: unknown = env.tables;
        if (typeof tables !== 'object' || tables === null || !Object.hasOwn(tables, name)) return null;
        const table: unknown = (tables as Record<string, unknown>)[name];
        if (typeof table !== 'function') return null;
        try {
          return sane(table(values, env));
        } catch {
          return null;
        }
      };
    }
    const fn = lookupFunction(name);
    if (fn === undefined) return NULL;
    return (env) => fn.impl(evalArgs(env), ctxOf(env));
  },
  unary: (e, c) => {
    const v = compile(e.operand, c);
    if (e.op === 'not') return (env) => v(env) !== true;
    return (env) => {
      const x = v(env);
      if (isNum(x)) return finite(-x);
      return isDurationValue(x) ? negate(x) : null;
    };
  },
  binary: (e, c) => {
    const datetime = e.op === 'in'
      ? isDatetime(e.left, c) || itemIsDatetime(e.right, c)
      : isDatetime(e.left, c) || isDatetime(e.right, c);
    return binary(e.op, compile(e.left, c), compile(e.right, c), datetime);
  },
  if: (e, c) => {
    const test = compile(e.test, c);
    const a = compile(e.then, c);
    const b = compile(e.else, c);
    return (env) => (test(env) === true ? a(env) : b(env));
  },
  list: (e, c) => {
    const items = e.items.map((x) => compile(x, c));
    return (env) => items.map((x) => x(env));
  },
};

function compile(e: Expr, c: CompileCtx): Evaluator {
  return (COMPILERS[e.kind] as (e: Expr, c: CompileCtx) => Evaluator)(e, c);
}

/**
 * Builds an evaluator for an expression, once; call it with each event's environment. Check the
 * expression with `checkExpr` first: parts that failed to check evaluate to null.
 * @example compileExpr(guardAst, scope)(env) // true, false or null
 */
export function compileExpr(expr: Expr, scope: ExprScope): Evaluator {
  const types = new Map<Expr, Type>();
  inferTypes(expr, scope, [], types);
  return compile(expr, { scope, types });
}

/**
 * An oracle over a fixed org tree, for tests and in-memory runs. Its calendar counts Monday–Friday
 * as working days with no public holidays and no make-up days, in UTC+8 unless `utcOffsetMinutes`
 * is given; the engine supplies the real holiday calendar.
 * @example simpleOracle({ 网格1: '社区1', 社区1: '街道1', 街道1: null }, { 社区1: '社区' }).parentOf('网格1') // '社区1'
 */
export function simpleOracle(
  parents: Readonly<Record<string, string | null>>,
  levels: Readonly<Record<string, string>> = {},
  utcOffsetMinutes: number = DEFAULT_UTC_OFFSET_MINUTES,
): Oracle {
  return {
    utcOffsetMinutes,
    parentOf: (unit) => (Object.hasOwn(parents, unit) ? parents[unit] ?? null : null),
    levelOf: (unit) => (Object.hasOwn(levels, unit) ? levels[unit] ?? null : null),
    addDuration: (fromIso, d) => (isDurationValue(d) ? addDurationMonToFri(fromIso, d, utcOffsetMinutes) : null),
    isWorkday: (iso) => {
      const ms = parseDateTime(iso, utcOffsetMinutes);
      return ms !== null && isWeekdayMonToFri(ms, utcOffsetMinutes);
    },
  };
}
