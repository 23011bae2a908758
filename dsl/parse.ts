/**
 * Source text → AST, never throwing: lexer and parser errors become diagnostics, and recovery
 * keeps going so one run reports every syntax error in a draft.
 */
import { EOF, type IRecognitionException, type IToken, type ILexingError } from 'chevrotain';
import type { Document, Expr, Pos, Span } from './ast.ts';
import { diag, sortDiagnostics, type Diagnostic } from './diagnostics.ts';
import { lexer, UnterminatedString } from './tokens.ts';
import { parser } from './parser.ts';
import { AstBuilder } from './to-ast.ts';

export interface ParseResult {
  readonly document: Document;
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * Parses one `.wf` file.
 * @example
 * const { document, diagnostics } = parse('workflow 示例\nstart 甲 by anyone\nfinal 甲', '示例.wf');
 */
export function parse(source: string, file = '<input>'): ParseResult {
  const out: Diagnostic[] = [];
  const lines = lineStarts(source);
  const lexed = lexer.tokenize(source);
  for (const e of lexed.errors) out.push(lexError(e, source, lines));
  for (const t of lexed.tokens) {
    if (t.tokenType === UnterminatedString) {
      out.push(diag('WF0104', tokenSpan(t), `This text has no closing quote: ${t.image.slice(0, 24)}`, 'Close the text on the same line with a matching quote mark.'));
    }
  }
  parser.input = lexed.tokens;
  const cst = parser.document();
  out.push(...parserErrors(parser.errors, lexed.tokens, source, lines));
  const builder = new AstBuilder(file);
  const document = builder.document(cst, source.length, posAt(lines, source.length));
  out.push(...builder.diagnostics);
  return { document, diagnostics: sortDiagnostics(out.map((d) => ({ ...d, file }))) };
}

/**
 * Parses a lone expression, for tests, the console and scenario files.
 * @example parseExpression('case.评价.满意 >= 3')
 */
export function parseExpression(source: string): { readonly expr: Expr; readonly diagnostics: readonly Diagnostic[] } {
  const lines = lineStarts(source);
  const lexed = lexer.tokenize(source);
  const out: Diagnostic[] = lexed.errors.map((e) => lexError(e, source, lines));
  parser.input = lexed.tokens;
  const cst = parser.expression();
  out.push(...parserErrors(parser.errors, lexed.tokens, source, lines));
  const builder = new AstBuilder('<expression>');
  const expr = builder.expr(cst);
  out.push(...builder.diagnostics);
  return { expr, diagnostics: sortDiagnostics(out) };
}

// ---- positions ---------------------------------------------------------------------------

function lineStarts(source: string): number[] {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

function posAt(lines: readonly number[], offset: number): Pos {
  let lo = 0;
  let hi = lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((lines[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, col: offset - (lines[lo] ?? 0) + 1, offset };
}

function tokenSpan(t: IToken): Span {
  return {
    start: { line: t.startLine ?? 1, col: t.startColumn ?? 1, offset: t.startOffset },
    end: { line: t.endLine ?? 1, col: (t.endColumn ?? 0) + 1, offset: (t.endOffset ?? t.startOffset) + 1 },
  };
}

// ---- lexer errors ------------------------------------------------------------------------

function lexError(e: ILexingError, source: string, lines: readonly number[]): Diagnostic {
  const ch = String.fromCodePoint(source.codePointAt(e.offset) ?? 63);
  const start = posAt(lines, e.offset);
  const end = posAt(lines, e.offset + e.length);
  const code = ch.codePointAt(0)?.toString(16).toUpperCase().padStart(4, '0') ?? '';
  const skipped = e.length > ch.length ? ` (and ${e.length - ch.length} more characters)` : '';
  return diag('WF0103', { start, end }, `Unexpected character "${ch}" (U+${code})${skipped}.`,
    'Names use letters, digits and _; texts go in "quotes"; comments start with --.');
}

// ---- parser errors -----------------------------------------------------------------------

/** How tokens read in messages: keywords as written, the rest by what they are. */
const TOKEN_WORDS: Record<string, string> = {
  Identifier: 'a name', StringLiteral: 'a quoted text', QuotedString: 'a quoted text', UnterminatedString: 'a quoted text',
  NumberLiteral: 'a number', Arrow: '"->"', DotDot: '".."', Dot: '"."', Coalesce: '"??"', Question: '"?"', Comma: '","',
  Colon: '":"', Eq: '"=="', Neq: '"!="', Le: '"<="', Ge: '">="', Lt: '"<"', Gt: '">"', Assign: '"="', AndOp: '"&&"', OrOp: '"||"',
  NotOp: '"!"', Plus: '"+"', Minus: '"-"', Star: '"*"', Slash: '"/"', Percent: '"%"', LParen: '"("', RParen: '")"',
  LCurly: '"{"', RCurly: '"}"', LBracket: '"["', RBracket: '"]"', Pipe: '"|"', EOF: 'the end of the file',
};

function word(tokenName: string): string {
  if (tokenName.startsWith('K_')) return `"${tokenName.slice(2)}"`;
  return TOKEN_WORDS[tokenName] ?? tokenName;
}

function found(t: IToken): string {
  if (t.tokenType === EOF) return 'the end of the file';
  const img = t.image.length > 24 ? `${t.image.slice(0, 24)}…` : t.image;
  return /^["“「]/.test(img) ? img : `"${img}"`;
}

/** What chevrotain expected, read from its message (the exception carries only the text). */
function expectedWords(message: string): string[] {
  const single = /-->\s*(\w+)\s*<--/.exec(message);
  if (single?.[1] !== undefined && /Expecting token of type/.test(message)) return [word(single[1])];
  const firsts = new Set<string>();
  for (const m of message.matchAll(/\[(\w+)\]|<\[(\w+)\]/g)) {
    const name = m[1] ?? m[2];
    if (name !== undefined) firsts.add(word(name));
  }
  return [...firsts];
}

/** Hints by the grammar rule the parser was in, innermost first. */
const RULE_HINTS: Record<string, string> = {
  field: 'Write a field as `名称: text`, optionally followed by `?`, `matches "…"`, `range 1..5` or `= 默认值`.',
  typeExpr: 'A type is a name such as text, number, org, or `one of 甲, 乙`, `list of text`, `record { … }`.',
  target: 'Write a target as `-> 状态` with an optional `when 条件` or `otherwise`.',
  onHead: 'An event reads `on 事件 by 角色 with { 字段: 类型 } require 条件 set case.字段 = 值`.',
  afterClause: 'A timer reads `after 2 workdays -> 状态`; reminders: `remind 角色 at 80% "提醒"`.',
  eachClause: 'A multi-unit step reads `each 部门 in case.部门 on 报到 by 负责人 of 部门 join all within 2 workdays -> 下一步 timeout -> 督办`.',
  reminder: 'A reminder reads `remind 角色 at 80% "提醒内容"`.',
  rulesDecl: 'A rule table reads `rules 名称 (输入: 类型, …) -> (输出: 类型, …) first` followed by rows `| … | … |`.',
  ruleRow: 'A row reads `| 值 | 值 | 结果 |`; use * for any value.',
  cell: 'A cell is a value, `*`, a comparison like `>= 3`, a range `1..5` or a list `甲, 乙`.',
  caseDecl: 'Case data reads `case { 字段: 类型, … }`.',
  whoList: 'After `by` name a role (`社区书记`), a role in a unit (`单位书记 of case.单位`), a person (`case.党员`) or `anyone`.',
  who: 'Name a role (`社区书记`), a role in a unit (`单位书记 of case.单位`), a person (`case.党员`) or `anyone`.',
  action: 'Actions: `set case.字段 = 值`, `notify 角色 "消息"`, `credit 5 points to case.党员`, `emit "主题"`, `escalate`, `reassign to 单位`, `extend 2 workdays`.',
  importDecl: 'An import reads `import rules 名称 from "文件.wf"`.',
  rolesDecl: 'Roles read `roles 居民, 社区书记 "社区党组织书记"`.',
  startDecl: 'Start reads `start 状态 by 角色`.',
  workflowHeader: 'The header reads `workflow 名称 "说明"`.',
  stateDecl: 'A state reads `state 名称 "说明"` followed by its `on` and `after` clauses.',
  primary: 'Expected a value: a number, "text", a name, case.字段, a call like len(x), or ( … ).',
};

function ruleHint(e: IRecognitionException): string | undefined {
  const stack = e.context?.ruleStack ?? [];
  for (let i = stack.length - 1; i >= 0; i--) {
    const h = RULE_HINTS[stack[i] ?? ''];
    if (h !== undefined) return h;
  }
  return undefined;
}

function parserErrors(errors: readonly IRecognitionException[], tokens: readonly IToken[], source: string, lines: readonly number[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<number>();
  for (const e of errors) {
    const t = e.token;
    const atEof = t.tokenType === EOF || !Number.isFinite(t.startOffset);
    const raw = expectedWords(e.message);
    // Where any value may start, list the idea rather than a dozen token kinds.
    const expected = raw.includes('a number') && raw.includes('a name') && raw.includes('a quoted text')
      ? ['a value (a number, "text", a name, case.字段 or a call)', ...raw.filter((w) => w.startsWith('"') && ['"*"', '"=="', '"!="', '"<"', '">"', '"<="', '">="'].includes(w))]
      : raw;
    const expectText = expected.length === 0 ? 'something else'
      : expected.length === 1 ? (expected[0] ?? '') : `one of ${expected.slice(0, 8).join(', ')}${expected.length > 8 ? ', …' : ''}`;
    const hint = ruleHint(e);
    const prev = previousRealToken(e, tokens);

    let d: Diagnostic;
    if (atEof) {
      const at = posAt(lines, source.length);
      d = diag('WF0106', { start: at, end: at }, `The file ends where ${expectText} was expected.`, hint);
    } else if (e.name === 'MismatchedTokenException' && prev !== undefined && (prev.endLine ?? 0) < (t.startLine ?? 0)) {
      // The missing piece belongs at the end of the previous line, not on the next one.
      const at = tokenSpan(prev).end;
      d = diag('WF0102', { start: at, end: at }, `Expected ${expectText} after ${found(prev)}.`, hint);
    } else if (e.name === 'MismatchedTokenException' && expected.length === 1 && expected[0] === 'the end of the file') {
      d = diag('WF0101', tokenSpan(t), `Unexpected ${found(t)}: a declaration (workflow, case, start, state, final, rules, …) was expected.`,
        'Every top-level line starts with a keyword such as `state` or `rules`.');
    } else if (e.name === 'MismatchedTokenException') {
      d = diag('WF0101', tokenSpan(t), `Expected ${expectText} but found ${found(t)}.`, hint);
    } else if (e.name === 'NotAllInputParsedException') {
      d = diag('WF0101', tokenSpan(t), `Unexpected ${found(t)}: a declaration (workflow, case, start, state, final, rules, …) was expected.`,
        'Every top-level line starts with a keyword such as `state` or `rules`.');
    } else {
      d = diag('WF0105', tokenSpan(t), `Expected ${expectText} but found ${found(t)}.`, hint);
    }
    if (seen.has(d.span.start.offset)) continue;
    seen.add(d.span.start.offset);
    out.push(d);
  }
  return out;
}

function previousRealToken(e: IRecognitionException, tokens: readonly IToken[]): IToken | undefined {
  const prev = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
  if (prev !== undefined && Number.isFinite(prev.startOffset) && !prev.isInsertedInRecovery) return prev;
  const at = e.token.startOffset;
  if (!Number.isFinite(at)) return tokens[tokens.length - 1];
  let best: IToken | undefined;
  for (const t of tokens) {
    if (t.startOffset >= at) break;
    best = t;
  }
  return best;
}
