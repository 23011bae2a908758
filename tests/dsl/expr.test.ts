import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BinaryOp, Expr, FieldDecl, Name, Span, TypeExpr, UnaryOp } from '../../dsl/ast.ts';
import type { Diagnostic } from '../../dsl/diagnostics.ts';
import { DURATION_UNITS, T, type FieldType, type Type, type Value } from '../../dsl/types.ts';
import { checkExpr, checkExprAgainst, fieldTypes, resolveType, type ExprScope } from '../../dsl/expr-check.ts';
import { compileExpr, simpleOracle, type EvalEnv, type Oracle } from '../../dsl/expr-eval.ts';
import { FUNCTIONS, showSignatures } from '../../dsl/functions.ts';
import { closest, editDistance } from '../../dsl/suggest.ts';

// ---------------------------------------------------------------------------------------------
// A tiny builder standing in for the parser. Every node gets its own span (offset = creation
// order), so a test can say which node a diagnostic points at.

let next = 0;
const sp = (): Span => {
  const o = next++;
  return { start: { line: 1, col: o + 1, offset: o }, end: { line: 1, col: o + 2, offset: o + 1 } };
};
type Lit = Expr | number | string | boolean | null;
const nm = (text: string): Name => ({ kind: 'name', text, span: sp() });
const lift = (x: Lit): Expr =>
  x === null ? { kind: 'null', span: sp() }
    : typeof x === 'number' ? { kind: 'number', value: x, span: sp() }
      : typeof x === 'string' ? { kind: 'string', value: x, bare: false, span: sp() }
        : typeof x === 'boolean' ? { kind: 'bool', value: x, span: sp() }
          : x;
const dur = (amount: number, unit: string): Expr => ({ kind: 'duration', amount, unit: nm(unit), span: sp() });
const ref = (name: string): Expr => ({ kind: 'ref', name: nm(name), span: sp() });
const mem = (object: Lit, property: string): Expr => ({ kind: 'member', object: lift(object), property: nm(property), span: sp() });
const c = (field: string): Expr => mem(ref('case'), field);
const idx = (object: Lit, index: Lit): Expr => ({ kind: 'index', object: lift(object), index: lift(index), span: sp() });
const call = (callee: string, ...args: Lit[]): Expr => ({ kind: 'call', callee: nm(callee), args: args.map(lift), span: sp() });
const un = (op: UnaryOp, operand: Lit): Expr => ({ kind: 'unary', op, operand: lift(operand), span: sp() });
const bin = (op: BinaryOp, left: Lit, right: Lit): Expr => ({ kind: 'binary', op, left: lift(left), right: lift(right), span: sp() });
const iff = (test: Lit, then: Lit, otherwise: Lit): Expr => ({ kind: 'if', test: lift(test), then: lift(then), else: lift(otherwise), span: sp() });
const list = (...items: Lit[]): Expr => ({ kind: 'list', items: items.map(lift), span: sp() });
const err = (): Expr => ({ kind: 'error', span: sp() });

const field = (type: Type, optional = false): FieldType => ({ type, optional, constraints: {} });
const 类别: Type = { kind: 'enum', members: ['维修', '养老', '环境', '平安', '其他'] };
const 严重程度: Type = { kind: 'enum', members: ['高', '中', '低'] };

const scope: ExprScope = {
  caseFields: {
    单位: field(T.org, true),
    社区: field(T.org),
    类别: field(类别),
    电话: field(T.text),
    金额: field(T.number),
    截止: field(T.datetime),
    时限: field(T.duration),
    标签: field({ kind: 'list', item: T.text }),
    类别们: field({ kind: 'list', item: 类别 }),
    评价: field({ kind: 'record', fields: { 满意度: field(T.number), 意见: field(T.text, true) } }),
    处理人: field(T.actor, true),
    已办结: field(T.boolean),
  },
  payload: { 原因: field(T.text), 分数: field(T.number), 单位: field(T.org, true) },
  locals: { 部门: T.org },
  tables: {
    分拨: {
      inputs: [{ name: '类别', type: 类别 }, { name: '严重程度', type: 严重程度 }],
      outputs: [{ name: '部门', type: T.org }, { name: '时限', type: T.duration }],
      hit: 'first',
    },
    会签: { inputs: [], outputs: [{ name: '部门', type: T.org }], hit: 'collect' },
  },
};

// 2024-05-01 is a Wednesday; 截止 is Friday 2024-05-03 15:00 in UTC+8.
const NOW = '2024-05-01T02:00:00.000Z';
const DUE = '2024-05-03T07:00:00.000Z';
const oracle = simpleOracle({ 网格1: '社区1', 社区1: '街道1', 街道1: null }, { 网格1: '网格', 社区1: '社区' });
const env: EvalEnv = {
  case: {
    单位: '网格1', 社区: '社区1', 类别: '维修', 电话: '13800000000', 金额: 10, 截止: DUE,
    时限: { ms: 0, workdays: 2 }, 标签: ['急', '老人'], 类别们: ['维修', '养老'],
    评价: { 满意度: 4, 意见: null }, 处理人: 'u1', 已办结: false,
  },
  payload: { 原因: '太远', 分数: 3, 单位: '网格1' },
  locals: { 部门: '派出所' },
  actor: 'u1',
  submitter: 'u2',
  unit: '社区1',
  now: NOW,
  oracle,
  tables: {
    分拨: (args) => (args[0] === '平安' ? { 部门: '派出所', 时限: { ms: 7_200_000, workdays: 0 } } : null),
    会签: () => [{ 部门: '城管' }, { 部门: '环保' }],
  },
};

const H = 3_600_000;
const d = (ms: number, workdays = 0): Value => ({ ms, workdays });

function run(e: Expr, s: ExprScope = scope, en: EvalEnv = env): { value: Value; diags: Diagnostic[] } {
  const diags: Diagnostic[] = [];
  checkExpr(e, s, diags);
  return { value: compileExpr(e, s)(en), diags };
}

// ---------------------------------------------------------------------------------------------

const evalRows: [string, Expr, Value][] = [
  // literals and names
  ['number', lift(1.5), 1.5],
  ['text', lift('a'), 'a'],
  ['boolean', lift(true), true],
  ['null', lift(null), null],
  ['duration in workdays', dur(2, 'workdays'), d(0, 2)],
  ['duration in 分钟', dur(30, '分钟'), d(30 * 60_000)],
  ['payload field', ref('原因'), '太远'],
  ['local hides nothing else', ref('部门'), '派出所'],
  ['actor', ref('actor'), 'u1'],
  ['submitter', ref('submitter'), 'u2'],
  ['unit', ref('unit'), '社区1'],
  ['now', ref('now'), NOW],
  ['case field', c('金额'), 10],
  ['record field', mem(c('评价'), '满意度'), 4],
  ['null record field', mem(c('评价'), '意见'), null],
  ['org parent', mem(c('单位'), 'parent'), '社区1'],
  ['org parent (上级)', mem(c('单位'), '上级'), '社区1'],
  ['grandparent', mem(mem(c('单位'), 'parent'), 'parent'), '街道1'],
  ['parent of root is null', mem(mem(mem(c('单位'), 'parent'), 'parent'), 'parent'), null],
  ['member of null is null', mem(mem(mem(mem(c('单位'), 'parent'), 'parent'), 'parent'), 'parent'), null],
  ['org level', mem(c('单位'), 'level'), '网格'],
  ['unknown level', mem(ref('部门'), 'level'), null],
  ['list index', idx(c('标签'), 1), '老人'],
  ['index past the end', idx(c('标签'), 5), null],
  ['negative index', idx(c('标签'), -1), null],
  ['fractional index', idx(c('标签'), 0.5), null],
  ['text index counts characters', idx('单位', 1), '位'],
  // arithmetic
  ['+', bin('+', 1, 2), 3],
  ['-', bin('-', 5, 7), -2],
  ['*', bin('*', 3, 4), 12],
  ['/', bin('/', 7, 2), 3.5],
  ['%', bin('%', 7, 3), 1],
  ['unary -', un('-', 3), -3],
  ['overflow is null', bin('*', 1e308, 10), null],
  ['arithmetic with null is null', bin('+', null, 1), null],
  ['text + text', bin('+', '共', '3件'), '共3件'],
  ['duration + duration', bin('+', dur(2, 'hours'), dur(30, 'minutes')), d(2.5 * H)],
  ['duration - duration', bin('-', dur(2, 'hours'), dur(30, 'minutes')), d(1.5 * H)],
  ['-duration', un('-', dur(2, 'hours')), d(-2 * H)],
  ['number * duration', bin('*', 2, dur(3, 'hours')), d(6 * H)],
  ['duration * number', bin('*', dur(1, 'workdays'), 3), d(0, 3)],
  ['datetime + hours', bin('+', c('截止'), dur(2, 'hours')), '2024-05-03T09:00:00.000Z'],
  ['duration + datetime', bin('+', dur(2, 'hours'), c('截止')), '2024-05-03T09:00:00.000Z'],
  ['Friday + 1 workday is Monday', bin('+', c('截止'), dur(1, 'workdays')), '2024-05-06T07:00:00.000Z'],
  ['datetime + duration field', bin('+', c('截止'), c('时限')), '2024-05-07T07:00:00.000Z'],
  ['datetime - workday', bin('-', c('截止'), dur(1, '工作日')), '2024-05-02T07:00:00.000Z'],
  ['datetime - datetime', bin('-', c('截止'), ref('now')), d(53 * H)],
  // comparisons
  ['<', bin('<', 1, 2), true],
  ['<=', bin('<=', 2, 2), true],
  ['>', bin('>', 3, 2), true],
  ['>=', bin('>=', 2, 3), false],
  ['text order', bin('<', 'a', 'b'), true],
  ['datetime order', bin('>', c('截止'), ref('now')), true],
  ['datetime vs literal', bin('<', c('截止'), '2024-06-01'), true],
  ['datetime equality reads local time', bin('==', c('截止'), '2024-05-03 15:00'), true],
  ['duration order (workday as 24h)', bin('<', dur(1, 'days'), dur(2, 'workdays')), true],
  ['duration equality', bin('==', dur(2, 'hours'), dur(120, 'minutes')), true],
  ['enum == member', bin('==', c('类别'), '维修'), true],
  ['enum != member', bin('!=', c('类别'), '养老'), true],
  ['list equality', bin('==', c('标签'), list('急', '老人')), true],
  ['record equality', bin('==', c('评价'), c('评价')), true],
  ['org == text', bin('==', c('单位'), '网格1'), true],
  ['actor == actor', bin('==', ref('actor'), c('处理人')), true],
  ['null == null', bin('==', null, mem(c('评价'), '意见')), true],
  ['null != 1', bin('!=', null, 1), true],
  ['null < 1 is false', bin('<', mem(c('评价'), '意见'), 'x'), false],
  ['null >= 1 is false', bin('>=', null, 1), false],
  ['null <= 1 is false', bin('<=', null, 1), false],
  ['null > 1 is false', bin('>', null, 1), false],
  // in
  ['in list', bin('in', '急', c('标签')), true],
  ['not in list', bin('in', 'x', c('标签')), false],
  ['enum in literal list', bin('in', c('类别'), list('维修', '养老')), true],
  ['text in text', bin('in', '物业', '物业公司'), true],
  ['in null is false', bin('in', 'x', mem(c('评价'), '意见')), false],
  ['datetime in list', bin('in', c('截止'), list(ref('now'), c('截止'))), true],
  // logic and choice
  ['and', bin('and', true, false), false],
  ['or', bin('or', false, true), true],
  ['not', un('not', true), false],
  ['and with null is false', bin('and', true, null), false],
  ['not null is true', un('not', null), true],
  ['?? on null', bin('??', mem(c('评价'), '意见'), '无'), '无'],
  ['?? on a value', bin('??', ref('原因'), '无'), '太远'],
  ['if then', iff(bin('>', c('金额'), 5), '大', '小'), '大'],
  ['if else', iff(bin('<', c('金额'), 5), '大', '小'), '小'],
  ['if on null takes else', iff(null, 1, 2), 2],
  ['list literal', list(1, bin('+', 1, 1)), [1, 2]],
  // rule tables
  ['table call', call('分拨', '平安', '高'), { 部门: '派出所', 时限: d(2 * H) }],
  ['table output', mem(call('分拨', '平安', '高'), '部门'), '派出所'],
  ['no row matches', call('分拨', '维修', '低'), null],
  ['output of no match is null', mem(call('分拨', '维修', '低'), '时限'), null],
  ['collect table', call('会签'), [{ 部门: '城管' }, { 部门: '环保' }]],
  ['table item', mem(idx(call('会签'), 1), '部门'), '环保'],
];

describe('evaluation of well-typed expressions', () => {
  it.each(evalRows)('%s', (_, e, expected) => {
    const { value, diags } = run(e);
    expect(diags.filter((x) => x.severity === 'error')).toEqual([]);
    expect(value).toEqual(expected);
  });

  it('gives null for division and remainder by zero, with a warning (WF0314)', () => {
    for (const e of [bin('/', 1, 0), bin('%', 1, un('-', 0))]) {
      const { value, diags } = run(e);
      expect(value).toBeNull();
      expect(diags.map((x) => [x.code, x.severity])).toEqual([['WF0314', 'warning']]);
    }
    expect(run(bin('/', 1, c('金额'))).value).toBe(0.1);
    expect(run(bin('/', c('金额'), bin('-', 1, 1))).value).toBeNull();
  });

  it('lets payload fields and locals hide built-in names', () => {
    const s: ExprScope = { ...scope, payload: { unit: field(T.org) }, locals: { now: T.text } };
    expect(run(ref('unit'), s, { ...env, payload: { unit: '网格9' } }).value).toBe('网格9');
    expect(run(ref('now'), s, { ...env, locals: { now: '本地' } }).value).toBe('本地');
  });

  it('reads only own properties of records', () => {
    const e = mem(c('评价'), 'constructor');
    expect(compileExpr(e, scope)(env)).toBeNull();
    expect(compileExpr(c('toString'), scope)(env)).toBeNull();
  });
});

const functionRows: [Expr, Value][] = [
  [call('len', '单位ab'), 4],
  [call('len', c('标签')), 2],
  [call('len', mem(c('评价'), '意见')), null],
  [call('contains', '物业公司', '公司'), true],
  [call('contains', c('标签'), '急'), true],
  [call('contains', c('类别们'), '环境'), false],
  [call('starts_with', '物业公司', '物业'), true],
  [call('ends_with', '物业公司', '物业'), false],
  [call('trim', '  a '), 'a'],
  [call('upper', 'ab'), 'AB'],
  [call('lower', 'AB'), 'ab'],
  [call('text', 3), '3'],
  [call('text', true), 'true'],
  [call('text', dur(2, 'workdays')), '2 workdays'],
  [call('text', list(1, 2)), '[1,2]'],
  [call('text', null), null],
  [call('sum', list(1, 2, 3)), 6],
  [call('sum', list()), 0],
  [call('sum', list(1, null, 2)), 3],
  [call('avg', list(1, 2, 3, 4)), 2.5],
  [call('avg', list()), null],
  [call('min', list(3, 1, 2)), 1],
  [call('max', list(3, 1, 2)), 3],
  [call('min', list()), null],
  [call('min', 2, 5), 2],
  [call('max', 2, 5), 5],
  [call('max', 2, null), null],
  [call('count', c('标签')), 2],
  [call('abs', -3), 3],
  [call('round', 2.5), 3],
  [call('round', -2.5), -3],
  [call('round', 1.005, 2), 1.01],
  [call('round', 1234, -2), 1200],
  [call('floor', 2.7), 2],
  [call('ceil', 2.1), 3],
  [call('append', c('标签'), '新'), ['急', '老人', '新']],
  [call('remove', c('标签'), '急'), ['老人']],
  [call('minutes', 30), d(30 * 60_000)],
  [call('hours', 2), d(2 * H)],
  [call('days', 1), d(24 * H)],
  [call('workdays', 2), d(0, 2)],
  [call('date', '2024-05-01'), '2024-04-30T16:00:00.000Z'],
  [call('date', '2024-05-01T09:00:00Z'), '2024-05-01T09:00:00.000Z'],
  [call('date', 'tomorrow'), null],
  [call('date', '2024-02-30'), null],
  [call('hours_between', ref('now'), c('截止')), 53],
  [call('hours_between', c('截止'), ref('now')), -53],
  [call('days_between', ref('now'), c('截止')), 53 / 24],
  [call('add', c('截止'), call('workdays', 1)), '2024-05-06T07:00:00.000Z'],
  [call('add', ref('now'), call('hours', 1)), '2024-05-01T03:00:00.000Z'],
  [call('is_workday', c('截止')), true],
  [call('is_workday', call('date', '2024-05-04')), false],
  [call('year', c('截止')), 2024],
  [call('month', c('截止')), 5],
  [call('day', c('截止')), 3],
  [call('hour', c('截止')), 15],
  [call('weekday', c('截止')), 5],
  [call('长度', '单位'), 2],
  [call('四舍五入', 2.345, 2), 2.35],
  [call('包含', c('标签'), '老人'), true],
];

describe('built-in functions', () => {
  it.each(functionRows)('%#: %j', (e, expected) => {
    const { value, diags } = run(e);
    expect(diags).toEqual([]);
    expect(value).toEqual(expected);
  });

  it('has every function the brief asks for, each with a signature', () => {
    const wanted = ['len', 'contains', 'starts_with', 'ends_with', 'trim', 'upper', 'lower', 'sum', 'avg', 'min', 'max', 'count',
      'abs', 'round', 'floor', 'ceil', 'append', 'remove', 'minutes', 'hours', 'days', 'workdays', 'date', 'hours_between',
      'days_between', 'add', 'is_workday', 'year', 'month', 'day', 'hour'];
    for (const name of wanted) expect(FUNCTIONS[name]?.overloads.length, name).toBeGreaterThan(0);
    expect(showSignatures(FUNCTIONS['round']!)).toBe('round(number, number?) -> number');
    expect(showSignatures(FUNCTIONS['contains']!)).toBe('contains(text, text) -> boolean or contains(list of T, T) -> boolean');
  });

  it('asks the oracle only for working days, and survives an oracle that throws', () => {
    const calls: string[] = [];
    const broken: Oracle = {
      parentOf: () => { throw new Error('down'); },
      levelOf: () => { throw new Error('down'); },
      addDuration: (from) => { calls.push(from); throw new Error('down'); },
      isWorkday: () => { throw new Error('down'); },
    };
    const e2: EvalEnv = { ...env, oracle: broken };
    expect(run(bin('+', c('截止'), dur(1, 'hours')), scope, e2).value).toBe('2024-05-03T08:00:00.000Z');
    expect(calls).toEqual([]);
    expect(run(bin('+', c('截止'), dur(1, 'workdays')), scope, e2).value).toBeNull();
    expect(calls).toEqual([DUE]);
    expect(run(mem(c('单位'), 'parent'), scope, e2).value).toBeNull();
    expect(run(call('is_workday', c('截止')), scope, e2).value).toBeNull();
  });

  it('uses the oracle\'s zone for local parts and for dates written without an offset', () => {
    const utc: EvalEnv = { ...env, oracle: simpleOracle({}, {}, 0) };
    expect(run(call('hour', c('截止')), scope, utc).value).toBe(7);
    expect(run(call('date', '2024-05-01'), scope, utc).value).toBe('2024-05-01T00:00:00.000Z');
  });
});

describe('simpleOracle working days (Monday–Friday, no holidays, UTC+8)', () => {
  const o = simpleOracle({});
  it.each([
    ['Friday + 1 → Monday', '2024-05-03T07:00:00.000Z', 1, '2024-05-06T07:00:00.000Z'],
    ['Saturday + 1 → Monday', '2024-05-04T02:00:00.000Z', 1, '2024-05-06T02:00:00.000Z'],
    ['Saturday + 5 → Friday', '2024-05-04T02:00:00.000Z', 5, '2024-05-10T02:00:00.000Z'],
    ['Wednesday + 5 → Wednesday', '2024-05-01T02:00:00.000Z', 5, '2024-05-08T02:00:00.000Z'],
    ['Wednesday + 10 → Wednesday', '2024-05-01T02:00:00.000Z', 10, '2024-05-15T02:00:00.000Z'],
    ['Monday - 1 → Friday', '2024-05-06T02:00:00.000Z', -1, '2024-05-03T02:00:00.000Z'],
    ['weekends are local: Saturday 01:00 (Friday 17:00 UTC) + 1 → Monday 01:00', '2024-05-03T17:00:00.000Z', 1, '2024-05-05T17:00:00.000Z'],
    ['zero', '2024-05-04T02:00:00.000Z', 0, '2024-05-04T02:00:00.000Z'],
  ])('%s', (_, from, n, to) => {
    expect(o.addDuration(from, { ms: 0, workdays: n })).toBe(to);
  });
  it('knows weekends in local time and refuses what it cannot represent', () => {
    expect(o.isWorkday('2024-05-03T17:00:00.000Z')).toBe(false); // Saturday 01:00 in UTC+8
    expect(o.isWorkday('2024-05-03T15:00:00.000Z')).toBe(true);
    expect(o.addDuration('9999-12-31T00:00:00.000Z', { ms: 0, workdays: 10 })).toBeNull();
    expect(o.addDuration('not a date', { ms: 0, workdays: 1 })).toBeNull();
    expect(o.addDuration('2024-05-01T00:00:00.000Z', { ms: 0, workdays: 1e300 })).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------

describe('type inference', () => {
  const row: Type = { kind: 'record', fields: { 部门: field(T.org), 时限: field(T.duration) } };
  const rows: [string, Expr, Type][] = [
    ['table call gives a record', call('分拨', '平安', '高'), row],
    ['collect gives a list', call('会签'), { kind: 'list', item: { kind: 'record', fields: { 部门: field(T.org) } } }],
    ['append is generic', call('append', c('标签'), '新'), { kind: 'list', item: T.text }],
    ['enum list stays enum', call('append', c('类别们'), '维修'), { kind: 'list', item: 类别 }],
    ['if joins an enum and its member', iff(true, c('类别'), '其他'), 类别],
    ['datetime - datetime', bin('-', c('截止'), ref('now')), T.duration],
    ['datetime + duration', bin('+', ref('now'), c('时限')), T.datetime],
    ['?? keeps the type', bin('??', c('单位'), ref('unit')), T.org],
    ['empty list', list(), { kind: 'list', item: T.unknown }],
    ['org parent', mem(ref('部门'), 'parent'), T.org],
    ['org level', mem(ref('部门'), 'level'), T.text],
    ['null + number', bin('+', null, 1), T.number],
    ['error node', err(), T.unknown],
  ];
  it.each(rows)('%s', (_, e, t) => {
    const out: Diagnostic[] = [];
    expect(checkExpr(e, scope, out)).toEqual(t);
    expect(out).toEqual([]);
  });
});

describe('type errors', () => {
  const rows: [string, Expr, string[], string?][] = [
    ['unknown name, suggestion', ref('单元'), ['WF0209'], 'Did you mean "单位"?'],
    ['case field without case.', ref('电话'), ['WF0209'], 'case.电话'],
    ['case alone', ref('case'), ['WF0209'], 'case.单位'],
    ['table as a value', ref('分拨'), ['WF0209'], '分拨(…)'],
    ['function as a value', ref('len'), ['WF0209'], 'len(…)'],
    ['unknown case field', c('电化'), ['WF0205'], 'Did you mean "电话"?'],
    ['no such org property', mem(c('单位'), 'name'), ['WF0313'], '.parent'],
    ['actor has no properties', mem(ref('actor'), 'name'), ['WF0313']],
    ['no such record field', mem(c('评价'), '满意'), ['WF0313'], 'Did you mean "满意度"?'],
    ['list has no length property', mem(c('标签'), 'length'), ['WF0313'], 'len('],
    ['number has no property', mem(c('金额'), 'x'), ['WF0313']],
    ['index a number', idx(c('金额'), 0), ['WF0317']],
    ['index by text', idx(c('标签'), 'a'), ['WF0316']],
    ['unknown function', call('lenn', 'x'), ['WF0210'], 'Did you mean "len"?'],
    ['too few arguments', call('len'), ['WF0305'], 'len(text) -> number'],
    ['too many arguments', call('round', 1, 2, 3), ['WF0305']],
    ['wrong argument type', call('len', 1), ['WF0306']],
    ['generic mismatch', call('append', c('标签'), 1), ['WF0306']],
    ['table arity', call('分拨', '维修'), ['WF0305'], '分拨(类别, 严重程度)'],
    ['table enum input', call('分拨', '维修', '特高'), ['WF0217'], '高, 中, 低'],
    ['table input type', call('分拨', 1, '高'), ['WF0306']],
    ['contains on an enum list', call('contains', c('类别们'), '修理'), ['WF0217']],
    ['number + text', bin('+', 1, 'a'), ['WF0301'], 'text(x)'],
    ['text - text', bin('-', 'a', 'b'), ['WF0301']],
    ['datetime + number', bin('+', c('截止'), 1), ['WF0301']],
    ['duration * duration', bin('*', dur(1, 'hours'), dur(1, 'hours')), ['WF0301']],
    ['boolean arithmetic', bin('+', true, 1), ['WF0301']],
    ['number == text', bin('==', 1, 'a'), ['WF0301']],
    ['enum == non-member', bin('==', c('类别'), '修理'), ['WF0217'], 'Use one of: 维修, 养老, 环境, 平安, 其他.'],
    ['non-member == enum', bin('!=', '修理', c('类别')), ['WF0217']],
    ['org == actor', bin('==', c('单位'), ref('actor')), ['WF0301']],
    ['datetime == non-date literal', bin('==', c('截止'), 'soon'), ['WF0301']],
    ['enum ordering', bin('<', c('类别'), '维修'), ['WF0301'], 'no order'],
    ['boolean ordering', bin('<', true, false), ['WF0301']],
    ['in a number', bin('in', 1, 2), ['WF0317']],
    ['number in text list', bin('in', 1, c('标签')), ['WF0301']],
    ['number in text', bin('in', 1, 'abc'), ['WF0301']],
    ['enum in list with non-member', bin('in', c('类别'), list('维修', '修理')), ['WF0217']],
    ['non-member in enum list', bin('in', '修理', c('类别们')), ['WF0217']],
    ['and on a number', bin('and', 1, true), ['WF0302']],
    ['or on text', bin('or', false, 'x'), ['WF0302']],
    ['not a number', un('not', 1), ['WF0302']],
    ['if on a number', iff(1, 2, 3), ['WF0302']],
    ['if branches differ', iff(true, 1, 'a'), ['WF0301']],
    ['list items differ', list(1, 'a'), ['WF0301']],
    ['?? sides differ', bin('??', 1, 'a'), ['WF0301']],
    ['negate text', un('-', 'a'), ['WF0316']],
    ['unknown unit', dur(2, 'weeks'), ['WF0309']],
    ['misspelt unit', dur(2, '工作曰'), ['WF0309'], 'Did you mean "工作日"?'],
    ['division by literal zero', bin('/', c('金额'), 0), ['WF0314']],
    ['one error, not a cascade', bin('and', bin('>', bin('+', ref('不存在'), 1), 2), bin('>', call('len', ref('不存在')), 1)), ['WF0209', 'WF0209']],
    ['member of unknown', mem(mem(ref('不存在'), 'x'), 'y'), ['WF0209']],
    ['recovery node says nothing', bin('+', err(), 1), []],
    ['empty name from recovery', ref(''), []],
  ];
  it.each(rows)('%s', (_, e, codes, hint) => {
    const out: Diagnostic[] = [];
    checkExpr(e, scope, out);
    expect(out.map((x) => x.code)).toEqual(codes);
    if (hint !== undefined) expect(`${out[0]?.message} ${out[0]?.hint ?? ''}`).toContain(hint);
    for (const x of out) expect(x.message).toMatch(/\.$/);
  });

  it('points at the offending node', () => {
    const bad = lift('修理');
    const out: Diagnostic[] = [];
    checkExpr(bin('==', c('类别'), bad), scope, out);
    expect(out[0]?.span).toBe(bad.span);
    const field2 = c('电化');
    const out2: Diagnostic[] = [];
    checkExpr(field2, scope, out2);
    expect(out2[0]?.span).toBe(field2.kind === 'member' ? field2.property.span : undefined);
  });

  it('checks a value against an expected type (checkExprAgainst)', () => {
    const list类别: Type = { kind: 'list', item: 类别 };
    const cases: [Expr, Type, string[]][] = [
      [list('维修', '养老'), list类别, []],
      [list('维修', '修理'), list类别, ['WF0217']],
      [lift(1), T.text, ['WF0303']],
      [c('类别'), T.text, []],
      [lift(null), T.org, []],
      [c('单位'), T.actor, ['WF0303']],
    ];
    for (const [e, t, codes] of cases) {
      const out: Diagnostic[] = [];
      checkExprAgainst(e, t, scope, out);
      expect(out.map((x) => x.code)).toEqual(codes);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('resolveType and fieldTypes', () => {
  const named = (text: string): TypeExpr => ({ kind: 'named', name: nm(text), span: sp() });
  const fd = (name: string, type: TypeExpr, more: Partial<FieldDecl> = {}): FieldDecl =>
    ({ kind: 'field', name: nm(name), type, optional: false, constraints: [], span: sp(), ...more });
  const str = (value: string) => ({ kind: 'str' as const, value, span: sp() });
  const declared = (n: string): Type | undefined => (n === '评分' ? { kind: 'record', fields: { 满意度: field(T.number) } } : undefined);

  it.each([
    ['text', named('text'), T.text, []],
    ['Chinese alias', named('文本'), T.text, []],
    ['declared type', named('评分'), { kind: 'record', fields: { 满意度: field(T.number) } }, []],
    ['unknown type', named('txt'), T.unknown, ['WF0207']],
    ['enum', { kind: 'enum', members: [nm('高'), nm('低')], span: sp() }, { kind: 'enum', members: ['高', '低'] }, []],
    ['duplicate member', { kind: 'enum', members: [nm('高'), nm('高')], span: sp() }, { kind: 'enum', members: ['高'] }, ['WF0318']],
    ['list of', { kind: 'listOf', item: named('org'), span: sp() }, { kind: 'list', item: T.org }, []],
    ['record', { kind: 'record', fields: [fd('a', named('number'))], span: sp() }, { kind: 'record', fields: { a: field(T.number) } }, []],
  ] as [string, TypeExpr, Type, string[]][])('%s', (_, te, expected, codes) => {
    const out: Diagnostic[] = [];
    expect(resolveType(te, declared, out)).toEqual(expected);
    expect(out.map((x) => x.code)).toEqual(codes);
  });

  it('suggests a type name', () => {
    const out: Diagnostic[] = [];
    resolveType(named('nubmer'), declared, out, ['评分']);
    expect(out[0]?.hint).toBe('Did you mean "number"?');
  });

  const range = (min: Expr, max: Expr) => ({ kind: 'range' as const, min, max, span: sp() });
  const length = (min: Expr, max: Expr) => ({ kind: 'length' as const, min, max, span: sp() });
  const matches = (p: string) => ({ kind: 'matches' as const, pattern: str(p), span: sp() });

  it.each([
    ['pattern', fd('电话', named('text'), { constraints: [matches('^1[0-9]{10}$')] }), { type: T.text, optional: false, constraints: { pattern: '^1[0-9]{10}$' } }, []],
    ['label and optional', fd('单位', named('org'), { optional: true, label: str('责任单位') }), { type: T.org, optional: true, label: '责任单位', constraints: {} }, []],
    ['number range', fd('分', named('number'), { constraints: [range(lift(1), lift(5))] }), { type: T.number, optional: false, constraints: { min: 1, max: 5 } }, []],
    ['negative bound', fd('分', named('number'), { constraints: [range(un('-', 5), lift(5))] }), { type: T.number, optional: false, constraints: { min: -5, max: 5 } }, []],
    ['datetime range', fd('日', named('datetime'), { constraints: [range(lift('2024-01-01'), lift('2024-12-31'))] }),
      { type: T.datetime, optional: false, constraints: { min: '2023-12-31T16:00:00.000Z', max: '2024-12-30T16:00:00.000Z' } }, []],
    ['length', fd('名', named('text'), { constraints: [length(lift(1), lift(20))] }), { type: T.text, optional: false, constraints: { minLength: 1, maxLength: 20 } }, []],
    ['number default', fd('积分', named('number'), { default: lift(0) }), { type: T.number, optional: false, constraints: {}, default: 0 }, []],
    ['duration default', fd('时限', named('duration'), { default: dur(2, 'workdays') }), { type: T.duration, optional: false, constraints: {}, default: d(0, 2) }, []],
    ['datetime default normalized', fd('日', named('datetime'), { default: lift('2024-05-01') }), { type: T.datetime, optional: false, constraints: {}, default: '2024-04-30T16:00:00.000Z' }, []],
    ['list default', fd('标签', { kind: 'listOf', item: named('text'), span: sp() }, { default: list() }), { type: { kind: 'list', item: T.text }, optional: false, constraints: {}, default: [] }, []],
    ['invalid pattern', fd('电话', named('text'), { constraints: [matches('[0-9')] }), { type: T.text, optional: false, constraints: {} }, ['WF0307']],
    ['pattern on a number', fd('分', named('number'), { constraints: [matches('1')] }), { type: T.number, optional: false, constraints: {} }, ['WF0308']],
    ['range on text', fd('名', named('text'), { constraints: [range(lift(1), lift(2))] }), { type: T.text, optional: false, constraints: {} }, ['WF0308']],
    ['empty range', fd('分', named('number'), { constraints: [range(lift(5), lift(1))] }), { type: T.number, optional: false, constraints: {} }, ['WF0303']],
    ['non-constant bound', fd('分', named('number'), { constraints: [range(ref('x'), lift(1))] }), { type: T.number, optional: false, constraints: {} }, ['WF0303']],
    ['bad datetime bound', fd('日', named('datetime'), { constraints: [range(lift('soon'), lift('2024-12-31'))] }), { type: T.datetime, optional: false, constraints: {} }, ['WF0303']],
    ['length on a number', fd('分', named('number'), { constraints: [length(lift(1), lift(2))] }), { type: T.number, optional: false, constraints: {} }, ['WF0308']],
    ['negative length', fd('名', named('text'), { constraints: [length(un('-', 1), lift(2))] }), { type: T.text, optional: false, constraints: {} }, ['WF0303']],
    ['default not a member', fd('类', { kind: 'enum', members: [nm('高'), nm('低')], span: sp() }, { default: lift('中') }), { type: { kind: 'enum', members: ['高', '低'] }, optional: false, constraints: {} }, ['WF0315']],
    ['default of the wrong type', fd('分', named('number'), { default: lift('0') }), { type: T.number, optional: false, constraints: {} }, ['WF0315']],
    ['default out of range', fd('分', named('number'), { constraints: [range(lift(1), lift(5))], default: lift(9) }), { type: T.number, optional: false, constraints: { min: 1, max: 5 } }, ['WF0315']],
    ['non-constant default', fd('分', named('number'), { default: c('金额') }), { type: T.number, optional: false, constraints: {} }, ['WF0315']],
    ['null default of a required field', fd('分', named('number'), { default: lift(null) }), { type: T.number, optional: false, constraints: {} }, ['WF0315']],
    ['bad unit in a default', fd('时限', named('duration'), { default: dur(2, 'weeks') }), { type: T.duration, optional: false, constraints: {} }, ['WF0309']],
  ] as [string, FieldDecl, FieldType, string[]][])('%s', (_, decl, expected, codes) => {
    const out: Diagnostic[] = [];
    const r = fieldTypes([decl], declared, out);
    expect(r[decl.name.text]).toEqual(expected);
    expect(out.map((x) => x.code)).toEqual(codes);
  });

  it('reports a duplicate field once and keeps the first', () => {
    const out: Diagnostic[] = [];
    const second = fd('a', named('text'));
    const r = fieldTypes([fd('a', named('number')), second], declared, out);
    expect(r).toEqual({ a: field(T.number) });
    expect(out.map((x) => [x.code, x.span])).toEqual([['WF0206', second.name.span]]);
  });
});

describe('suggestions', () => {
  it.each([
    ['单元', ['单位', '社区'], '单位'],
    ['lenght', ['len', 'length'], 'length'],
    ['x', ['y'], undefined],
    ['ACTOR', ['actor'], 'actor'],
    ['完全不同', ['单位'], undefined],
  ] as [string, string[], string | undefined][])('%s → %s', (name, candidates, expected) => {
    expect(closest(name, candidates)).toBe(expected);
  });
  it('counts code points', () => {
    expect(editDistance('单元', '单位')).toBe(1);
    expect(editDistance('😀a', 'a')).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Totality: no values and no trees make checking, compiling or evaluating throw.

const weirdNumber = fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e308, -0, Number.MAX_SAFE_INTEGER, 8.64e15, -1e-320);
const leafValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double(),
  weirdNumber,
  fc.integer(),
  fc.string(),
  fc.constantFrom('2024-05-03T07:00:00.000Z', '2024-05-01', '9999-12-31T23:59:59.999Z', '0000-01-01T00:00:00.000Z', '网格1', '社区1', '维修', '', '__proto__'),
  fc.record({ ms: fc.oneof(fc.double(), weirdNumber), workdays: fc.oneof(fc.double(), weirdNumber, fc.integer()) }),
);
const anyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, leafValue, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.string(), tie('v'), { maxKeys: 4 }), fc.constant(undefined)),
})).v;

const fieldNames = Object.keys(scope.caseFields);
const recordOfValues = (names: string[]): fc.Arbitrary<Record<string, unknown>> =>
  fc.record(Object.fromEntries(names.map((n) => [n, anyValue])), { requiredKeys: [] });

const brokenOracle: Oracle = {
  parentOf: () => { throw new Error('x'); },
  levelOf: () => 42 as unknown as string,
  addDuration: () => { throw new Error('x'); },
  isWorkday: () => 'yes' as unknown as boolean,
  get utcOffsetMinutes(): number { throw new Error('x'); },
};
const liarOracle: Oracle = {
  parentOf: () => ({}) as unknown as string,
  levelOf: () => null,
  addDuration: () => 'garbage',
  isWorkday: () => true,
  utcOffsetMinutes: Number.NaN,
};

const envArb: fc.Arbitrary<EvalEnv> = fc.record({
  case: recordOfValues(fieldNames),
  payload: recordOfValues(['原因', '分数', '单位']),
  locals: recordOfValues(['部门']),
  actor: fc.option(fc.string()),
  submitter: fc.option(fc.string()),
  unit: fc.oneof(fc.option(fc.string()), fc.constantFrom('网格1', '社区1')),
  now: fc.oneof(fc.string(), fc.constantFrom(NOW, DUE, '9999-12-31T23:59:59.999Z')),
  oracle: fc.constantFrom(oracle, brokenOracle, liarOracle, simpleOracle({ 网格1: '社区1' }, {}, 0)),
  tables: fc.constantFrom(
    env.tables,
    {},
    { 分拨: () => { throw new Error('x'); }, 会签: () => Number.NaN },
    { 分拨: 'not a function', 会签: () => undefined },
  ),
}) as unknown as fc.Arbitrary<EvalEnv>;

const names = ['case', 'actor', 'submitter', 'unit', 'now', '原因', '分数', '单位', '部门', '分拨', 'len', '不存在', ''];
const props = ['parent', 'level', '上级', '满意度', '意见', '部门', 'x', 'constructor', '__proto__', ''];
const ops: BinaryOp[] = ['or', 'and', '??', '==', '!=', '<', '<=', '>', '>=', 'in', '+', '-', '*', '/', '%'];
const callees = [...Object.keys(FUNCTIONS), '分拨', '会签', 'nope'];

const leafExpr: fc.Arbitrary<Expr> = fc.oneof(
  fc.oneof(fc.double(), weirdNumber, fc.integer({ min: -3, max: 10 })).map((n) => lift(n)),
  fc.oneof(fc.string(), fc.constantFrom('维修', '修理', '2024-05-01', '网格1', '急')).map((s) => lift(s)),
  fc.boolean().map((b) => lift(b)),
  fc.constant(null).map(() => lift(null)),
  fc.tuple(fc.oneof(fc.double(), fc.integer({ min: 0, max: 5 })), fc.constantFrom(...Object.keys(DURATION_UNITS), 'weeks', '')).map(([a, u]) => dur(a, u)),
  fc.constantFrom(...names).map(ref),
  fc.constantFrom(...fieldNames, '不存在', 'toString').map(c),
  fc.constant(null).map(err),
);
const exprArb: fc.Arbitrary<Expr> = fc.letrec((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    leafExpr,
    fc.tuple(fc.constantFrom(...ops), tie('e'), tie('e')).map(([op, l, r]) => bin(op, l as Expr, r as Expr)),
    fc.tuple(fc.constantFrom<UnaryOp>('not', '-'), tie('e')).map(([op, x]) => un(op, x as Expr)),
    fc.tuple(tie('e'), fc.constantFrom(...props)).map(([o, p]) => mem(o as Expr, p)),
    fc.tuple(tie('e'), tie('e')).map(([o, i]) => idx(o as Expr, i as Expr)),
    fc.tuple(fc.constantFrom(...callees), fc.array(tie('e'), { maxLength: 3 })).map(([f, args]) => call(f, ...(args as Expr[]))),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([a, b, x]) => iff(a as Expr, b as Expr, x as Expr)),
    fc.array(tie('e'), { maxLength: 3 }).map((xs) => list(...(xs as Expr[]))),
  ),
})).e as fc.Arbitrary<Expr>;

function isValue(v: unknown): boolean {
  return v !== undefined && (typeof v !== 'number' || Number.isFinite(v));
}

describe('totality', () => {
  it('evaluates every expression of the tables above on any environment without throwing', () => {
    const corpus = [
      ...evalRows.map((r) => r[1]),
      ...functionRows.map((r) => r[0]),
      bin('+', c('截止'), c('时限')), bin('-', c('截止'), ref('now')), bin('<', c('截止'), ref('now')),
      bin('==', c('截止'), '2024-05-03 15:00'), bin('in', c('截止'), list(ref('now'))),
      mem(mem(c('单位'), 'parent'), 'level'), idx(c('标签'), c('金额')), idx(c('电话'), 1),
      call('分拨', c('类别'), '高'), mem(call('分拨', c('类别'), '高'), '部门'), call('会签'),
      bin('*', c('金额'), c('时限')), bin('/', c('金额'), mem(c('评价'), '满意度')), bin('%', c('金额'), ref('分数')),
      bin('+', c('电话'), ref('原因')), un('-', c('时限')), un('not', c('已办结')), bin('??', c('单位'), ref('unit')),
      ...Object.keys(FUNCTIONS).flatMap((f) => [
        call(f, c('标签')), call(f, c('截止')), call(f, c('金额'), c('金额')), call(f, c('类别们'), c('类别')),
        call(f, c('时限')), call(f, c('电话'), ref('原因')), call(f, c('截止'), c('时限')), call(f, ref('now'), c('截止')),
      ]),
    ];
    const compiled = corpus.map((e) => compileExpr(e, scope));
    fc.assert(fc.property(envArb, (en) => {
      for (const f of compiled) expect(isValue(f(en))).toBe(true);
    }), { numRuns: 200 });
  });

  it('checks, compiles and evaluates random trees on random environments without throwing', () => {
    fc.assert(fc.property(exprArb, envArb, (e, en) => {
      checkExpr(e, scope, []);
      const v = compileExpr(e, scope)(en);
      expect(isValue(v)).toBe(true);
      expect(isValue(compileExpr(e, { caseFields: {}, tables: {} })(en))).toBe(true);
    }), { numRuns: 2000 });
  });

  it('gives well-formed diagnostics for random trees', () => {
    fc.assert(fc.property(exprArb, (e) => {
      const out: Diagnostic[] = [];
      checkExpr(e, scope, out);
      for (const x of out) {
        expect(x.code).toMatch(/^WF0[23]\d\d$/);
        expect(x.message.length).toBeGreaterThan(0);
      }
    }), { numRuns: 500 });
  });
});
