/**
 * Decision tables: `rules 分拨 (类别: …, 严重程度: …) -> (部门: org, 时限: duration) first | … |`.
 *
 * `checkRules` checks every cell against its column, then reasons about which inputs each row
 * matches: overlapping rows under `unique` (WF0501), inputs no row matches when there is no
 * default row (WF0502), and rows that can never match (WF0506). `compileRules` turns a table
 * into a total function of its inputs.
 *
 * ## How the analysis works
 * Each input column's domain is cut into finitely many *atoms* from the constants its cells
 * mention, so that every cell is a union of atoms:
 * - enum: its members; boolean: true and false;
 * - number, duration, datetime: each mentioned point and the open intervals between and beyond
 *   them (durations are never negative, so nothing below 0 is considered; datetimes have
 *   millisecond resolution, so an empty interval between adjacent milliseconds is dropped);
 * - text, org, actor: each mentioned constant, plus one atom for "any other value";
 * - list and record columns take only `*`, so they are one atom.
 *
 * A row is then a *box*: one set of atoms per column. Two rows overlap exactly when their boxes
 * meet in every column, which is checked pair by pair. Gaps and dead rows need unions, so the
 * inputs not matched so far are kept as a list of disjoint boxes and each row is subtracted in
 * turn (a row can never match under `first` when it meets none of them; a gap is whatever is left
 * at the end). This is exact, and usually far cheaper than walking the product of atoms, which
 * can run to billions of combinations for an ordinary table.
 *
 * Subtraction can still fragment badly on adversarial tables (many columns, rows of `!=`), so it
 * runs under a work budget. Past the budget the analysis falls back to what stays cheap and sound:
 * overlaps are still exact; a gap is reported only when one column has an atom no row covers, or a
 * sample of the remaining uncovered boxes (deterministic, so a check gives the same answer every
 * run) finds an input that no later row matches; a row is reported dead only when one earlier row
 * covers it whole. When no gap is found that way the table gets warning WF0508 instead of a proof.
 *
 * Enum members compare by declaration order: in `one of 低, 中, 高`, `低 < 中 < 高`, so `>= 中`
 * means 中 or 高. Declare members from least to greatest to make comparisons read naturally.
 *
 * The analysis treats inputs as present: a null input matches only `*` (and so falls to the default
 * row, or to no row) and is not counted as a gap. An input of the wrong runtime type is treated
 * like null.
 */
import type { Cell, Expr, HitPolicy, Name, RuleRow, RulesDecl, Span, TypeExpr } from './ast.ts';
import { diag, type Diagnostic } from './diagnostics.ts';
import { DURATION_UNITS, showType, type DurationValue, type Type, type Value } from './types.ts';

import type { TableSignature } from './expr-check.ts';

export type { TableSignature };

/** Limits of the analysis, for tests and for callers that can afford more time. */
export interface RulesCheckOptions {
  /**
   * How much box work (boxes visited times columns) the exact gap and dead-row analysis may do
   * before falling back to the cheap checks; the default keeps a check well under a second.
   */
  readonly maxWork?: number;
}

/** A row that decided an evaluation, for the history ("which rule decided it"). */
export interface RuleHit {
  /** Index in `RulesDecl.rows`, counting the default row. */
  readonly index: number;
  /** 1-based source line of the row. */
  readonly line: number;
  readonly isDefault: boolean;
}

/** The result of an evaluation with the rows that produced it. */
export interface RulesOutcome {
  readonly value: Value;
  /** The rows whose outputs make up `value`, in table order; empty when the table gave null. */
  readonly hits: readonly RuleHit[];
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const DEFAULT_MAX_WORK = 4_000_000;
/** Boxes at most in the uncovered set; past this the budget is spent whatever `maxWork` says. */
const MAX_BOXES = 50_000;

/**
 * Checks a decision table and returns its signature. Column types are resolved with
 * `resolveColumnType` (which reports its own errors). Overlap, gap and dead-row analysis runs only
 * on rows whose cells are all valid, and gaps and dead rows only when every row is valid, so one
 * mistake is not reported again as a gap.
 * @example
 * const out: Diagnostic[] = [];
 * const sig = checkRules(decl, (t, o) => resolveType(t, named, o), out);
 * // out: [{ code: 'WF0502', message: 'Rule table 积分 has a gap: no row matches 时长 = 4.5 (between 4 and 5).', … }]
 */
export function checkRules(
  decl: RulesDecl,
  resolveColumnType: (t: TypeExpr, out: Diagnostic[]) => Type,
  out: Diagnostic[],
  options: RulesCheckOptions = {},
): TableSignature {
  const inputs = decl.inputs.map((c) => column(c.name.text, resolveColumnType(c.type, out)));
  const outputs = decl.outputs.map((c) => column(c.name.text, resolveColumnType(c.type, out)));
  const sig: TableSignature = {
    inputs: inputs.map((c) => ({ name: c.name, type: c.type })),
    outputs: outputs.map((c) => ({ name: c.name, type: c.type })),
    hit: decl.hit,
  };
  const before = out.length;

  for (const group of [decl.inputs, decl.outputs]) {
    const seen = new Set<string>();
    for (const c of group) {
      if (seen.has(c.name.text)) {
        out.push(diag('WF0206', c.name.span, `Column ${c.name.text} is declared twice in this table's ${group === decl.inputs ? 'inputs' : 'outputs'}.`, 'Give each column its own name.'));
      }
      seen.add(c.name.text);
    }
  }

  if (decl.rows.length === 0) {
    out.push(diag('WF0507', decl.name.span, `Rule table ${decl.name.text} has no rows.`,
      `Add rows under the header, one cell per column: ${exampleRow(decl)}.`));
  }
  const defaults = decl.rows.filter((r) => r.isDefault);
  for (const [i, r] of defaults.entries()) {
    if (i > 0) out.push(diag('WF0505', r.span, 'A rule table has at most one default row.', 'Remove this default row, or merge it into the first one.'));
    else if (r !== decl.rows[decl.rows.length - 1]) {
      out.push(diag('WF0505', r.span, 'The default row must be the last row.', 'Move it to the end: it applies only when no other row matches.'));
    }
  }

  const rows = prepare(decl, inputs, outputs, out);
  analyse(decl, inputs, rows, out.slice(before).some((d) => d.severity === 'error'), out, options.maxWork ?? DEFAULT_MAX_WORK);
  return sig;
}

/**
 * Compiles a table into a total function of its inputs (in header order). Under `unique` and
 * `first` it returns the output record of the first matching row, else of the default row, else
 * null. Under `collect` it returns the list of output records of every matching row; the default
 * row counts only when no other row matches (so the list is empty only without a default).
 * A null input, or one of the wrong type, matches only `*`. Cells the checker rejects never match.
 * @example
 * const score = compileRules(decl, sig);
 * score([2.5]); // → { 积分: 3 }
 * score([null]); // → null
 */
export function compileRules(decl: RulesDecl, sig: TableSignature): (args: readonly Value[]) => Value {
  const run = compileRulesTraced(decl, sig);
  return (args) => run(args).value;
}

/**
 * Like `compileRules`, but also says which rows decided, so the engine can record it in history.
 * @example
 * const route = compileRulesTraced(decl, sig);
 * route(['平安', '高']); // → { value: { 部门: '派出所', 时限: { ms: 7_200_000, workdays: 0 } }, hits: [{ index: 0, line: 2, isDefault: false }] }
 */
export function compileRulesTraced(decl: RulesDecl, sig: TableSignature): (args: readonly Value[]) => RulesOutcome {
  const inputs = decl.inputs.map((c, i) => column(c.name.text, sig.inputs[i]?.type ?? UNKNOWN));
  const outputs = decl.outputs.map((c, i) => column(c.name.text, sig.outputs[i]?.type ?? UNKNOWN));
  const prepared = prepare(decl, inputs, outputs, []);
  const live = prepared.flatMap((r) => (!r.row.isDefault && r.cells !== undefined ? [{ tests: r.cells.map((c) => c.test), hit: hitOf(r), output: r.output }] : []));
  const fallback = prepared.find((r) => r.row.isDefault && r.cells !== undefined);
  // These outcomes are shared by every call, so they are frozen like the output records.
  const none: RulesOutcome = { value: decl.hit === 'collect' ? Object.freeze([]) : null, hits: [] };
  const viaDefault: RulesOutcome | undefined = fallback === undefined ? undefined
    : { value: decl.hit === 'collect' ? Object.freeze([fallback.output]) : fallback.output, hits: [hitOf(fallback)] };

  return (args) => {
    const keys = inputs.map((c, i) => keyOf(c.type, args[i]));
    const matches = (tests: readonly (Test | null)[]): boolean =>
      tests.every((t, i) => {
        if (t === null) return true;
        const k = keys[i];
        return k !== undefined && t(k);
      });
    if (decl.hit === 'collect') {
      const hit = live.filter((r) => matches(r.tests));
      if (hit.length === 0) return viaDefault ?? none;
      return { value: hit.map((r) => r.output), hits: hit.map((r) => r.hit) };
    }
    const first = live.find((r) => matches(r.tests));
    if (first !== undefined) return { value: first.output, hits: [first.hit] };
    return viaDefault ?? none;
  };
}

// ---------------------------------------------------------------------------------------------
// Columns, keys and constants

const UNKNOWN: Type = { kind: 'unknown' };

/**
 * How a column's cells are analysed: ordered scalars (numbers, durations, datetimes, enums),
 * unordered scalars (text, org, actor, boolean), values only `*` can match, or a type that could
 * not be resolved (already reported, so nothing more is said about it).
 */
type Shape = 'ordered' | 'discrete' | 'opaque' | 'unknown';

interface Column {
  readonly name: string;
  readonly type: Type;
  readonly shape: Shape;
}

function column(name: string, type: Type): Column {
  return { name, type, shape: shapeOf(type) };
}

function shapeOf(t: Type): Shape {
  switch (t.kind) {
    case 'number': case 'duration': case 'datetime': case 'enum': return 'ordered';
    case 'text': case 'org': case 'actor': case 'boolean': return 'discrete';
    case 'list': case 'record': case 'null': return 'opaque';
    case 'unknown': return 'unknown';
  }
}

/** A value reduced to what cells compare: a number on ordered columns, a string or 0/1 on the others. */
type Key = number | string;
type Test = (k: Key) => boolean;

/** The key of a runtime value, or undefined when it is null or not of the column's type (then only `*` matches). */
function keyOf(t: Type, v: Value | undefined): Key | undefined {
  if (v === null || v === undefined) return undefined;
  switch (t.kind) {
    case 'number': return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    case 'duration': return isDuration(v) ? durationKey(v) : undefined;
    case 'datetime': {
      if (typeof v !== 'string') return undefined;
      const ms = Date.parse(v);
      return Number.isFinite(ms) ? ms : undefined;
    }
    case 'enum': {
      if (typeof v !== 'string') return undefined;
      const i = t.members.indexOf(v);
      return i >= 0 ? i : undefined;
    }
    case 'text': case 'org': case 'actor': return typeof v === 'string' ? v : undefined;
    case 'boolean': return typeof v === 'boolean' ? (v ? 1 : 0) : undefined;
    default: return undefined;
  }
}

function isDuration(v: Value): v is DurationValue {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const { ms, workdays } = v as { readonly ms?: unknown; readonly workdays?: unknown };
  return typeof ms === 'number' && Number.isFinite(ms) && typeof workdays === 'number' && Number.isFinite(workdays);
}

/** Durations compare as if a working day were a calendar day: the table cannot know the calendar. */
function durationKey(d: DurationValue): number {
  return d.ms + d.workdays * DAY_MS;
}

/** A cell value as written, before it is fitted to a column type; a leading minus is folded in. */
type Literal =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'duration'; readonly amount: number; readonly unit: Name }
  | { readonly kind: 'null' }
  | { readonly kind: 'list'; readonly items: readonly Expr[] };

/** 'error' marks an expression recovery already reported; undefined, one that is not a constant. */
function literal(e: Expr): Literal | 'error' | undefined {
  switch (e.kind) {
    case 'number': return { kind: 'number', value: e.value };
    case 'string': return { kind: 'string', value: e.value };
    case 'bool': return { kind: 'bool', value: e.value };
    case 'duration': return { kind: 'duration', amount: e.amount, unit: e.unit };
    case 'null': return { kind: 'null' };
    case 'list': return { kind: 'list', items: e.items };
    case 'error': return 'error';
    case 'unary': {
      if (e.op !== '-') return undefined;
      const inner = literal(e.operand);
      if (inner === 'error') return 'error';
      if (inner?.kind === 'number') return { kind: 'number', value: -inner.value };
      if (inner?.kind === 'duration') return { kind: 'duration', amount: -inner.amount, unit: inner.unit };
      return undefined;
    }
    default: return undefined;
  }
}

function describe(l: Literal): string {
  switch (l.kind) {
    case 'number': return `the number ${l.value}`;
    case 'string': return `the text "${l.value}"`;
    case 'bool': return String(l.value);
    case 'duration': return `the duration ${l.amount} ${l.unit.text}`;
    case 'null': return 'null';
    case 'list': return 'a list';
  }
}

type Fit = { readonly ok: true; readonly value: Value } | { readonly ok: false };
const FAIL: Fit = { ok: false };

/** A cell value as a runtime value of the column's type, or FAIL with the reason in `out`. */
function constant(e: Expr, col: Column, role: 'input' | 'output', out: Diagnostic[]): Fit {
  const l = literal(e);
  if (l === 'error') return FAIL;
  if (l === undefined) {
    out.push(diag('WF0504', e.span, 'A cell must hold a constant, such as 3, -1.5, 2 hours, 高 or "文本".',
      role === 'input' ? 'Work the value out before calling the table, and pass it in as an input column.' : 'Compute it where the table is used, from the table\'s outputs.'));
    return FAIL;
  }
  if (l.kind === 'null') {
    if (role === 'output') return { ok: true, value: null };
    out.push(diag('WF0504', e.span, 'A cell cannot test for null.', 'An absent input matches only `*`; use a `default` row for that case.'));
    return FAIL;
  }
  return fit(l, e.span, col.name, col.type, role, out);
}

function fit(l: Exclude<Literal, { kind: 'null' }>, span: Span, name: string, type: Type, role: 'input' | 'output', out: Diagnostic[]): Fit {
  const mismatch = (hint: string): Fit => {
    out.push(diag('WF0504', span, `Column ${name} is ${showType(type)}, but this cell holds ${describe(l)}.`, hint));
    return FAIL;
  };
  const duration = (d: { amount: number; unit: Name }): Fit => {
    const unit = DURATION_UNITS[d.unit.text];
    if (unit === undefined) {
      out.push(diag('WF0309', d.unit.span, `Unknown duration unit "${d.unit.text}".`, `Use one of: ${Object.keys(DURATION_UNITS).join(', ')}.`));
      return FAIL;
    }
    return { ok: true, value: { ms: d.amount * unit.ms, workdays: d.amount * unit.workdays } };
  };
  switch (type.kind) {
    case 'unknown': case 'null':
      // The column's type is already reported (or cannot be known); accept the value as written.
      if (l.kind === 'duration') return duration(l);
      if (l.kind === 'list') return FAIL;
      return { ok: true, value: l.value };
    case 'number':
      return l.kind === 'number' ? { ok: true, value: l.value } : mismatch('Write a number, such as 3 or -1.5.');
    case 'boolean':
      return l.kind === 'bool' ? { ok: true, value: l.value } : mismatch('Write true or false.');
    case 'duration':
      return l.kind === 'duration' ? duration(l) : mismatch('Write a duration, such as 2 hours or 3 workdays.');
    case 'datetime': {
      if (l.kind !== 'string') return mismatch('Write a quoted date, such as "2024-05-01" or "2024-05-01T09:00:00+08:00".');
      const iso = parseDatetime(l.value);
      if (iso !== undefined) return { ok: true, value: iso };
      out.push(diag('WF0504', span, `"${l.value}" is not a date and time.`, 'Write it as "2024-05-01" or "2024-05-01T09:00:00+08:00"; without an offset it is read as UTC.'));
      return FAIL;
    }
    case 'text': case 'org': case 'actor':
      if (l.kind === 'string') return { ok: true, value: l.value };
      return mismatch(l.kind === 'number' ? `Quote it: "${l.value}".` : type.kind === 'org' ? 'Write the org unit\'s id.' : type.kind === 'actor' ? 'Write the actor\'s id.' : 'Write a word or a quoted text.');
    case 'enum':
      if (l.kind !== 'string') return mismatch(`Use one of: ${type.members.join(', ')}.`);
      if (type.members.includes(l.value)) return { ok: true, value: l.value };
      out.push(diag('WF0217', span, `"${l.value}" is not a member of ${name}.`, `Use one of: ${type.members.join(', ')}.`));
      return FAIL;
    case 'list': {
      if (l.kind !== 'list' || role === 'input') return mismatch('Write a list of constants, such as [甲, 乙].');
      const items: Value[] = [];
      let ok = true;
      for (const item of l.items) {
        const il = literal(item);
        if (il === 'error') { ok = false; continue; }
        if (il === undefined) {
          out.push(diag('WF0504', item.span, 'A cell must hold a constant, such as 3, -1.5, 2 hours, 高 or "文本".'));
          ok = false;
          continue;
        }
        if (il.kind === 'null') { items.push(null); continue; }
        const f = fit(il, item.span, `${name}'s item`, type.item, role, out);
        if (f.ok) items.push(f.value);
        else ok = false;
      }
      return ok ? { ok: true, value: items } : FAIL;
    }
    case 'record':
      return mismatch('A record has no constant form in a cell; output its fields as separate columns.');
  }
}

const DATETIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/** A datetime constant as the ISO string `toISOString` writes; no offset means UTC, as stored values are. */
function parseDatetime(s: string): string | undefined {
  const m = DATETIME.exec(s.trim());
  if (m === null) return undefined;
  const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '0', zone = 'Z'] = m;
  const text = `${y}-${mo}-${d}T${h}:${mi}:${sec}.${frac.padEnd(3, '0')}${zone}`;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  // Date.parse rolls 2024-02-31 over into March; a date that does not exist is a typo.
  return zone === 'Z' && iso.slice(0, 10) !== `${y}-${mo}-${d}` ? undefined : iso;
}

// ---------------------------------------------------------------------------------------------
// Cells and rows

interface InputCell {
  /** null for `*`, which also matches null. */
  readonly test: Test | null;
  /** The constants the cell mentions, from which the column's atoms are cut. */
  readonly consts: readonly { readonly key: Key; readonly value: Value }[];
  readonly span: Span;
}

function inputCell(cell: Cell, col: Column, out: Diagnostic[]): InputCell | undefined {
  if (cell.kind === 'any') return { test: null, consts: [], span: cell.span };
  if (col.shape === 'opaque') {
    out.push(diag('WF0504', cell.span, `Column ${col.name} is ${showType(col.type)}, so its cells can only be \`*\`.`, 'Test the value before calling the table, and pass the result in as a simpler column.'));
    return undefined;
  }
  const unordered = (what: string): undefined => {
    out.push(diag('WF0504', cell.span, `Column ${col.name} is ${showType(col.type)}; its values have no order, so ${what} does not apply.`, 'Use a value, `!= value`, or a list such as `甲, 乙`.'));
    return undefined;
  };
  const key = (e: Expr): { key: Key; value: Value } | undefined => {
    const c = constant(e, col, 'input', out);
    if (!c.ok) return undefined;
    const k = keyOf(col.type, c.value);
    // An unknown column has no keys: its type is already reported, so the cell is dropped silently.
    return k === undefined ? undefined : { key: k, value: c.value };
  };
  switch (cell.kind) {
    case 'compare': {
      if (col.shape === 'discrete' && cell.op !== '==' && cell.op !== '!=') return unordered(`\`${cell.op}\``);
      const c = key(cell.value);
      if (c === undefined) return undefined;
      const p = c.key;
      const consts = [c];
      const span = cell.span;
      switch (cell.op) {
        case '==': return { test: (k) => k === p, consts, span };
        case '!=': return { test: (k) => k !== p, consts, span };
        default: {
          if (typeof p !== 'number') return undefined;
          const op = cell.op;
          const test: Test = (k) => typeof k === 'number' && (op === '<' ? k < p : op === '<=' ? k <= p : op === '>' ? k > p : k >= p);
          return { test, consts, span };
        }
      }
    }
    case 'range': {
      if (col.shape === 'discrete') return unordered('a range');
      const lo = key(cell.min);
      const hi = key(cell.max);
      if (lo === undefined || hi === undefined) return undefined;
      const a = lo.key;
      const b = hi.key;
      if (typeof a !== 'number' || typeof b !== 'number') return undefined;
      return { test: (k) => typeof k === 'number' && k >= a && k <= b, consts: [lo, hi], span: cell.span };
    }
    case 'oneOf': {
      const consts = cell.values.map(key);
      if (consts.length === 0 || consts.some((c) => c === undefined)) return undefined;
      const ok = consts.filter((c) => c !== undefined);
      const set = new Set(ok.map((c) => c.key));
      return { test: (k) => set.has(k), consts: ok, span: cell.span };
    }
  }
}

function outputCell(cell: Cell, col: Column, out: Diagnostic[]): Fit {
  const [only] = cell.kind === 'oneOf' ? cell.values : [];
  if (cell.kind === 'oneOf' && cell.values.length === 1 && only !== undefined) return constant(only, col, 'output', out);
  if (cell.kind === 'compare' && cell.op === '==') return constant(cell.value, col, 'output', out);
  const what = cell.kind === 'any' ? '`*`' : cell.kind === 'compare' ? 'a comparison' : cell.kind === 'range' ? 'a range' : `a list of ${cell.values.length} values`;
  out.push(diag('WF0504', cell.span, `An output cell holds one value; this one holds ${what}.`, `Write the value of ${col.name} for this row.`));
  return FAIL;
}

interface PreparedRow {
  readonly row: RuleRow;
  readonly index: number;
  /** The input cells; undefined when the row is unusable (wrong cell count or an invalid input cell). */
  readonly cells: readonly InputCell[] | undefined;
  /** The output record; an output cell that is not valid gives null. */
  readonly output: Value;
  /** Every cell of the row is valid. */
  readonly valid: boolean;
}

function hitOf(r: PreparedRow): RuleHit {
  return { index: r.index, line: r.row.span.start.line, isDefault: r.row.isDefault };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function prepare(decl: RulesDecl, inputs: readonly Column[], outputs: readonly Column[], out: Diagnostic[]): PreparedRow[] {
  return decl.rows.map((row, index): PreparedRow => {
    const nIn = row.isDefault ? 0 : inputs.length;
    if (row.cells.length !== nIn + outputs.length) {
      const message = row.isDefault
        ? `The default row has ${plural(row.cells.length, 'cell')}; the header has ${plural(outputs.length, 'output')}.`
        : `Row has ${plural(row.cells.length, 'cell')}; the header has ${plural(inputs.length, 'input')} and ${plural(outputs.length, 'output')}.`;
      const hint = row.isDefault
        ? 'A default row holds only the output cells.'
        : `Write ${plural(nIn + outputs.length, 'cell')}, the inputs then the outputs.`;
      out.push(diag('WF0503', row.span, message, hint));
      return { row, index, cells: undefined, output: null, valid: false };
    }
    let valid = true;
    const cells: InputCell[] = [];
    for (const [i, col] of inputs.entries()) {
      const cell = row.cells[i];
      const c = row.isDefault || cell === undefined ? undefined : inputCell(cell, col, out);
      if (c === undefined) valid = false;
      else cells.push(c);
    }
    const record: Record<string, Value> = {};
    for (const [i, col] of outputs.entries()) {
      const cell = row.cells[nIn + i];
      const f = cell === undefined ? FAIL : outputCell(cell, col, out);
      if (!f.ok) valid = false;
      record[col.name] = f.ok ? f.value : null;
    }
    return { row, index, cells: valid || cells.length === nIn ? cells : undefined, output: Object.freeze(record), valid };
  });
}

// ---------------------------------------------------------------------------------------------
// Atoms and boxes

interface Atom {
  /** A key inside the atom: every cell's test gives the same answer on all of the atom's keys. */
  readonly rep: Key;
  /** How an example input from this atom reads in a message: `= 平安`, `= 5 (above 4)`, `is none of 甲, 乙`. */
  readonly phrase: string;
}

function atomsOf(col: Column, consts: readonly { readonly key: Key; readonly value: Value }[]): Atom[] {
  const t = col.type;
  switch (t.kind) {
    case 'enum': return t.members.map((m, i) => ({ rep: i, phrase: `= ${m}` }));
    case 'boolean': return [{ rep: 0, phrase: '= false' }, { rep: 1, phrase: '= true' }];
    case 'text': case 'org': case 'actor': {
      const seen = new Map<Key, string>();
      for (const c of consts) if (!seen.has(c.key)) seen.set(c.key, String(c.key));
      let other = '\u0000other';
      while (seen.has(other)) other += '\u0000';
      const named = [...seen.values()];
      return [...named.map((s) => ({ rep: s, phrase: `= ${s}` })), { rep: other, phrase: named.length === 0 ? 'any' : `is none of ${named.join(', ')}` }];
    }
    case 'number': case 'duration': case 'datetime': {
      const points = new Map<number, string>();
      if (t.kind === 'duration') points.set(0, '0 hours');
      for (const c of consts) if (typeof c.key === 'number' && !points.has(c.key)) points.set(c.key, showValue(t, c.value));
      const sorted = [...points.keys()].sort((a, b) => a - b);
      const show = (k: number): string => points.get(k) ?? showKey(t, k);
      const steps = t.kind === 'number' ? [1] : [DAY_MS, HOUR_MS, MINUTE_MS, 1000, 1];
      const atoms: Atom[] = [];
      const interval = (lo: number, hi: number): void => {
        const rep = pick(lo, hi, steps, t.kind !== 'datetime');
        if (rep === undefined) return;
        const where = lo === -Infinity ? (hi === Infinity ? 'any value' : `below ${show(hi)}`) : hi === Infinity ? `above ${show(lo)}` : `between ${show(lo)} and ${show(hi)}`;
        atoms.push({ rep, phrase: `= ${showKey(t, rep)} (${where})` });
      };
      let lo = -Infinity;
      for (const p of sorted) {
        // Durations are never negative, so the interval below 0 is not part of the domain.
        if (!(t.kind === 'duration' && lo === -Infinity)) interval(lo, p);
        atoms.push({ rep: p, phrase: `= ${show(p)}` });
        lo = p;
      }
      interval(lo, Infinity);
      return atoms;
    }
    default: return [{ rep: '', phrase: 'any' }];
  }
}

/** A key strictly inside (lo, hi), as round as the steps allow; undefined when there is none. */
function pick(lo: number, hi: number, steps: readonly number[], continuous: boolean): number | undefined {
  for (const s of steps) {
    const c = lo === -Infinity ? (hi === Infinity ? 0 : (Math.ceil(hi / s) - 1) * s) : (Math.floor(lo / s) + 1) * s;
    if (c > lo && c < hi) return c;
  }
  if (!continuous || lo === -Infinity || hi === Infinity) return undefined;
  const m = lo + (hi - lo) / 2;
  return m > lo && m < hi ? m : undefined;
}

function showKey(t: Type, k: number): string {
  if (t.kind === 'duration') return showDuration({ ms: k, workdays: 0 });
  if (t.kind === 'datetime') return new Date(k).toISOString();
  return String(k);
}

function showValue(t: Type, v: Value): string {
  if (t.kind === 'duration' && v !== null && isDuration(v)) return showDuration(v);
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

function showDuration(d: DurationValue): string {
  const parts: string[] = [];
  if (d.workdays !== 0) parts.push(`${d.workdays} ${Math.abs(d.workdays) === 1 ? 'workday' : 'workdays'}`);
  if (d.ms !== 0 || parts.length === 0) {
    const [n, unit] = d.ms % DAY_MS === 0 && d.ms !== 0 ? [d.ms / DAY_MS, 'day'] : d.ms % HOUR_MS === 0 ? [d.ms / HOUR_MS, 'hour'] : [+(d.ms / MINUTE_MS).toFixed(3), 'minute'];
    parts.push(`${n} ${unit}${Math.abs(n) === 1 ? '' : 's'}`);
  }
  return parts.join(' + ');
}

/** A set of atoms of one column, as a bitset. */
type Bits = Uint32Array;
/** A set of inputs: one set of atoms per column; it holds their product. */
type Box = readonly Bits[];

function bitsOf(n: number, has: (i: number) => boolean): Bits {
  const b = new Uint32Array((n + 31) >>> 5);
  for (let i = 0; i < n; i++) if (has(i)) b[i >>> 5] = (b[i >>> 5] ?? 0) | (1 << (i & 31));
  return b;
}

function meets(a: Bits, b: Bits): boolean {
  for (let i = 0; i < a.length; i++) if (((a[i] ?? 0) & (b[i] ?? 0)) !== 0) return true;
  return false;
}

function isEmpty(a: Bits): boolean {
  return a.every((w) => w === 0);
}

function within(a: Bits, b: Bits): boolean {
  for (let i = 0; i < a.length; i++) if (((a[i] ?? 0) & ~(b[i] ?? 0)) !== 0) return false;
  return true;
}

function and(a: Bits, b: Bits): Bits {
  return a.map((w, i) => w & (b[i] ?? 0));
}

function andNot(a: Bits, b: Bits): Bits {
  return a.map((w, i) => w & ~(b[i] ?? 0));
}

function members(a: Bits): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length * 32; i++) if ((((a[i >>> 5] ?? 0) >>> (i & 31)) & 1) !== 0) out.push(i);
  return out;
}

function boxesMeet(a: Box, b: Box): boolean {
  return a.every((bits, c) => meets(bits, b[c] ?? bits));
}

function boxWithin(a: Box, b: Box): boolean {
  return a.every((bits, c) => within(bits, b[c] ?? bits));
}

/** `box` minus `row` as disjoint boxes: peel off, column by column, the part outside the row. */
function subtract(box: Box, row: Box): Box[] {
  if (!boxesMeet(box, row)) return [box];
  const result: Box[] = [];
  const rest = [...box];
  for (let c = 0; c < rest.length; c++) {
    const bits = rest[c];
    const r = row[c];
    if (bits === undefined || r === undefined) continue;
    const outside = andNot(bits, r);
    if (!isEmpty(outside)) {
      const piece = [...rest];
      piece[c] = outside;
      result.push(piece);
    }
    rest[c] = and(bits, r);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The analysis

interface AtomColumn {
  readonly col: Column;
  readonly atoms: readonly Atom[];
}

interface BoxRow {
  readonly prepared: PreparedRow;
  readonly box: Box;
}

function analyse(decl: RulesDecl, inputs: readonly Column[], rows: readonly PreparedRow[], hadErrors: boolean, out: Diagnostic[], maxWork: number): void {
  if (inputs.some((c) => c.shape === 'unknown')) return;
  const usable = rows.filter((r): r is PreparedRow & { cells: readonly InputCell[] } => !r.row.isDefault && r.cells !== undefined);
  const columns: AtomColumn[] = inputs.map((col, c) => ({
    col,
    atoms: atomsOf(col, usable.flatMap((r) => r.cells[c]?.consts ?? [])),
  }));
  const full: Box = columns.map((a) => bitsOf(a.atoms.length, () => true));

  const boxed: BoxRow[] = [];
  for (const r of usable) {
    const box = columns.map((a, c) => {
      const test = r.cells[c]?.test ?? null;
      return bitsOf(a.atoms.length, (i) => test === null || test(a.atoms[i]?.rep ?? ''));
    });
    const empty = box.findIndex(isEmpty);
    const cell = r.cells[empty];
    const col = columns[empty]?.col;
    if (cell !== undefined && col !== undefined) {
      out.push(diag('WF0506', cell.span, `This row can never match: no value of ${col.name} satisfies this cell.`, emptyHint(col)));
      continue;
    }
    boxed.push({ prepared: r, box });
  }

  const line = (b: BoxRow): number => b.prepared.row.span.start.line;
  if (decl.hit === 'unique') {
    for (const [j, b] of boxed.entries()) {
      const a = boxed.slice(0, j).find((e) => boxesMeet(e.box, b.box));
      if (a === undefined) continue;
      const both = a.box.map((bits, c) => and(bits, b.box[c] ?? bits));
      out.push(diag('WF0501', b.prepared.row.span, `Rows at lines ${line(a)} and ${line(b)} overlap: both match ${example(columns, both, full)}.`,
        'In a `unique` table at most one row may match any input. Narrow one of the rows, or make the table `first` so the earlier row wins.'));
    }
  }

  // Gaps and dead rows are about all rows together: with an invalid row they would be guesses.
  if (hadErrors) return;
  const fallback = rows.find((r) => r.row.isDefault);
  const wantGaps = decl.hit !== 'collect' && fallback === undefined;
  if (!wantGaps && fallback === undefined && decl.hit !== 'first') return;

  const dead = (b: BoxRow, covering: readonly BoxRow[]): void => {
    out.push(diag('WF0506', b.prepared.row.span, `This row can never match: the rows above (${covering.length === 1 ? 'line' : 'lines'} ${covering.map(line).join(', ')}) match every input it matches.`,
      'Under `first` the earliest matching row wins. Remove this row, or move it above the rows that cover it.'));
  };

  let uncovered: Box[] = [full];
  let work = 0;
  let stoppedAt = -1;
  for (const [i, b] of boxed.entries()) {
    if (decl.hit === 'first' && !uncovered.some((u) => boxesMeet(u, b.box))) {
      dead(b, boxed.slice(0, i).filter((e) => boxesMeet(e.box, b.box)));
      continue;
    }
    const next: Box[] = [];
    for (const u of uncovered) {
      work += columns.length + 1;
      for (const piece of subtract(u, b.box)) next.push(piece);
      if (work > maxWork || next.length > MAX_BOXES) break;
    }
    if (work > maxWork || next.length > MAX_BOXES) {
      stoppedAt = i;
      break;
    }
    uncovered = next;
  }

  const unusedDefault = (r: PreparedRow): void => {
    out.push(diag('WF0506', r.row.span, 'The default row is never used: the rows above match every input.',
      'Remove the default row; it would only matter if the columns\' types changed.'));
  };
  const gap = (box: Box): void => {
    out.push(diag('WF0502', decl.name.span, `Rule table ${decl.name.text} has a gap: no row matches ${example(columns, box, full)}.`,
      'Add a row that covers it, or end the table with a `default` row.'));
  };

  if (stoppedAt < 0) {
    if (wantGaps && uncovered[0] !== undefined) gap(uncovered[0]);
    if (fallback !== undefined && uncovered.length === 0) unusedDefault(fallback);
    return;
  }

  // Past the budget: only what stays cheap, and only what is certain.
  const rest = boxed.slice(stoppedAt);
  if (decl.hit === 'first') {
    for (const [k, b] of rest.entries()) {
      if (k === 0) continue;
      const cover = boxed.slice(0, stoppedAt + k).find((e) => boxWithin(b.box, e.box));
      if (cover !== undefined) dead(b, [cover]);
    }
  }
  const byColumn = columnGap(columns, boxed, full);
  // With one column the per-column check is exact, and a row of all `*` covers everything.
  const complete = byColumn === undefined && (columns.length <= 1 || boxed.some((b) => boxWithin(full, b.box)));
  if (complete && fallback !== undefined) unusedDefault(fallback);
  if (!wantGaps || complete) return;
  const found = byColumn ?? sampledGap(uncovered, rest, columns.length, maxWork);
  if (found !== undefined) {
    gap(found);
    return;
  }
  out.push(diag('WF0508', decl.name.span, `Rule table ${decl.name.text} has too many combinations to prove it has no gaps; none was found, but none is ruled out.`,
    'End the table with a `default` row, or split it into smaller tables.'));
}

function emptyHint(col: Column): string {
  switch (col.type.kind) {
    case 'enum': return `Enum members compare by the order they are declared in: ${col.type.members.join(' < ')}.`;
    case 'duration': return 'Durations are never negative; a range `a..b` needs a <= b.';
    default: return 'A range `a..b` needs a <= b.';
  }
}

/** An atom of one column that no row covers, whatever the other columns hold. */
function columnGap(columns: readonly AtomColumn[], boxed: readonly BoxRow[], full: Box): Box | undefined {
  for (const [c, a] of columns.entries()) {
    const covered = boxed.reduce((acc, b) => acc.map((w, i) => w | (b.box[c]?.[i] ?? 0)), bitsOf(a.atoms.length, () => false));
    const missing = members(andNot(full[c] ?? covered, covered))[0];
    if (missing !== undefined) return full.map((bits, k) => (k === c ? bitsOf(a.atoms.length, (i) => i === missing) : bits));
  }
  return undefined;
}

/**
 * Single inputs drawn from boxes no row before `rest` matches, checked against `rest`.
 * The generator is seeded, so the same table always gets the same answer.
 */
function sampledGap(uncovered: readonly Box[], rest: readonly BoxRow[], width: number, maxWork: number): Box | undefined {
  let seed = 0x9e3779b9;
  const random = (n: number): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  // A few dozen samples are always worth taking; more only as the budget allows.
  const samples = Math.max(64, Math.min(4096, Math.floor(maxWork / Math.max(1, rest.length * width))));
  for (let s = 0; s < samples && uncovered.length > 0; s++) {
    const box = uncovered[random(uncovered.length)];
    if (box === undefined) continue;
    const point: Box = box.map((bits) => {
      const ms = members(bits);
      const pickIt = ms[random(ms.length)] ?? 0;
      return bitsOf(bits.length * 32, (i) => i === pickIt);
    });
    if (!rest.some((b) => boxesMeet(point, b.box))) return point;
  }
  return undefined;
}

/** An example input of `box`, naming only the columns it constrains. */
function example(columns: readonly AtomColumn[], box: Box, full: Box): string {
  const parts: string[] = [];
  for (const [c, a] of columns.entries()) {
    const bits = box[c];
    const all = full[c];
    if (bits === undefined || all === undefined || within(all, bits)) continue;
    const atom = a.atoms[members(bits)[0] ?? 0];
    if (atom !== undefined) parts.push(`${a.col.name} ${atom.phrase}`);
  }
  return parts.length === 0 ? 'any input' : parts.join(', ');
}

function exampleRow(decl: RulesDecl): string {
  const cells = [...decl.inputs, ...decl.outputs].map((c) => c.name.text);
  return cells.length === 0 ? '`| … |`' : `\`| ${cells.join(' | ')} |\``;
}
