import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Cell, ColumnDecl, Expr, HitPolicy, RuleRow, RulesDecl, Span, TypeExpr } from '../../dsl/ast.ts';
import type { Diagnostic } from '../../dsl/diagnostics.ts';
import { TYPE_NAMES, type Type, type Value } from '../../dsl/types.ts';
import { checkRules, compileRules, compileRulesTraced, type RulesCheckOptions } from '../../dsl/rules.ts';

// ---------------------------------------------------------------------------------------------
// A small builder, standing in for the parser: the header is on line 1 and row k (0-based) on
// line k + 2, so diagnostics can be checked by line. Cells are written as in the DSL.

const span = (line: number, col = 1): Span => ({
  start: { line, col, offset: line * 1000 + col },
  end: { line, col: col + 1, offset: line * 1000 + col + 1 },
});

const name = (text: string, line: number) => ({ kind: 'name' as const, text, span: span(line) });

/** `2 hours`, `-3`, `"quoted"`, `true`, `null`, a bare word, or `@x` for a non-constant (a reference). */
function atom(text: string, line: number): Expr {
  const t = text.trim();
  const s = span(line);
  const dur = /^(-?\d+(?:\.\d+)?)\s+(\S+)$/.exec(t);
  if (dur !== null) return { kind: 'duration', amount: Number(dur[1]), unit: name(dur[2] ?? '', line), span: s };
  if (/^-?\d+(\.\d+)?$/.test(t)) return { kind: 'number', value: Number(t), span: s };
  if (t.startsWith('"')) return { kind: 'string', value: t.slice(1, -1), bare: false, span: s };
  if (t === 'true' || t === 'false') return { kind: 'bool', value: t === 'true', span: s };
  if (t === 'null') return { kind: 'null', span: s };
  if (t.startsWith('@')) return { kind: 'ref', name: name(t.slice(1), line), span: s };
  return { kind: 'string', value: t, bare: true, span: s };
}

function cell(text: string, line: number): Cell {
  const t = text.trim();
  const s = span(line);
  if (t === '*') return { kind: 'any', span: s };
  const cmp = /^(==|!=|<=|>=|<|>)\s*(.+)$/.exec(t);
  if (cmp !== null) return { kind: 'compare', op: cmp[1] as '==', value: atom(cmp[2] ?? '', line), span: s };
  const range = /^(.+?)\.\.(.+)$/.exec(t);
  if (range !== null) return { kind: 'range', min: atom(range[1] ?? '', line), max: atom(range[2] ?? '', line), span: s };
  return { kind: 'oneOf', values: t.split(',').map((v) => atom(v, line)), span: s };
}

/** `number`, `list of text`, or an enum written `低|中|高`. */
function typeExpr(text: string, line: number): TypeExpr {
  const s = span(line);
  if (text.includes('|')) return { kind: 'enum', members: text.split('|').map((m) => name(m.trim(), line)), span: s };
  if (text.startsWith('list of ')) return { kind: 'listOf', item: typeExpr(text.slice(8), line), span: s };
  return { kind: 'named', name: name(text, line), span: s };
}

const columns = (specs: readonly string[]): ColumnDecl[] =>
  specs.map((spec) => {
    const [n = '', t = ''] = spec.split(':').map((p) => p.trim());
    return { kind: 'column', name: name(n, 1), type: typeExpr(t, 1), span: span(1) };
  });

/** `| a | b |` or `default | x |`. */
function row(text: string, line: number): RuleRow {
  const isDefault = text.trim().startsWith('default');
  const body = text.trim().replace(/^default/, '').trim();
  const cells = body.split('|').slice(1, -1).map((c) => cell(c, line));
  return { kind: 'row', cells, isDefault, span: span(line) };
}

interface Table { readonly inputs: readonly string[]; readonly outputs: readonly string[]; readonly hit: HitPolicy; readonly rows: readonly string[] }

function table({ inputs, outputs, hit, rows }: Table, tableName = 'T'): RulesDecl {
  return {
    kind: 'rules',
    name: name(tableName, 1),
    inputs: columns(inputs),
    outputs: columns(outputs),
    hit,
    rows: rows.map((r, k) => row(r, k + 2)),
    span: span(1),
  };
}

function resolve(t: TypeExpr, out: Diagnostic[]): Type {
  switch (t.kind) {
    case 'enum': return { kind: 'enum', members: t.members.map((m) => m.text) };
    case 'listOf': return { kind: 'list', item: resolve(t.item, out) };
    case 'record': return { kind: 'record', fields: {} };
    case 'named': {
      const found = TYPE_NAMES[t.name.text];
      if (found !== undefined) return found;
      out.push({ code: 'WF0207', severity: 'error', message: `Unknown type ${t.name.text}.`, span: t.span });
      return { kind: 'unknown' };
    }
  }
}

function check(t: Table, options?: RulesCheckOptions): Diagnostic[] {
  const out: Diagnostic[] = [];
  checkRules(table(t), resolve, out, options);
  return out;
}

function compile(t: Table): (args: readonly Value[]) => Value {
  const decl = table(t);
  return compileRules(decl, checkRules(decl, resolve, []));
}

// The two tables of the brief.
const ROUTE: Table = {
  inputs: ['类别: 平安|维修|环境|其他', '严重程度: 低|中|高'],
  outputs: ['部门: org', '时限: duration'],
  hit: 'first',
  rows: [
    '| 平安 | 高 | 派出所 | 2 hours |',
    '| 维修 | * | 物业公司 | 48 hours |',
    '| 环境, 其他 | != 低 | 城管 | 3 workdays |',
    'default | 街道综治中心 | 3 workdays |',
  ],
};
const SCORE: Table = {
  inputs: ['时长: number'],
  outputs: ['积分: number'],
  hit: 'unique',
  rows: ['| < 1 | 1 |', '| 1..4 | 3 |', '| > 4 | 5 |'],
};
const with_ = (t: Table, patch: Partial<Table>): Table => ({ ...t, ...patch });

// ---------------------------------------------------------------------------------------------

/** [title, table, expected diagnostics as [code, line, part of the message?]] */
const diagnosticCases: [string, Table, [string, number, string?][]][] = [
  ['the routing table is fine', ROUTE, []],
  ['the scoring table is fine', SCORE, []],
  ['unique: overlap at a shared bound', with_(SCORE, { rows: ['| < 1 | 1 |', '| 1..4 | 3 |', '| >= 4 | 5 |'] }),
    [['WF0501', 4, 'Rows at lines 3 and 4 overlap: both match 时长 = 4.']]],
  ['unique: overlap names both columns of the example', {
    inputs: ['类别: 平安|维修', '等级: number'], outputs: ['x: number'], hit: 'unique',
    rows: ['| 平安 | < 3 | 1 |', '| 平安, 维修 | 2..5 | 2 |', '| 维修 | < 2 | 3 |', '| * | > 5 | 4 |'],
  }, [['WF0501', 3, 'Rows at lines 2 and 3 overlap: both match 类别 = 平安, 等级 = 2.']]],
  ['unique: a gap between ranges, with the counterexample', with_(SCORE, { rows: ['| < 1 | 1 |', '| 1..4 | 3 |', '| > 5 | 5 |'] }),
    [['WF0502', 1, 'Rule table T has a gap: no row matches 时长 = 4.5 (between 4 and 5).']]],
  ['unique: a gap below the lowest point', with_(SCORE, { rows: ['| 1..4 | 3 |', '| > 4 | 5 |'] }),
    [['WF0502', 1, 'no row matches 时长 = 0 (below 1).']]],
  ['first: routing without a default has a gap', with_(ROUTE, { rows: ROUTE.rows.slice(0, 3) }),
    [['WF0502', 1, 'no row matches 类别 = 环境, 严重程度 = 低.']]],
  ['first: a row covered by the rows above never matches', with_(ROUTE, { rows: ['| 平安 | * | 甲 | 1 hours |', '| 维修 | * | 乙 | 1 hours |', '| 平安, 维修 | 高 | 丙 | 1 hours |', 'default | 丁 | 1 hours |'] }),
    [['WF0506', 4, 'the rows above (lines 2, 3) match every input it matches.']]],
  ['first: rows that cover everything make the default unused', with_(ROUTE, { rows: ['| 平安 | * | 甲 | 1 hours |', '| * | * | 乙 | 1 hours |', 'default | 丁 | 1 hours |'] }),
    [['WF0506', 4, 'The default row is never used']]],
  ['first: earlier rows may overlap later ones', with_(ROUTE, { rows: ['| 平安 | 高 | 甲 | 1 hours |', '| * | * | 乙 | 1 hours |'] }), []],
  ['collect: neither gaps nor overlaps are errors', with_(SCORE, { hit: 'collect', rows: ['| < 3 | 1 |', '| 1..4 | 3 |'] }), []],
  ['enum order: >= 中 and < 中 split 低|中|高 exactly', {
    inputs: ['严重程度: 低|中|高'], outputs: ['x: number'], hit: 'unique', rows: ['| >= 中 | 1 |', '| < 中 | 2 |'],
  }, []],
  ['enum order: a range 低..中 and > 中', {
    inputs: ['严重程度: 低|中|高'], outputs: ['x: number'], hit: 'unique', rows: ['| 低..中 | 1 |', '| > 中 | 2 |'],
  }, []],
  ['enum order: nothing is above the last member', {
    inputs: ['严重程度: 低|中|高'], outputs: ['x: number'], hit: 'first', rows: ['| > 高 | 1 |', 'default | 2 |'],
  }, [['WF0506', 2, 'no value of 严重程度 satisfies this cell']]],
  ['a reversed range matches nothing', with_(SCORE, { rows: ['| 5..1 | 1 |', '| * | 2 |'] }), [['WF0506', 2, 'no value of 时长']]],
  ['boolean: the missing value is named', {
    inputs: ['加急: boolean'], outputs: ['x: number'], hit: 'first', rows: ['| true | 1 |'],
  }, [['WF0502', 1, 'no row matches 加急 = false.']]],
  ['text: "any other value" is a gap', {
    inputs: ['名称: text'], outputs: ['x: number'], hit: 'unique', rows: ['| 甲, 乙 | 1 |'],
  }, [['WF0502', 1, 'no row matches 名称 is none of 甲, 乙.']]],
  ['text: != covers the rest', {
    inputs: ['名称: text'], outputs: ['x: number'], hit: 'unique', rows: ['| 甲 | 1 |', '| != 甲 | 2 |'],
  }, []],
  ['duration: never negative, so < and >= one point is complete', {
    inputs: ['时限: duration'], outputs: ['x: number'], hit: 'unique', rows: ['| < 2 hours | 1 |', '| >= 2 hours | 2 |'],
  }, []],
  ['duration: the gap below a lower bound starts at 0', {
    inputs: ['时限: duration'], outputs: ['x: number'], hit: 'unique', rows: ['| > 2 hours | 1 |'],
  }, [['WF0502', 1, 'no row matches 时限 = 0 hours.']]],
  ['duration: one workday and 24 hours are the same point', {
    inputs: ['时限: duration'], outputs: ['x: number'], hit: 'unique', rows: ['| <= 1 workdays | 1 |', '| >= 24 hours | 2 |'],
  }, [['WF0501', 3, 'both match 时限 = 1 workday.']]],
  ['duration: a gap between points reads in round units', {
    inputs: ['时限: duration'], outputs: ['x: number'], hit: 'unique', rows: ['| <= 2 hours | 1 |', '| >= 3 days | 2 |'],
  }, [['WF0502', 1, 'no row matches 时限 = 1 day (between 2 hours and 3 days).']]],
  ['datetime: before and from a date is complete', {
    inputs: ['受理: datetime'], outputs: ['x: number'], hit: 'unique', rows: ['| < "2024-01-01" | 1 |', '| >= "2024-01-01" | 2 |'],
  }, []],
  ['datetime: the gap is shown as an instant', {
    inputs: ['受理: datetime'], outputs: ['x: number'], hit: 'unique', rows: ['| < "2024-01-01" | 1 |', '| > "2024-01-03" | 2 |'],
  }, [['WF0502', 1, 'no row matches 受理 = 2024-01-01T00:00:00.000Z.']]],
  ['no inputs: two rows overlap on every input', { inputs: [], outputs: ['x: number'], hit: 'unique', rows: ['| 1 |', '| 2 |'] },
    [['WF0501', 3, 'both match any input.']]],
  ['wrong number of cells', with_(ROUTE, { rows: ['| 平安 | 高 | 派出所 |', 'default | 街道综治中心 | 3 workdays |'] }),
    [['WF0503', 2, 'Row has 3 cells; the header has 2 inputs and 2 outputs.']]],
  ['a default row holds only outputs', with_(ROUTE, { rows: ['| * | * | 甲 | 1 hours |', 'default | * | 街道综治中心 | 3 workdays |'] }),
    [['WF0503', 3, 'The default row has 3 cells; the header has 2 outputs.']]],
  ['no rows', with_(SCORE, { rows: [] }), [['WF0507', 1, 'Rule table T has no rows.']]],
  ['a default row that is not last', with_(SCORE, { hit: 'first', rows: ['default | 0 |', '| * | 1 |'] }),
    [['WF0505', 2, 'must be the last row']]],
  ['two default rows', with_(SCORE, { hit: 'first', rows: ['| < 1 | 1 |', 'default | 0 |', 'default | 2 |'] }),
    [['WF0505', 3, 'must be the last row'], ['WF0505', 4, 'at most one default row']]],
  ['text in a number column', with_(SCORE, { rows: ['| 甲 | 1 |', '| * | 2 |'] }),
    [['WF0504', 2, 'Column 时长 is number, but this cell holds the text "甲".']]],
  ['a number in an org column must be quoted', with_(ROUTE, { rows: ['| * | * | 1001 | 2 hours |'] }),
    [['WF0504', 2, 'Column 部门 is org, but this cell holds the number 1001.']]],
  ['a non-member of an enum', with_(ROUTE, { rows: ['| 平安 | 紧急 | 派出所 | 2 hours |', 'default | 甲 | 1 hours |'] }),
    [['WF0217', 2, '"紧急" is not a member of 严重程度.']]],
  ['< on a text column', { inputs: ['名称: text'], outputs: ['x: number'], hit: 'first', rows: ['| < 甲 | 1 |', 'default | 2 |'] },
    [['WF0504', 2, 'its values have no order, so `<` does not apply.']]],
  ['a range on an org column', { inputs: ['单位: org'], outputs: ['x: number'], hit: 'first', rows: ['| 甲..乙 | 1 |', 'default | 2 |'] },
    [['WF0504', 2, 'so a range does not apply']]],
  ['an expression in a cell', with_(SCORE, { rows: ['| < @上限 | 1 |', '| * | 2 |'] }), [['WF0504', 2, 'A cell must hold a constant']]],
  ['null in an input cell', with_(SCORE, { rows: ['| null | 1 |', '| * | 2 |'] }), [['WF0504', 2, 'A cell cannot test for null.']]],
  ['null in an output cell is a value', with_(SCORE, { rows: ['| * | null |'] }), []],
  ['an output cell with a list', with_(SCORE, { rows: ['| * | 1, 2 |'] }), [['WF0504', 2, 'this one holds a list of 2 values.']]],
  ['an output cell with *', with_(SCORE, { rows: ['| * | * |'] }), [['WF0504', 2, 'this one holds `*`.']]],
  ['an output cell of the wrong type', with_(ROUTE, { rows: ['| * | * | 甲 | 3 |'] }), [['WF0504', 2, 'Column 时限 is duration, but this cell holds the number 3.']]],
  ['an unknown duration unit', with_(ROUTE, { rows: ['| * | * | 甲 | 3 fortnights |'] }), [['WF0309', 2, 'Unknown duration unit "fortnights".']]],
  ['a list column takes only *', { inputs: ['标签: list of text'], outputs: ['x: number'], hit: 'first', rows: ['| 甲 | 1 |', '| * | 2 |'] },
    [['WF0504', 2, 'so its cells can only be `*`']]],
  ['a date that does not exist', { inputs: ['受理: datetime'], outputs: ['x: number'], hit: 'first', rows: ['| < "2024-02-31" | 1 |', 'default | 2 |'] },
    [['WF0504', 2, '"2024-02-31" is not a date and time.']]],
  ['an error is not reported again as a gap', with_(SCORE, { rows: ['| 甲 | 1 |', '| 1..4 | 3 |'] }), [['WF0504', 2]]],
  ['overlaps among valid rows are still reported next to an error', with_(SCORE, { rows: ['| 甲 | 1 |', '| 1..4 | 3 |', '| 3 | 4 |'] }),
    [['WF0504', 2], ['WF0501', 4, 'Rows at lines 3 and 4 overlap: both match 时长 = 3.']]],
  ['an unknown column type silences the analysis', { inputs: ['x: 金额'], outputs: ['y: number'], hit: 'unique', rows: ['| 1 | 1 |', '| 1 | 2 |'] },
    [['WF0207', 1]]],
  ['duplicate output columns', { inputs: ['x: number'], outputs: ['y: number', 'y: text'], hit: 'first', rows: ['| * | 1 | a |'] },
    [['WF0206', 1, 'Column y is declared twice']]],
];

describe('checkRules', () => {
  it.each(diagnosticCases)('%s', (_title, t, expected) => {
    const out = check(t);
    expect(out.map((d) => [d.code, d.span.start.line])).toEqual(expected.map(([code, line]) => [code, line]));
    for (const [i, [, , message]] of expected.entries()) {
      if (message !== undefined) expect(out[i]?.message).toContain(message);
    }
  });

  it('lists the enum members in the hint for a non-member', () => {
    const [d] = check(with_(ROUTE, { rows: ['| 平安 | 紧急 | 派出所 | 2 hours |', 'default | 甲 | 1 hours |'] }));
    expect(d?.hint).toBe('Use one of: 低, 中, 高.');
  });

  it('explains declaration order when an enum comparison is empty', () => {
    const [d] = check({ inputs: ['严重程度: 低|中|高'], outputs: ['x: number'], hit: 'first', rows: ['| < 低 | 1 |', 'default | 2 |'] });
    expect(d?.hint).toBe('Enum members compare by the order they are declared in: 低 < 中 < 高.');
  });

  it('returns the signature', () => {
    const out: Diagnostic[] = [];
    const sig = checkRules(table(ROUTE), resolve, out);
    expect(sig).toEqual({
      inputs: [{ name: '类别', type: { kind: 'enum', members: ['平安', '维修', '环境', '其他'] } }, { name: '严重程度', type: { kind: 'enum', members: ['低', '中', '高'] } }],
      outputs: [{ name: '部门', type: { kind: 'org' } }, { name: '时限', type: { kind: 'duration' } }],
      hit: 'first',
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Past the work budget

/** Rows of `!=` on every column fragment the uncovered set exponentially; there is no gap here. */
const DIAGONAL: Table = {
  inputs: Array.from({ length: 10 }, (_, c) => `c${c}: number`),
  outputs: ['x: number'],
  hit: 'first',
  rows: Array.from({ length: 24 }, (_, r) => `| ${Array.from({ length: 10 }, () => `!= ${r}`).join(' | ')} | ${r} |`),
};

describe('checkRules past the work budget', () => {
  it('stays fast and says it could not prove the table complete', () => {
    const started = performance.now();
    const out = check(DIAGONAL);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(out.map((d) => d.code)).toEqual(['WF0508']);
  });

  it('still finds a value of one column that no row covers', () => {
    const t: Table = {
      ...DIAGONAL,
      inputs: [...DIAGONAL.inputs, 'k: 甲|乙'],
      rows: DIAGONAL.rows.map((r) => r.replace(/ \| (\d+) \|$/, ' | 甲 | $1 |')),
    };
    const started = performance.now();
    const out = check(t);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(out.map((d) => d.code)).toEqual(['WF0502']);
    expect(out[0]?.message).toContain('no row matches k = 乙.');
  });

  it.each([
    ['a gap by one column', with_(SCORE, { rows: ['| < 1 | 1 |', '| 1..4 | 3 |', '| > 5 | 5 |'] }), [['WF0502', 1]]],
    ['a row inside one earlier row', with_(SCORE, { hit: 'first', rows: ['| < 5 | 1 |', '| 1..4 | 3 |', '| * | 5 |'] }), [['WF0506', 3]]],
    ['overlaps stay exact', with_(SCORE, { rows: ['| <= 1 | 1 |', '| 1..4 | 3 |', '| > 4 | 5 |'] }), [['WF0501', 3]]],
    ['a default under a row of *', with_(SCORE, { hit: 'first', rows: ['| < 1 | 1 |', '| * | 3 |', 'default | 0 |'] }), [['WF0506', 4]]],
    ['otherwise a warning', with_(ROUTE, { rows: ['| 平安 | * | 甲 | 1 hours |', '| * | != 中 | 乙 | 1 hours |', '| != 平安 | 中 | 丙 | 1 hours |'] }), [['WF0508', 1]]],
    ['a sampled gap', with_(ROUTE, { rows: ['| 平安 | * | 甲 | 1 hours |', '| * | != 中 | 乙 | 1 hours |', '| 维修 | 中 | 丙 | 1 hours |'] }), [['WF0502', 1]]],
  ] as const)('with a tiny budget: %s', (_title, t, expected) => {
    expect(check(t, { maxWork: 1 }).map((d) => [d.code, d.span.start.line])).toEqual(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// Evaluation

const hours = (n: number): Value => ({ ms: n * 3_600_000, workdays: 0 });
const workdays = (n: number): Value => ({ ms: 0, workdays: n });

const COLLECT: Table = with_(SCORE, { hit: 'collect', rows: ['| < 3 | 1 |', '| 1..4 | 3 |', '| != 2 | 9 |'] });
const ENUMS: Table = { inputs: ['严重程度: 低|中|高'], outputs: ['x: text'], hit: 'first', rows: ['| >= 中 | 上 |', '| 低 | 下 |'] };
const TIMES: Table = {
  inputs: ['受理: datetime', '时限: duration'],
  outputs: ['x: number'],
  hit: 'first',
  rows: ['| < "2024-01-01" | * | 1 |', '| * | > 1 workdays | 2 |', '| * | 20 hours..24 hours | 3 |'],
};

const evaluationCases: [string, Table, Value[], Value][] = [
  ['first: the first matching row', ROUTE, ['平安', '高'], { 部门: '派出所', 时限: hours(2) }],
  ['first: * matches anything', ROUTE, ['维修', '低'], { 部门: '物业公司', 时限: hours(48) }],
  ['first: a list and !=', ROUTE, ['其他', '中'], { 部门: '城管', 时限: workdays(3) }],
  ['first: the default when no row matches', ROUTE, ['环境', '低'], { 部门: '街道综治中心', 时限: workdays(3) }],
  ['null matches only *, so it falls to the default', ROUTE, ['维修', null], { 部门: '物业公司', 时限: hours(48) }],
  ['null input on a pinned column', ROUTE, [null, '高'], { 部门: '街道综治中心', 时限: workdays(3) }],
  ['a non-member is treated as null', ROUTE, ['火灾', '高'], { 部门: '街道综治中心', 时限: workdays(3) }],
  ['missing arguments are null', ROUTE, [], { 部门: '街道综治中心', 时限: workdays(3) }],
  ['unique: below the range', SCORE, [0.5], { 积分: 1 }],
  ['unique: range is inclusive at its low end', SCORE, [1], { 积分: 3 }],
  ['unique: range is inclusive at its high end', SCORE, [4], { 积分: 3 }],
  ['unique: above', SCORE, [4.01], { 积分: 5 }],
  ['unique: no default and null gives null', SCORE, [null], null],
  ['unique: a string where a number belongs gives null', SCORE, ['3'], null],
  ['collect: every matching row, in order', COLLECT, [1.5], [{ 积分: 1 }, { 积分: 3 }, { 积分: 9 }]],
  ['collect: != excludes its value', COLLECT, [2], [{ 积分: 1 }, { 积分: 3 }]],
  ['collect: nothing matched and no default is an empty list', COLLECT, [null], []],
  ['collect: the default only when nothing else matched', with_(COLLECT, { rows: ['| < 3 | 1 |', 'default | 0 |'] }), [7], [{ 积分: 0 }]],
  ['collect: the default is left out when a row matched', with_(COLLECT, { rows: ['| < 3 | 1 |', 'default | 0 |'] }), [2], [{ 积分: 1 }]],
  ['enum order: 高 >= 中', ENUMS, ['高'], { x: '上' }],
  ['enum order: 中 >= 中', ENUMS, ['中'], { x: '上' }],
  ['enum order: 低 < 中', ENUMS, ['低'], { x: '下' }],
  ['datetime: before a date', TIMES, ['2023-12-31T23:59:59.999Z', null], { x: 1 }],
  ['datetime: the date itself is not before it', TIMES, ['2024-01-01T00:00:00.000Z', hours(1)], null],
  ['duration: workdays count as days', TIMES, ['2024-06-01T00:00:00.000Z', { ms: 1, workdays: 1 }], { x: 2 }],
  ['duration: 1 workday equals 24 hours', TIMES, ['2024-06-01T00:00:00.000Z', workdays(1)], { x: 3 }],
  ['duration: a malformed duration is treated as null', TIMES, ['2024-06-01T00:00:00.000Z', { ms: '1' }], null],
  ['a row with an invalid cell never matches', with_(SCORE, { hit: 'first', rows: ['| 甲 | 1 |', '| * | 2 |'] }), [3], { 积分: 2 }],
];

describe('compileRules', () => {
  it.each(evaluationCases)('%s', (_title, t, args, expected) => {
    expect(compile(t)(args)).toEqual(expected);
  });

  it.each([
    ['a row', ROUTE, ['维修', '高'], [{ index: 1, line: 3, isDefault: false }]],
    ['the default row', ROUTE, ['环境', '低'], [{ index: 3, line: 5, isDefault: true }]],
    ['no row', SCORE, [null], []],
    ['every collected row', COLLECT, [1.5], [{ index: 0, line: 2, isDefault: false }, { index: 1, line: 3, isDefault: false }, { index: 2, line: 4, isDefault: false }]],
  ] as const)('traces which rows decided: %s', (_title, t, args, hits) => {
    const decl = table(t);
    const run = compileRulesTraced(decl, checkRules(decl, resolve, []));
    expect(run(args).hits).toEqual(hits);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const anyValue: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.constantFrom('平安', '维修', '环境', '其他', '低', '中', '高', '甲', '2024-01-01T00:00:00.000Z'),
  fc.string(),
  fc.double(),
  fc.boolean(),
  fc.record({ ms: fc.double(), workdays: fc.double() }),
  fc.record({ ms: fc.anything() }).map((v) => v as Value),
  fc.jsonValue().map((v) => v as Value),
);

describe('properties', () => {
  const tables = [ROUTE, SCORE, COLLECT, ENUMS, TIMES, DIAGONAL,
    with_(ROUTE, { rows: ['| 平安 | 高 | 1001 |', '| @x | < 高 | 甲 | 1 fortnights |', 'default | * |'] })];
  it.each(tables.map((t, i) => [i, t] as const))('table %i never throws on random inputs', (_i, t) => {
    const run = compile(t);
    fc.assert(fc.property(fc.array(anyValue, { maxLength: 12 }), (args) => {
      const v = run(args);
      expect(v === null || typeof v === 'object').toBe(true);
    }), { numRuns: 300 });
  });

  // Random tables over a number column (integer constants 0..5) and an enum column, checked
  // against brute force on a grid that meets every atom: the integers and the halves between them.
  const numberCell = fc.oneof(
    fc.constant('*'),
    fc.tuple(fc.constantFrom('<', '<=', '>', '>=', '!=', '=='), fc.integer({ min: 0, max: 5 })).map(([op, k]) => `${op} ${k}`),
    fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })).map(([a, b]) => `${a}..${b}`),
    fc.uniqueArray(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 3 }).map((ks) => ks.join(', ')),
  );
  const levels = ['低', '中', '高'] as const;
  const enumCell = fc.oneof(
    fc.constant('*'),
    fc.constantFrom(...levels),
    fc.tuple(fc.constantFrom('<', '>=', '!='), fc.constantFrom(...levels)).map(([op, m]) => `${op} ${m}`),
    fc.tuple(fc.constantFrom(...levels), fc.constantFrom(...levels)).map(([a, b]) => `${a}..${b}`),
    fc.uniqueArray(fc.constantFrom(...levels), { minLength: 1, maxLength: 2 }).map((ms) => ms.join(', ')),
  );
  const randomTable = fc.record({
    hit: fc.constantFrom<HitPolicy>('unique', 'first', 'collect'),
    rows: fc.array(fc.tuple(numberCell, enumCell), { minLength: 1, maxLength: 5 }),
    withDefault: fc.boolean(),
  }).map(({ hit, rows, withDefault }): Table => ({
    inputs: ['n: number', 'e: 低|中|高'],
    outputs: ['row: number'],
    hit,
    rows: [...rows.map(([n, e], i) => `| ${n} | ${e} | ${i} |`), ...(withDefault ? ['default | -1 |'] : [])],
  }));
  const grid: [number, string][] = Array.from({ length: 15 }, (_, i) => (i - 2) / 2).flatMap((n) => levels.map((e): [number, string] => [n, e]));

  it('the analysis agrees with brute force, and evaluation follows the hit policy', () => {
    fc.assert(fc.property(randomTable, (t) => {
      const decl = table(t);
      const out: Diagnostic[] = [];
      const sig = checkRules(decl, resolve, out);
      const all = compileRules({ ...decl, hit: 'collect', rows: decl.rows.filter((r) => !r.isDefault) }, { ...sig, hit: 'collect' });
      const run = compileRules(decl, sig);
      const matched = grid.map((args) => (all(args) as { row: number }[]).map((r) => r.row));
      const n = decl.rows.filter((r) => !r.isDefault).length;
      const hasDefault = n < decl.rows.length;
      const lineOf = (i: number) => i + 2;

      const expected: [string, number][] = [];
      if (t.hit === 'unique') {
        for (let j = 0; j < n; j++) {
          if (matched.some((m) => m.includes(j) && m.some((i) => i < j))) expected.push(['WF0501', lineOf(j)]);
        }
      }
      for (let j = 0; j < n; j++) {
        const alive = t.hit === 'first' ? matched.some((m) => m[0] === j) : matched.some((m) => m.includes(j));
        if (!alive) expected.push(['WF0506', lineOf(j)]);
      }
      const gap = matched.some((m) => m.length === 0);
      if (t.hit !== 'collect' && !hasDefault && gap) expected.push(['WF0502', 1]);
      if (hasDefault && !gap) expected.push(['WF0506', lineOf(n)]);

      const key = (d: [string, number]) => `${d[0]}@${d[1]}`;
      expect(out.map((d) => key([d.code, d.span.start.line])).sort()).toEqual(expected.map(key).sort());

      for (const [g, args] of grid.entries()) {
        const m = matched[g] ?? [];
        const fallback = hasDefault ? [{ row: -1 }] : [];
        const want = t.hit === 'collect'
          ? (m.length > 0 ? m.map((row) => ({ row })) : fallback)
          : (m[0] !== undefined ? { row: m[0] } : fallback[0] ?? null);
        expect(run(args)).toEqual(want);
      }
    }), { numRuns: 400 });
  });
});
