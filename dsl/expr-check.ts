/**
 * Type checking of expressions (guards, `when` conditions, `set` values, deadlines, rule cells) and
 * resolution of written types and field declarations into semantic types.
 *
 * Nothing here throws: every problem becomes a diagnostic and the offending part gets the type
 * `unknown`, which fits everything, so one mistake is reported once rather than at every use.
 */
import type { BinaryOp, Expr, ExprKind, FieldDecl, Span, TypeExpr } from './ast.ts';
import type { Code } from './codes.ts';
import { diag, type Diagnostic } from './diagnostics.ts';
import {
  DURATION_UNITS, T, TYPE_NAMES, isAssignable, joinTypes, showType,
  type FieldConstraints, type FieldType, type Type, type Value,
} from './types.ts';
import { FUNCTIONS, lookupFunction, showSignatures, type BuiltinFunction, type Overload } from './functions.ts';
import { didYouMean } from './suggest.ts';
import { validateValue } from './values.ts';
import { normalizeDateTime } from './time.ts';

/**
 * What names mean where an expression is written.
 * @example const scope: ExprScope = { caseFields: { 单位: { type: T.org, optional: true, constraints: {} } }, tables: {} };
 */
export interface ExprScope {
  /** `case.x` */
  readonly caseFields: Readonly<Record<string, FieldType>>;
  /** Bare names = the event's payload fields. */
  readonly payload?: Readonly<Record<string, FieldType>>;
  /** E.g. the `each` variable (an org). Locals hide payload fields and built-ins of the same name. */
  readonly locals?: Readonly<Record<string, Type>>;
  /** Rule tables callable as functions. */
  readonly tables: Readonly<Record<string, TableSignature>>;
}

/**
 * A rule table seen as a function: `分拨(类别, 严重程度)` returns a record of its outputs (null when no
 * row matches) or, with `collect`, a list of such records.
 * @example const sig: TableSignature = { inputs: [{ name: '类别', type: T.text }], outputs: [{ name: '部门', type: T.org }], hit: 'first' };
 */
export interface TableSignature {
  readonly inputs: readonly { readonly name: string; readonly type: Type }[];
  readonly outputs: readonly { readonly name: string; readonly type: Type }[];
  readonly hit: 'unique' | 'first' | 'collect';
}

/**
 * Names every expression may use unless a payload field or local of the same name hides them:
 * the actor sending the event, the actor who started the case, the case's responsible unit, and
 * the event's recorded time.
 * @example BUILTIN_NAMES['now'] // T.datetime
 */
export const BUILTIN_NAMES: Readonly<Record<string, Type>> = {
  actor: T.actor,
  submitter: T.actor,
  unit: T.org,
  now: T.datetime,
};

/**
 * Properties of an org unit, with Chinese spellings.
 * @example ORG_PROPERTIES['上级'] // 'parent'
 */
export const ORG_PROPERTIES: Readonly<Record<string, 'parent' | 'level'>> = {
  parent: 'parent', 上级: 'parent',
  level: 'level', 层级: 'level', 级别: 'level',
};

interface Ctx {
  readonly scope: ExprScope;
  readonly out: Diagnostic[];
  readonly types: Map<Expr, Type>;
}

type Visitor<R> = { readonly [K in ExprKind]: (e: Extract<Expr, { readonly kind: K }>, c: Ctx) => R };

const has = <V>(o: Readonly<Record<string, V>> | undefined, k: string): o is Readonly<Record<string, V>> =>
  o !== undefined && Object.hasOwn(o, k);

const wild = (t: Type): boolean => t.kind === 'unknown' || t.kind === 'null';
const textish = (t: Type): boolean => t.kind === 'text' || t.kind === 'enum';

function report(c: Ctx, code: Code, span: Span, message: string, hint?: string): void {
  c.out.push(diag(code, span, message, hint));
}

function recordOf(fields: readonly { readonly name: string; readonly type: Type }[]): Type {
  return { kind: 'record', fields: Object.fromEntries(fields.map((f) => [f.name, { type: f.type, optional: false, constraints: {} }])) };
}

function caseType(scope: ExprScope): Type {
  return { kind: 'record', fields: scope.caseFields };
}

/** The type a bare name has in this scope, in resolution order; undefined if it names no value. */
function lookupName(name: string, scope: ExprScope): Type | undefined {
  if (has(scope.locals, name)) return scope.locals[name];
  if (has(scope.payload, name)) return scope.payload[name]?.type;
  if (has(BUILTIN_NAMES, name)) return BUILTIN_NAMES[name];
  return undefined;
}

/** `case` written as the object of a member access, not hidden by a local or payload field. */
function isCaseRef(e: Expr, scope: ExprScope): boolean {
  return e.kind === 'ref' && e.name.text === 'case' && lookupName('case', scope) === undefined;
}

function valueNames(scope: ExprScope): string[] {
  return [...Object.keys(scope.locals ?? {}), ...Object.keys(scope.payload ?? {}), ...Object.keys(BUILTIN_NAMES)];
}

function membersHint(value: string, members: readonly string[]): string {
  const guess = didYouMean(value, members);
  return `${guess === undefined ? '' : `${guess} `}Use one of: ${members.join(', ')}.`;
}

/** A string literal where an enum is expected must be a member (WF0217). True if `e` was such a literal. */
function enumLiteral(e: Expr, t: Type, c: Ctx): boolean {
  if (t.kind !== 'enum' || e.kind !== 'string') return false;
  if (!t.members.includes(e.value)) {
    report(c, 'WF0217', e.span, `"${e.value}" is not one of the allowed values.`, membersHint(e.value, t.members));
  }
  return true;
}

/** A string literal compared with a datetime must read as one. True if `e` was such a literal. */
function datetimeLiteral(e: Expr, t: Type, c: Ctx): boolean {
  if (t.kind !== 'datetime' || e.kind !== 'string') return false;
  if (normalizeDateTime(e.value) === null) {
    report(c, 'WF0301', e.span, `"${e.value}" is not a date or date-time.`, 'Write it as 2024-05-01, 2024-05-01 09:00 or 2024-05-01T09:00:00+08:00.');
  }
  return true;
}

/** Whether `e` (of type `t`) fits `want`, treating string literals as enum members and list literals item by item. */
function fitsExpr(e: Expr, t: Type, want: Type, c: Ctx): boolean {
  if (enumLiteral(e, want, c)) return true;
  if (want.kind === 'list' && e.kind === 'list') {
    return e.items.every((item) => fitsExpr(item, c.types.get(item) ?? T.unknown, want.item, c));
  }
  return isAssignable(t, want);
}

function comparable(l: Type, r: Type): boolean {
  if (wild(l) || wild(r)) return true;
  if (textish(l) && textish(r)) return true;
  // Org and actor ids are texts; comparing them with a text (e.g. a literal id) is meaningful.
  if (l.kind === 'text' && (r.kind === 'org' || r.kind === 'actor')) return true;
  if (r.kind === 'text' && (l.kind === 'org' || l.kind === 'actor')) return true;
  if (l.kind === 'list' && r.kind === 'list') return comparable(l.item, r.item);
  return joinTypes(l, r) !== undefined;
}

function isZeroLiteral(e: Expr): boolean {
  if (e.kind === 'number') return e.value === 0;
  return e.kind === 'unary' && e.op === '-' && isZeroLiteral(e.operand);
}

const key = (t: Type): string => (t.kind === 'enum' ? 'text' : t.kind);

const ARITHMETIC: Readonly<Partial<Record<BinaryOp, Readonly<Record<string, Type>>>>> = {
  '+': {
    'number number': T.number, 'duration duration': T.duration, 'datetime duration': T.datetime,
    'duration datetime': T.datetime, 'text text': T.text,
  },
  '-': { 'number number': T.number, 'duration duration': T.duration, 'datetime duration': T.datetime, 'datetime datetime': T.duration },
  '*': { 'number number': T.number, 'number duration': T.duration, 'duration number': T.duration },
  '/': { 'number number': T.number },
  '%': { 'number number': T.number },
};

const ARITHMETIC_HINT: Readonly<Partial<Record<BinaryOp, string>>> = {
  '+': '"+" adds two numbers, two durations, or a duration to a datetime, and joins two texts; write text(x) to turn a value into text.',
  '-': '"-" subtracts numbers or durations, a duration from a datetime, or a datetime from a datetime (giving a duration).',
  '*': '"*" multiplies two numbers, or a duration by a number.',
  '/': '"/" divides two numbers.',
  '%': '"%" takes the remainder of two numbers.',
};

function requireBoolean(t: Type, e: Expr, what: string, c: Ctx): void {
  if (wild(t) || t.kind === 'boolean') return;
  report(c, 'WF0302', e.span, `${what} must be a boolean (true or false); this is ${showType(t)}.`, 'Compare it to get a boolean, e.g. x == … or x > ….');
}

function checkBinary(e: Extract<Expr, { kind: 'binary' }>, c: Ctx): Type {
  const l = infer(e.left, c);
  const r = infer(e.right, c);
  const op = e.op;
  switch (op) {
    case 'and':
    case 'or':
      requireBoolean(l, e.left, `The left side of "${op}"`, c);
      requireBoolean(r, e.right, `The right side of "${op}"`, c);
      return T.boolean;
    case '??': {
      if (enumLiteral(e.right, l, c)) return l;
      const j = joinTypes(l, r);
      if (j !== undefined) return j;
      report(c, 'WF0301', e.span, `The two sides of "??" have different types: ${showType(l)} and ${showType(r)}.`, 'Give a fallback of the same type as the value it stands in for.');
      return T.unknown;
    }
    case '==':
    case '!=':
      if (enumLiteral(e.left, r, c) || enumLiteral(e.right, l, c)) return T.boolean;
      if (datetimeLiteral(e.left, r, c) || datetimeLiteral(e.right, l, c)) return T.boolean;
      if (!comparable(l, r)) {
        report(c, 'WF0301', e.span, `Cannot compare ${showType(l)} with ${showType(r)}: they are never equal.`, `Both sides of "${op}" must have the same type.`);
      }
      return T.boolean;
    case '<':
    case '<=':
    case '>':
    case '>=': {
      if (datetimeLiteral(e.left, r, c) || datetimeLiteral(e.right, l, c)) return T.boolean;
      if (wild(l) || wild(r)) return T.boolean;
      const ordered = l.kind === r.kind && (l.kind === 'number' || l.kind === 'datetime' || l.kind === 'duration' || l.kind === 'text');
      if (!ordered) {
        const hint = l.kind === 'enum' || r.kind === 'enum'
          ? 'The members of a "one of" type have no order: compare them with == or "in".'
          : `"${op}" compares two numbers, two datetimes, two durations or two texts.`;
        report(c, 'WF0301', e.span, `Cannot order ${showType(l)} and ${showType(r)} with "${op}".`, hint);
      }
      return T.boolean;
    }
    case 'in':
      checkIn(e, l, r, c);
      return T.boolean;
    case '+':
    case '-':
    case '*':
    case '/':
    case '%': {
      if ((op === '/' || op === '%') && isZeroLiteral(e.right)) {
        report(c, 'WF0314', e.span, 'Division by zero: the result is always null.', 'Divide by a number other than 0.');
      }
      if (l.kind === 'unknown' || r.kind === 'unknown') return T.unknown;
      if (l.kind === 'null' && r.kind === 'null') return T.null;
      const lk = l.kind === 'null' ? key(r) : key(l);
      const rk = r.kind === 'null' ? key(l) : key(r);
      const result = ARITHMETIC[op]?.[`${lk} ${rk}`];
      if (result !== undefined) return result;
      report(c, 'WF0301', e.span, `Cannot apply "${op}" to ${showType(l)} and ${showType(r)}.`, ARITHMETIC_HINT[op]);
      return T.unknown;
    }
  }
}

function checkIn(e: Extract<Expr, { kind: 'binary' }>, l: Type, r: Type, c: Ctx): void {
  if (r.kind === 'list') {
    if (enumLiteral(e.left, r.item, c)) return;
    if (l.kind === 'enum' && e.right.kind === 'list') {
      for (const item of e.right.items) enumLiteral(item, l, c);
      return;
    }
    if (!comparable(l, r.item)) {
      report(c, 'WF0301', e.span, `Cannot look for ${showType(l)} in ${showType(r)}.`, 'The value on the left must have the type of the list\'s items.');
    }
  } else if (textish(r)) {
    if (!wild(l) && !textish(l)) {
      report(c, 'WF0301', e.span, `"in" on a text looks for a text inside it; the left side is ${showType(l)}.`, 'Put a text on the left, or a list on the right.');
    }
  } else if (!wild(r)) {
    report(c, 'WF0317', e.right.span, `"in" needs a list or a text on its right; this is ${showType(r)}.`, 'Write x in [a, b] or x in case.<list field>.');
  }
}

function checkMember(e: Extract<Expr, { kind: 'member' }>, c: Ctx): Type {
  const prop = e.property.text;
  if (isCaseRef(e.object, c.scope)) {
    c.types.set(e.object, caseType(c.scope));
    if (has(c.scope.caseFields, prop)) return c.scope.caseFields[prop]?.type ?? T.unknown;
    if (prop !== '') {
      const fields = Object.keys(c.scope.caseFields);
      report(c, 'WF0205', e.property.span, `Unknown case field "${prop}".`,
        didYouMean(prop, fields) ?? (fields.length === 0 ? `Declare it in case { ${prop}: … }.` : `The case fields are: ${fields.join(', ')}.`));
    }
    return T.unknown;
  }
  const ot = infer(e.object, c);
  if (prop === '' || wild(ot)) return T.unknown;
  switch (ot.kind) {
    case 'org': {
      const p = has(ORG_PROPERTIES, prop) ? ORG_PROPERTIES[prop] : undefined;
      if (p === 'parent') return T.org;
      if (p === 'level') return T.text;
      report(c, 'WF0313', e.property.span, `An org unit has no property "${prop}".`,
        didYouMean(prop, Object.keys(ORG_PROPERTIES)) ?? 'An org unit has .parent (its parent unit) and .level.');
      return T.unknown;
    }
    case 'record': {
      if (has(ot.fields, prop)) return ot.fields[prop]?.type ?? T.unknown;
      const fields = Object.keys(ot.fields);
      report(c, 'WF0313', e.property.span, `This record has no field "${prop}".`,
        didYouMean(prop, fields) ?? `Its fields are: ${fields.join(', ')}.`);
      return T.unknown;
    }
    case 'actor':
      report(c, 'WF0313', e.property.span, `An actor has no properties, so "${prop}" cannot be read.`, 'Use the actor itself, e.g. actor == case.member; roles are checked with "by".');
      return T.unknown;
    case 'list':
      report(c, 'WF0313', e.property.span, `A list has no property "${prop}".`, 'Use len(list) for its length, or list[0] for an item.');
      return T.unknown;
    default:
      report(c, 'WF0313', e.property.span, `A ${showType(ot)} value has no property "${prop}".`, 'Only org units (.parent, .level) and records have properties.');
      return T.unknown;
  }
}

function checkCall(e: Extract<Expr, { kind: 'call' }>, c: Ctx): Type {
  const name = e.callee.text;
  const argTypes = e.args.map((a) => infer(a, c));
  const table = has(c.scope.tables, name) ? c.scope.tables[name] : undefined;
  if (table !== undefined) {
    if (e.args.length !== table.inputs.length) {
      report(c, 'WF0305', e.span, `Rule table "${name}" takes ${table.inputs.length} input(s), not ${e.args.length}.`,
        `Write ${name}(${table.inputs.map((i) => i.name).join(', ')}).`);
    } else {
      table.inputs.forEach((input, i) => {
        const arg = e.args[i];
        const t = argTypes[i] ?? T.unknown;
        if (arg !== undefined && !fitsExpr(arg, t, input.type, c)) {
          report(c, 'WF0306', arg.span, `Input "${input.name}" of rule table "${name}" must be ${showType(input.type)}; this is ${showType(t)}.`,
            `Pass a value of type ${showType(input.type)}.`);
        }
      });
    }
    const row = recordOf(table.outputs);
    return table.hit === 'collect' ? { kind: 'list', item: row } : row;
  }
  const fn = lookupFunction(name);
  if (fn === undefined) {
    if (name !== '') {
      const candidates = [...Object.keys(c.scope.tables), ...Object.keys(FUNCTIONS)];
      report(c, 'WF0210', e.callee.span, `Unknown rule table or function "${name}".`,
        didYouMean(name, candidates) ?? 'Declare a rule table with `rules`, import one, or use a built-in function such as len, round or add.');
    }
    return T.unknown;
  }
  return checkOverloads(fn, e, argTypes, c);
}

function checkOverloads(fn: BuiltinFunction, e: Extract<Expr, { kind: 'call' }>, argTypes: readonly Type[], c: Ctx): Type {
  const n = e.args.length;
  const name = e.callee.text;
  const byArity = fn.overloads.filter((o) => n <= o.params.length && n >= o.params.length - (o.optional ?? 0));
  if (byArity.length === 0) {
    const counts = [...new Set(fn.overloads.flatMap((o) => Array.from({ length: (o.optional ?? 0) + 1 }, (_, i) => o.params.length - i)))].sort();
    report(c, 'WF0305', e.span, `${name} takes ${counts.join(' or ')} argument(s), not ${n}.`, `Write ${showSignatures(fn, name)}.`);
    return T.unknown;
  }
  for (const o of byArity) {
    const found = tryOverload(o, e.args, argTypes, c);
    if (found !== undefined) {
      c.out.push(...found.deferred);
      return found.result;
    }
  }
  report(c, 'WF0306', e.span, `${name} cannot take (${argTypes.map(showType).join(', ')}).`, `Write ${showSignatures(fn, name)}.`);
  return T.unknown;
}

/** Matches arguments to one overload, binding the item type T; diagnostics are held back until it is chosen. */
function tryOverload(o: Overload, args: readonly Expr[], argTypes: readonly Type[], c: Ctx): { result: Type; deferred: Diagnostic[] } | undefined {
  const probe: Ctx = { ...c, out: [] };
  let item: Type | undefined;
  const bind = (t: Type): boolean => {
    if (wild(t)) return true;
    const j = item === undefined ? t : joinTypes(item, t);
    if (j === undefined) return false;
    item = j;
    return true;
  };
  // Lists first, so `contains(case.类别们, "维修")` checks the literal against the bound item type.
  for (let i = 0; i < args.length; i++) {
    if (o.params[i]?.kind !== 'listOfVar') continue;
    const t = argTypes[i] ?? T.unknown;
    if (wild(t)) continue;
    if (t.kind !== 'list' || !bind(t.item)) return undefined;
  }
  for (let i = 0; i < args.length; i++) {
    const p = o.params[i];
    const arg = args[i];
    const t = argTypes[i] ?? T.unknown;
    if (p === undefined || arg === undefined) return undefined;
    if (p.kind === 'type' && !fitsExpr(arg, t, p.type, probe)) return undefined;
    if (p.kind === 'var' && !(item !== undefined && enumLiteral(arg, item, probe)) && !bind(t)) return undefined;
  }
  const bound: Type = item ?? T.unknown;
  const r = o.result;
  const result: Type = r.kind === 'type' ? r.type : r.kind === 'var' ? bound : r.kind === 'listOfVar' ? { kind: 'list', item: bound } : T.unknown;
  return { result, deferred: probe.out };
}

const CHECKERS: Visitor<Type> = {
  number: () => T.number,
  string: () => T.text,
  bool: () => T.boolean,
  null: () => T.null,
  error: () => T.unknown,
  duration: (e, c) => {
    const u = e.unit.text;
    if (u !== '' && !has(DURATION_UNITS, u)) {
      report(c, 'WF0309', e.unit.span, `Unknown duration unit "${u}".`,
        didYouMean(u, Object.keys(DURATION_UNITS)) ?? 'Use minutes, hours, days or workdays (分钟, 小时, 天, 工作日).');
    }
    return T.duration;
  },
  ref: (e, c) => {
    const name = e.name.text;
    const t = lookupName(name, c.scope);
    if (t !== undefined) return t;
    if (name === '') return T.unknown;
    if (name === 'case') {
      const first = Object.keys(c.scope.caseFields)[0] ?? '字段';
      report(c, 'WF0209', e.span, '"case" is not a value by itself.', `Read one of its fields, e.g. case.${first}.`);
    } else if (has(c.scope.tables, name) || lookupFunction(name) !== undefined) {
      const kind = has(c.scope.tables, name) ? 'rule table' : 'function';
      report(c, 'WF0209', e.span, `"${name}" is a ${kind}, not a value.`, `Call it with its arguments: ${name}(…).`);
    } else if (has(c.scope.caseFields, name)) {
      report(c, 'WF0209', e.span, `Unknown name "${name}".`, `Case fields are read through case: write case.${name}.`);
    } else {
      report(c, 'WF0209', e.span, `Unknown name "${name}".`,
        didYouMean(name, valueNames(c.scope)) ?? 'Use a payload field, a case field as case.<field>, or one of actor, submitter, unit, now.');
    }
    return T.unknown;
  },
  member: checkMember,
  index: (e, c) => {
    const o = infer(e.object, c);
    const i = infer(e.index, c);
    const elem: Type | undefined = o.kind === 'list' ? o.item : textish(o) ? T.text : wild(o) ? T.unknown : undefined;
    if (elem === undefined) {
      report(c, 'WF0317', e.object.span, `Only a list or a text can be indexed; this is ${showType(o)}.`,
        o.kind === 'record' ? 'Read a record\'s field with a dot: x.field.' : 'Index a list, e.g. items[0].');
      return T.unknown;
    }
    if (!wild(i) && i.kind !== 'number') {
      report(c, 'WF0316', e.index.span, `An index must be a number; this is ${showType(i)}.`, 'Items are counted from 0: items[0] is the first.');
    }
    return elem;
  },
  call: checkCall,
  unary: (e, c) => {
    const t = infer(e.operand, c);
    if (e.op === 'not') {
      requireBoolean(t, e.operand, 'The operand of "not"', c);
      return T.boolean;
    }
    if (wild(t) || t.kind === 'number' || t.kind === 'duration') return t;
    report(c, 'WF0316', e.span, `"-" needs a number or a duration; this is ${showType(t)}.`, 'Negate a number, e.g. -1, or a duration.');
    return T.unknown;
  },
  binary: checkBinary,
  if: (e, c) => {
    requireBoolean(infer(e.test, c), e.test, 'The condition of "if"', c);
    const a = infer(e.then, c);
    const b = infer(e.else, c);
    if (enumLiteral(e.else, a, c)) return a;
    if (enumLiteral(e.then, b, c)) return b;
    const j = joinTypes(a, b);
    if (j !== undefined) return j;
    report(c, 'WF0301', e.span, `The two branches have different types: ${showType(a)} and ${showType(b)}.`, 'Make "then" and "else" give values of the same type.');
    return T.unknown;
  },
  list: (e, c) => {
    let item: Type = T.null;
    let ok = true;
    for (const x of e.items) {
      const t = infer(x, c);
      if (!ok) continue;
      const j = joinTypes(item, t);
      if (j === undefined) {
        report(c, 'WF0301', x.span, `List items must all have one type: this is ${showType(t)}, the ones before are ${showType(item)}.`, 'Put values of one type in a list.');
        ok = false;
      } else item = j;
    }
    return { kind: 'list', item: ok && item.kind !== 'null' ? item : T.unknown };
  },
};

function infer(e: Expr, c: Ctx): Type {
  const t = (CHECKERS[e.kind] as (e: Expr, c: Ctx) => Type)(e, c);
  c.types.set(e, t);
  return t;
}

/**
 * Infers the type of an expression, pushing a diagnostic for each problem. Never throws.
 * @example checkExpr(ast, { caseFields, tables: {} }, out) // T.boolean for `case.满意度 >= 3`
 */
export function checkExpr(expr: Expr, scope: ExprScope, out: Diagnostic[]): Type {
  return infer(expr, { scope, out, types: new Map() });
}

/**
 * Like {@link checkExpr}, and also records the type of every sub-expression in `types`; the
 * evaluator uses them to pick, say, datetime rather than text comparison.
 * @example const types = new Map(); inferTypes(ast, scope, [], types); types.get(ast)
 */
export function inferTypes(expr: Expr, scope: ExprScope, out: Diagnostic[], types: Map<Expr, Type>): Type {
  return infer(expr, { scope, out, types });
}

/**
 * Checks an expression where a value of type `expected` is needed (a `set` value, a rule cell, a
 * default), reporting `code` when it does not fit. String literals are checked as enum members
 * and list literals item by item. Returns the expression's own type.
 * @example checkExprAgainst(valueExpr, caseField.type, scope, out) // reports WF0303 on a mismatch
 */
export function checkExprAgainst(expr: Expr, expected: Type, scope: ExprScope, out: Diagnostic[], code: Code = 'WF0303'): Type {
  const c: Ctx = { scope, out, types: new Map() };
  const t = infer(expr, c);
  if (!fitsExpr(expr, t, expected, c)) {
    report(c, code, expr.span, `Expected ${showType(expected)} here; this is ${showType(t)}.`, `Give a value of type ${showType(expected)}.`);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Written types and field declarations

/**
 * Turns a written type into a semantic type. Built-in names (TYPE_NAMES) come first, then `named`
 * (declared `type X = …`); `knownNames` feeds the "did you mean" hint for unknown names (WF0207).
 * @example resolveType(listOfTextAst, () => undefined, out) // { kind: 'list', item: T.text }
 */
export function resolveType(
  t: TypeExpr,
  named: (name: string) => Type | undefined,
  out: Diagnostic[],
  knownNames: readonly string[] = [],
): Type {
  switch (t.kind) {
    case 'named': {
      const n = t.name.text;
      if (n === '') return T.unknown;
      if (Object.hasOwn(TYPE_NAMES, n)) return TYPE_NAMES[n] ?? T.unknown;
      const u = named(n);
      if (u !== undefined) return u;
      out.push(diag('WF0207', t.name.span, `Unknown type "${n}".`,
        didYouMean(n, [...Object.keys(TYPE_NAMES), ...knownNames])
          ?? `Use text, number, boolean, datetime, duration, org or actor, or declare it with type ${n} = ….`));
      return T.unknown;
    }
    case 'enum': {
      const members: string[] = [];
      for (const m of t.members) {
        if (m.text === '') continue;
        if (members.includes(m.text)) {
          out.push(diag('WF0318', m.span, `"${m.text}" is listed twice in this "one of".`, 'Remove the repeated member.'));
        } else members.push(m.text);
      }
      return { kind: 'enum', members };
    }
    case 'listOf':
      return { kind: 'list', item: resolveType(t.item, named, out, knownNames) };
    case 'record':
      return { kind: 'record', fields: fieldTypes(t.fields, named, out, knownNames) };
  }
}

function constNumber(e: Expr): number | undefined {
  if (e.kind === 'number') return Number.isFinite(e.value) ? e.value : undefined;
  if (e.kind === 'unary' && e.op === '-') {
    const n = constNumber(e.operand);
    return n === undefined ? undefined : -n;
  }
  return undefined;
}

function constantOf(e: Expr): Value | undefined {
  switch (e.kind) {
    case 'number':
    case 'unary':
      return constNumber(e);
    case 'string':
    case 'bool':
      return e.value;
    case 'null':
      return null;
    case 'duration': {
      const u = has(DURATION_UNITS, e.unit.text) ? DURATION_UNITS[e.unit.text] : undefined;
      if (u === undefined) return undefined;
      const ms = e.amount * u.ms;
      const workdays = e.amount * u.workdays;
      return Number.isFinite(ms) && Number.isFinite(workdays) ? { ms, workdays } : undefined;
    }
    case 'list': {
      const items: Value[] = [];
      for (const x of e.items) {
        const v = constantOf(x);
        if (v === undefined) return undefined;
        items.push(v);
      }
      return items;
    }
    default:
      return undefined;
  }
}

function constraintsOf(f: FieldDecl, type: Type, out: Diagnostic[]): FieldConstraints {
  const c: { pattern?: string; min?: number | string; max?: number | string; minLength?: number; maxLength?: number } = {};
  const field = f.name.text;
  for (const k of f.constraints) {
    switch (k.kind) {
      case 'matches': {
        if (type.kind !== 'text' && type.kind !== 'unknown') {
          out.push(diag('WF0308', k.span, `"matches" applies to text; "${field}" is ${showType(type)}.`, 'Remove the pattern, or make the field text.'));
          break;
        }
        try {
          new RegExp(k.pattern.value, 'u');
          c.pattern = k.pattern.value;
        } catch (err) {
          const why = err instanceof Error ? err.message : String(err);
          out.push(diag('WF0307', k.pattern.span, `Invalid pattern for "${field}": ${why}.`,
            'Patterns are JavaScript regular expressions (with the u flag): escape special characters, e.g. \\. for a dot, \\( for a bracket.'));
        }
        break;
      }
      case 'range': {
        if (type.kind === 'number') {
          const lo = constNumber(k.min);
          const hi = constNumber(k.max);
          if (lo === undefined) out.push(diag('WF0303', k.min.span, 'A range bound must be a number.', 'Write it as a literal, e.g. range 1..5.'));
          if (hi === undefined) out.push(diag('WF0303', k.max.span, 'A range bound must be a number.', 'Write it as a literal, e.g. range 1..5.'));
          if (lo !== undefined && hi !== undefined) {
            if (lo > hi) out.push(diag('WF0303', k.span, `The range ${lo}..${hi} is empty.`, 'Write the smaller bound first.'));
            else Object.assign(c, { min: lo, max: hi });
          }
        } else if (type.kind === 'datetime') {
          const bound = (e: Expr): string | undefined => {
            const iso = e.kind === 'string' ? normalizeDateTime(e.value) : null;
            if (iso === null) out.push(diag('WF0303', e.span, 'A datetime range bound must be a quoted date or date-time.', 'Write it like "2024-01-01" or "2024-01-01 09:00".'));
            return iso ?? undefined;
          };
          const lo = bound(k.min);
          const hi = bound(k.max);
          if (lo !== undefined && hi !== undefined) {
            if (lo > hi) out.push(diag('WF0303', k.span, `The range ${lo}..${hi} is empty.`, 'Write the earlier bound first.'));
            else Object.assign(c, { min: lo, max: hi });
          }
        } else if (type.kind !== 'unknown') {
          out.push(diag('WF0308', k.span, `"range" applies to number and datetime fields; "${field}" is ${showType(type)}.`,
            type.kind === 'text' || type.kind === 'list' ? 'Use "length a..b" to bound its length.' : 'Remove the range.'));
        }
        break;
      }
      case 'length': {
        if (type.kind !== 'text' && type.kind !== 'list' && type.kind !== 'unknown') {
          out.push(diag('WF0308', k.span, `"length" applies to text and list fields; "${field}" is ${showType(type)}.`,
            type.kind === 'number' || type.kind === 'datetime' ? 'Use "range a..b" to bound its value.' : 'Remove the length constraint.'));
          break;
        }
        const lo = constNumber(k.min);
        const hi = constNumber(k.max);
        const bad = (n: number | undefined): boolean => n === undefined || n < 0 || !Number.isInteger(n);
        if (bad(lo)) out.push(diag('WF0303', k.min.span, 'A length bound must be a whole number, 0 or more.', 'Write it like length 1..200.'));
        if (bad(hi)) out.push(diag('WF0303', k.max.span, 'A length bound must be a whole number, 0 or more.', 'Write it like length 1..200.'));
        if (lo !== undefined && hi !== undefined && !bad(lo) && !bad(hi)) {
          if (lo > hi) out.push(diag('WF0303', k.span, `The length range ${lo}..${hi} is empty.`, 'Write the smaller bound first.'));
          else Object.assign(c, { minLength: lo, maxLength: hi });
        }
        break;
      }
    }
  }
  return c;
}

const LITERAL_KINDS: ReadonlySet<ExprKind> = new Set(['number', 'string', 'bool', 'null', 'duration', 'list', 'unary']);

function defaultOf(f: FieldDecl, field: FieldType, out: Diagnostic[]): Value | undefined {
  const d = f.default;
  if (d === undefined) return undefined;
  const name = f.name.text;
  if (LITERAL_KINDS.has(d.kind)) {
    const before = out.length;
    checkExpr(d, { caseFields: {}, tables: {} }, out);
    if (out.length > before) return undefined;
  }
  const v = constantOf(d);
  if (v === undefined) {
    out.push(diag('WF0315', d.span, `The default of "${name}" must be a constant.`, 'Write a literal such as 0, "待定", 2 workdays or [].'));
    return undefined;
  }
  const r = validateValue(field, v, name);
  const first = r.errors[0];
  if (first !== undefined) {
    out.push(diag('WF0315', d.span, `The default does not fit "${name}": ${first.message}`, `Give a default of type ${showType(field.type)} that meets the field's constraints.`));
    return undefined;
  }
  return r.value;
}

/**
 * Turns field declarations (of `case { … }`, a payload, a record type) into semantic field types,
 * checking constraints (WF0307, WF0308, WF0303), defaults (WF0315) and duplicates (WF0206).
 * @example fieldTypes(caseDecl.fields, (n) => declared.get(n), out) // { 电话: { type: T.text, constraints: { pattern: '^1[0-9]{10}$' }, … } }
 */
export function fieldTypes(
  fields: readonly FieldDecl[],
  named: (name: string) => Type | undefined,
  out: Diagnostic[],
  knownNames: readonly string[] = [],
): Record<string, FieldType> {
  const entries: [string, FieldType][] = [];
  const seen = new Set<string>();
  for (const f of fields) {
    const name = f.name.text;
    if (name === '') continue;
    if (seen.has(name)) {
      out.push(diag('WF0206', f.name.span, `Field "${name}" is declared twice.`, 'Rename or remove one of them.'));
      continue;
    }
    seen.add(name);
    const type = resolveType(f.type, named, out, knownNames);
    const constraints = constraintsOf(f, type, out);
    const base: FieldType = f.label === undefined
      ? { type, optional: f.optional, constraints }
      : { type, optional: f.optional, label: f.label.value, constraints };
    const dflt = defaultOf(f, base, out);
    entries.push([name, dflt === undefined ? base : { ...base, default: dflt }]);
  }
  return Object.fromEntries(entries);
}
