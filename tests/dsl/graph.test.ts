import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BinaryOp, Expr, Name, Span } from '../../dsl/ast.ts';
import { checkSource } from '../../dsl/check.ts';
import { compile, type CompiledDefinition } from '../../dsl/compile.ts';
import { toDot, toMermaid, toSvg } from '../../dsl/graph.ts';
import { parseExpression } from '../../dsl/parse.ts';
import { printExpr, printNumber, quote } from '../../dsl/print.ts';

const SOURCE = `
workflow 测试 "测试流程"
roles 书记, 党员
case { 社区: org, 单位: org?, 党员: actor?, 满意: number?, 部门: list of org }
start 待派单 by anyone
state 待派单 "社区派单"
  on 派单 "派单" by 书记 with { 单位: org } set case.单位 = 单位 -> 待接单
  after 2 workdays remind 书记 at 80% "快: {请} <派单>; #1" escalate -> 待派单
state 待接单
  on 抢单 by 党员 of case.单位 set case.党员 = actor -> 评单
  on 退单 by 党员 of case.单位 -> 待派单
  after 24 hours -> 报到
state 报到
  each 部门 in case.部门 on 报到 by 书记 of 部门 join all within 2 workdays -> 评单 timeout -> 评单
state 评单
  on 评价 by submitter with { 分: number range 1..5 } set case.满意 = 分 -> 办结 when 分 >= 3 credit 5 points to case.党员 -> 待接单 otherwise
  after 3 days -> 办结
final 办结
`;

function definition(): CompiledDefinition {
  const { model, diagnostics } = checkSource(SOURCE, '测试.wf');
  if (model === undefined) throw new Error(`sample does not check:\n${diagnostics.map((d) => `${d.code} ${d.message}`).join('\n')}`);
  return compile(model);
}

const STATES = ['待派单', '待接单', '报到', '评单', '办结'];

/** Mermaid's `sN` id for each state, read back from the `state "…" as sN` lines. */
function mermaidIds(text: string): Map<string, string> {
  const ids = new Map<string, string>();
  for (const m of text.matchAll(/^ {2}state "([^"]*)" as (s\d+)$/gm)) ids.set((m[1] ?? '').split('<br/>')[0] ?? '', m[2] ?? '');
  return ids;
}

describe('toMermaid', () => {
  const text = toMermaid(definition());
  const ids = mermaidIds(text);
  const id = (state: string): string => ids.get(state) ?? `missing ${state}`;
  const edges = (from: string, to: string): string[] =>
    text.split('\n').filter((l) => l.startsWith(`  ${id(from)} --> ${id(to)} : `)).map((l) => l.slice(l.indexOf(' : ') + 3));

  it('declares every state with a safe id, its name and its label', () => {
    expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
    expect([...ids.keys()].sort()).toEqual([...STATES].sort());
    expect(text).toContain(`state "待派单<br/>社区派单" as ${id('待派单')}`);
    expect(text).toContain(`[*] --> ${id('待派单')} : start by anyone`);
    expect(text).toContain(`${id('办结')} --> [*]`);
  });

  it('draws every transition with its event, senders, condition and effects', () => {
    expect(edges('待派单', '待接单')).toEqual(['派单<br/>by 书记']);
    expect(edges('待接单', '评单')).toEqual(['抢单<br/>by 党员 of case.单位']);
    expect(edges('待接单', '待派单')).toEqual(['退单<br/>by 党员 of case.单位']);
    expect(edges('评单', '办结')).toEqual(['评价<br/>by submitter<br/>when 分 #gt;= 3', 'after 3 days']);
    expect(edges('评单', '待接单')).toEqual(['评价<br/>by submitter<br/>otherwise']);
  });

  it('shows timers, the escalating self-loop and reminders as notes, not edges', () => {
    expect(edges('待派单', '待派单')).toEqual(['after 2 workdays<br/>escalate']);
    expect(edges('待接单', '报到')).toEqual(['after 24 hours']);
    expect(text).toContain(`note right of ${id('待派单')} : remind 书记 at 80% #quot;快#58; #123;请#125; #lt;派单#gt;#59; #35;1#quot;`);
  });

  it('labels a multi-unit step by its join and its timeout', () => {
    expect(edges('报到', '评单')).toEqual([
      'each 部门 in case.部门<br/>报到 by 书记 of 部门<br/>join all within 2 workdays',
      'timeout (2 workdays)',
    ]);
  });

  it('leaves no character Mermaid chokes on outside entity codes', () => {
    const labels = text.split('\n').flatMap((line) => {
      const state = /^ {2}state "(.*)" as s\d+$/.exec(line);
      if (state) return [state[1] ?? ''];
      const i = line.indexOf(' : ');
      return i >= 0 && !line.includes('classDef') ? [line.slice(i + 3)] : [];
    });
    expect(labels.length).toBeGreaterThan(10);
    for (const label of labels) {
      const bare = label.replaceAll('<br/>', '').replace(/#(?:\w+);/g, '');
      expect(bare).not.toMatch(/[:"<>#;{}]/);
    }
  });
});

describe('toDot', () => {
  const dot = toDot(definition());

  it('is a left-to-right digraph with a start point, rounded boxes and a double circle for the end', () => {
    expect(dot).toMatch(/^digraph "测试流程" \{\n/);
    expect(dot).toContain('rankdir=LR');
    expect(dot).toContain('fontname="Noto Sans CJK SC, sans-serif"');
    expect(dot).toContain('style=rounded');
    expect(dot).toContain('__start [shape=point');
    expect(dot).toMatch(/s\d+ \[label=<<b>办结<\/b>>, shape=doublecircle, style=bold\];/);
    for (const s of STATES) expect(dot).toContain(`<b>${s}</b>`);
  });

  it('labels edges as Mermaid does, with quotes and markup escaped', () => {
    expect(dot).toContain('[label="评价\\nby submitter\\nwhen 分 >= 3"]');
    expect(dot).toContain('[label="after 2 workdays\\nescalate", style=dashed]');
    expect(dot).toContain('label="timeout (2 workdays)", style=dashed');
    expect(dot).toContain('remind 书记 at 80% &quot;快: {请} &lt;派单&gt;; #1&quot;');
  });
});

describe('toSvg', () => {
  it('renders well-formed SVG holding the state names', async () => {
    const svg = await toSvg(definition());
    expect(svg.trimStart()).toMatch(/^(<\?xml|<svg)/);
    expect(svg).toContain('</svg>');
    for (const s of STATES) expect(svg).toContain(`>${s}</text>`);
    expect(svg).toContain('when 分 &gt;= 3');
    // The cached Graphviz instance draws again.
    expect(await toSvg(definition())).toBe(svg);
  });
});

// ---------------------------------------------------------------------------------------------
// printExpr: parse → print → parse gives the same tree.

function withoutSpans(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(withoutSpans);
  if (x !== null && typeof x === 'object') {
    return Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'span').map(([k, v]) => [k, withoutSpans(v)]));
  }
  return x;
}

function parsed(src: string): Expr {
  const { expr, diagnostics } = parseExpression(src);
  expect(diagnostics, src).toEqual([]);
  return expr;
}

describe('printExpr', () => {
  it.each([
    ['分 >= 3', '分 >= 3'],
    ['(a + b) * c', '(a + b) * c'],
    ['a + (b * c)', 'a + b * c'],
    ['a - (b - c)', 'a - (b - c)'],
    ['(a - b) - c', 'a - b - c'],
    ['a ?? (b ?? c)', 'a ?? (b ?? c)'],
    ['(a == b) == c', '(a == b) == c'],
    ['a == (b == c)', 'a == (b == c)'],
    ['a or b and c', 'a or b and c'],
    ['(a or b) and c', '(a or b) and c'],
    ['a || (b || c)', 'a or (b or c)'],
    ['not (a and b)', 'not (a and b)'],
    ['!(a == b)', 'not a == b'],
    ['not not a', 'not not a'],
    ['a == (not b)', 'a == (not b)'],
    ['-(-x)', '- -x'],
    ['-(a + b)', '-(a + b)'],
    ['-3 * -x', '-3 * -x'],
    ['a - -b', 'a - -b'],
    ['(-a).b', '(-a).b'],
    ['x in [1, 2.5, "三"]', 'x in [1, 2.5, "三"]'],
    ['case.评价.满意 >= 3 and len(case.部门) > 0', 'case.评价.满意 >= 3 and len(case.部门) > 0'],
    ['x[0].y[i + 1]', 'x[0].y[i + 1]'],
    ['f()', 'f()'],
    ['[]', '[]'],
    ['now + 2 workdays + 3 hours', 'now + 2 workdays + 3 hours'],
    ['"说 \\"好\\"\\n下\\\\一行"', '"说 \\"好\\"\\n下\\\\一行"'],
    ['“中文引号”', '"中文引号"'],
    ['if a then b else c', 'if a then b else c'],
    ['(if a then 1 else 2) + 1', '(if a then 1 else 2) + 1'],
    ['if a then if b then 1 else 2 else 3', 'if a then if b then 1 else 2 else 3'],
    ['f(if a then 1 else 2, [x ?? 0])', 'f(if a then 1 else 2, [x ?? 0])'],
    ['(((a)))', 'a'],
    ['true and false or null == x', 'true and false or null == x'],
    ['a % b / c', 'a % b / c'],
  ])('%s prints as %s and parses back the same', (src, printed) => {
    const expr = parsed(src);
    expect(printExpr(expr)).toBe(printed);
    expect(withoutSpans(parsed(printExpr(expr)))).toEqual(withoutSpans(expr));
  });

  it('writes numbers without exponents and texts with escapes the lexer reads', () => {
    expect(printNumber(1e21)).toBe('1000000000000000000000');
    expect(printNumber(1e-7)).toBe('0.0000001');
    expect(printNumber(-2.5)).toBe('-2.5');
    expect(quote('a\tb\u0001')).toBe('"a\\tb\\u0001"');
  });

  it('round-trips any expression tree', () => {
    const span: Span = { start: { line: 1, col: 1, offset: 0 }, end: { line: 1, col: 1, offset: 0 } };
    const name = (text: string): Name => ({ kind: 'name', text, span });
    const ident = fc.constantFrom('a', 'b', '甲', '满意', 'x_1');
    const ops: BinaryOp[] = ['or', 'and', '??', '==', '!=', '<', '<=', '>', '>=', 'in', '+', '-', '*', '/', '%'];
    const { expr } = fc.letrec<{ expr: Expr }>((tie) => ({
      expr: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.oneof(fc.nat(), fc.nat().map((n) => n / 8), fc.constant(1e21)).map((value): Expr => ({ kind: 'number', value, span })),
        fc.string().map((value): Expr => ({ kind: 'string', value, bare: false, span })),
        fc.boolean().map((value): Expr => ({ kind: 'bool', value, span })),
        fc.constant<Expr>({ kind: 'null', span }),
        fc.tuple(fc.nat(100), fc.constantFrom('workdays', 'hours', '天')).map(([amount, unit]): Expr => ({ kind: 'duration', amount, unit: name(unit), span })),
        fc.oneof(ident, fc.constant('case')).map((text): Expr => ({ kind: 'ref', name: name(text), span })),
        fc.tuple(tie('expr'), ident).map(([object, p]): Expr => ({ kind: 'member', object, property: name(p), span })),
        fc.tuple(tie('expr'), tie('expr')).map(([object, index]): Expr => ({ kind: 'index', object, index, span })),
        fc.tuple(ident, fc.array(tie('expr'), { maxLength: 3 })).map(([callee, args]): Expr => ({ kind: 'call', callee: name(callee), args, span })),
        fc.tuple(fc.constantFrom('not' as const, '-' as const), tie('expr')).map(([op, operand]): Expr => ({ kind: 'unary', op, operand, span })),
        fc.tuple(fc.constantFrom(...ops), tie('expr'), tie('expr')).map(([op, left, right]): Expr => ({ kind: 'binary', op, left, right, span })),
        fc.tuple(tie('expr'), tie('expr'), tie('expr')).map(([test, then, otherwise]): Expr => ({ kind: 'if', test, then, else: otherwise, span })),
        fc.array(tie('expr'), { maxLength: 3 }).map((items): Expr => ({ kind: 'list', items, span })),
      ),
    }));
    fc.assert(fc.property(expr, (e) => {
      const back = parseExpression(printExpr(e));
      expect(back.diagnostics).toEqual([]);
      expect(withoutSpans(back.expr)).toEqual(withoutSpans(e));
    }), { numRuns: 500 });
  });
});
