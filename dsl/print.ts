/**
 * Prints AST expressions back as DSL source, with only the parentheses the grammar needs, so
 * `parseExpression(printExpr(e))` gives `e` again (spans aside). Diagrams, messages and the
 * console show conditions this way rather than as trees.
 *
 * Precedence follows `parser.ts`, loosest first: `if … then … else` (only where a whole
 * expression may stand), `or`, `and`, `not`, comparisons and `in` (not chainable), `??`,
 * `+ -`, `* / %`, unary `-`, then member access, indexing and primaries.
 */
import type { BinaryOp, Expr, ExprKind } from './ast.ts';

const IF = 0;
const NOT = 3;
const COMPARE = 4;
const NEG = 8;
const POSTFIX = 9;
const PRIMARY = 10;

const BINARY: Readonly<Record<BinaryOp, number>> = {
  or: 1, and: 2,
  '==': COMPARE, '!=': COMPARE, '<': COMPARE, '<=': COMPARE, '>': COMPARE, '>=': COMPARE, in: COMPARE,
  '??': 5, '+': 6, '-': 6, '*': 7, '/': 7, '%': 7,
};

type Printer<K extends ExprKind> = (e: Extract<Expr, { kind: K }>) => { readonly text: string; readonly prec: number };

/** One printer per node kind: a new kind of expression fails to compile until it is printed. */
const PRINTERS: { readonly [K in ExprKind]: Printer<K> } = {
  number: (e) => ({ text: printNumber(e.value), prec: e.value < 0 ? NEG : PRIMARY }),
  string: (e) => ({ text: quote(e.value), prec: PRIMARY }),
  bool: (e) => ({ text: e.value ? 'true' : 'false', prec: PRIMARY }),
  null: () => ({ text: 'null', prec: PRIMARY }),
  duration: (e) => ({ text: `${printNumber(e.amount)} ${e.unit.text}`, prec: e.amount < 0 ? NEG : PRIMARY }),
  ref: (e) => ({ text: e.name.text, prec: PRIMARY }),
  member: (e) => ({ text: `${at(e.object, POSTFIX)}.${e.property.text}`, prec: POSTFIX }),
  index: (e) => ({ text: `${at(e.object, POSTFIX)}[${at(e.index, IF)}]`, prec: POSTFIX }),
  call: (e) => ({ text: `${e.callee.text}(${e.args.map((a) => at(a, IF)).join(', ')})`, prec: PRIMARY }),
  list: (e) => ({ text: `[${e.items.map((a) => at(a, IF)).join(', ')}]`, prec: PRIMARY }),
  unary: (e) => {
    if (e.op === 'not') return { text: `not ${at(e.operand, NOT)}`, prec: NOT };
    const operand = at(e.operand, NEG);
    // `--` starts a comment, so a minus before another minus needs a space.
    return { text: operand.startsWith('-') ? `- ${operand}` : `-${operand}`, prec: NEG };
  },
  binary: (e) => {
    const p = BINARY[e.op];
    // Left-associative, except comparisons, which do not chain: `(a == b) == c` keeps its parentheses.
    const left = at(e.left, p === COMPARE ? p + 1 : p);
    const right = at(e.right, p + 1);
    return { text: `${left} ${e.op} ${right}`, prec: p };
  },
  if: (e) => ({ text: `if ${at(e.test, IF)} then ${at(e.then, IF)} else ${at(e.else, IF)}`, prec: IF }),
  error: () => ({ text: '…', prec: PRIMARY }),
};

function print(e: Expr): { readonly text: string; readonly prec: number } {
  return (PRINTERS[e.kind] as Printer<typeof e.kind>)(e as never);
}

/** Prints `e` where the grammar expects precedence `min` or tighter, wrapping it in parentheses otherwise. */
function at(e: Expr, min: number): string {
  const { text, prec } = print(e);
  return prec < min ? `(${text})` : text;
}

/**
 * Prints an expression as DSL source with minimal parentheses.
 * @example
 * printExpr(parseExpression('(分 >= 3) and (not case.满意 == null)').expr) // '分 >= 3 and not case.满意 == null'
 */
export function printExpr(expr: Expr): string {
  return print(expr).text;
}

/**
 * A number as the lexer reads it: digits with an optional fraction, never an exponent.
 * @example printNumber(1e21) // '1000000000000000000000'
 */
export function printNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  const plain = String(abs);
  if (!plain.includes('e')) return sign + plain;
  if (Number.isInteger(abs)) return sign + BigInt(abs).toString();
  for (let digits = 1; digits <= 100; digits++) {
    const fixed = abs.toFixed(digits);
    if (Number(fixed) === abs) return sign + fixed;
  }
  return sign + plain;
}

/**
 * A text as a `"…"` literal, escaping what `unquote` in `to-ast.ts` reads back.
 * @example quote('说 "好"') // '"说 \\"好\\""'
 */
export function quote(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
