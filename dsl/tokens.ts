/**
 * Tokens of the workflow language. Identifiers are Unicode (Chinese names work everywhere);
 * keywords are ASCII words that win over identifiers only as whole words (`states` is a name).
 * Full-width punctuation typed with a Chinese input method (，：（）) reads like its ASCII twin.
 *
 * chevrotain rebuilds token RegExps without the `u` flag, so Unicode patterns are custom matchers
 * over sticky `uy` expressions (DESIGN.md §6).
 */
import { createToken, Lexer, type TokenType, type CustomPatternMatcherFunc } from 'chevrotain';

function sticky(source: string): CustomPatternMatcherFunc {
  const re = new RegExp(source, 'uy');
  return (text, offset) => {
    re.lastIndex = offset;
    return re.exec(text);
  };
}

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\u00a0\u3000\ufeff]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /(?:--|\/\/)[^\n]*/, group: Lexer.SKIPPED });

/**
 * Every UTF-16 unit an identifier can start with: BMP letters, `_`, and high surrogates (the first
 * half of a letter outside the BMP, such as CJK Extension B). Handing these to chevrotain keeps its
 * first-character dispatch on, which a custom matcher otherwise turns off for the whole lexer.
 */
function identifierStarts(): number[] {
  const starts: number[] = [];
  const letter = /[\p{L}_]/u;
  for (let c = 0; c <= 0xffff; c++) {
    if ((c >= 0xd800 && c <= 0xdbff) || letter.test(String.fromCharCode(c))) starts.push(c);
  }
  return starts;
}

export const Identifier = createToken({
  name: 'Identifier',
  pattern: sticky('[\\p{L}_][\\p{L}\\p{N}\\p{M}_]*'),
  line_breaks: false,
  start_chars_hint: identifierStarts(),
});

/** Category shared by terminated and unterminated strings, so the parser goes on after the latter. */
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: Lexer.NA });
export const QuotedString = createToken({
  name: 'QuotedString',
  pattern: /"(?:[^"\\\n]|\\.)*"|“[^”\n]*”|「[^」\n]*」/,
  categories: [StringLiteral],
});
/** A string missing its closing quote on its line; reported as WF0104. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n]|\\.)*|“[^”\n]*|「[^」\n]*/,
  categories: [StringLiteral],
});

export const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: /\d+(?:\.\d+)?/ });

const keywordNames = [
  'workflow', 'roles', 'import', 'from', 'type', 'record', 'case', 'start', 'state', 'final', 'rules',
  'on', 'by', 'of', 'with', 'require', 'set', 'when', 'otherwise', 'after', 'remind', 'at',
  'escalate', 'reassign', 'extend', 'notify', 'credit', 'points', 'to', 'emit',
  'each', 'in', 'join', 'all', 'any', 'least', 'within', 'timeout',
  'one', 'list', 'matches', 'range', 'length',
  'and', 'or', 'not', 'true', 'false', 'null', 'if', 'then', 'else',
  'unique', 'first', 'collect', 'default', 'anyone',
] as const;

export type KeywordName = (typeof keywordNames)[number];

function keyword(word: KeywordName): TokenType {
  const name = `K_${word}`;
  return createToken({ name, pattern: new RegExp(word), longer_alt: Identifier });
}

/** Keyword tokens by their word. */
export const K = Object.fromEntries(keywordNames.map((w) => [w, keyword(w)])) as Record<KeywordName, TokenType>;

// Longest keywords first, so `one` is not read as `on` + `e`; `longer_alt: Identifier` then lets a
// longer word (`online`, `state名`) win over any keyword that is its prefix.
const keywordsLongestFirst = [...keywordNames].sort((a, b) => b.length - a.length);

export const Arrow = createToken({ name: 'Arrow', pattern: /->|→/ });
export const DotDot = createToken({ name: 'DotDot', pattern: /\.\./ });
export const Dot = createToken({ name: 'Dot', pattern: /\?\.|\./ });
export const Coalesce = createToken({ name: 'Coalesce', pattern: /\?\?/ });
export const Question = createToken({ name: 'Question', pattern: /[?？]/ });
export const Comma = createToken({ name: 'Comma', pattern: /[,，、]/ });
export const Colon = createToken({ name: 'Colon', pattern: /[:：]/ });
export const Eq = createToken({ name: 'Eq', pattern: /==/ });
export const Neq = createToken({ name: 'Neq', pattern: /!=/ });
export const Le = createToken({ name: 'Le', pattern: /<=/ });
export const Ge = createToken({ name: 'Ge', pattern: />=/ });
export const Lt = createToken({ name: 'Lt', pattern: /</ });
export const Gt = createToken({ name: 'Gt', pattern: />/ });
export const Assign = createToken({ name: 'Assign', pattern: /=/ });
export const AndOp = createToken({ name: 'AndOp', pattern: /&&/ });
export const OrOp = createToken({ name: 'OrOp', pattern: /\|\|/ });
export const NotOp = createToken({ name: 'NotOp', pattern: /!/ });
export const Plus = createToken({ name: 'Plus', pattern: /\+/ });
export const Minus = createToken({ name: 'Minus', pattern: /-/ });
export const Star = createToken({ name: 'Star', pattern: /\*/ });
export const Slash = createToken({ name: 'Slash', pattern: /\// });
export const Percent = createToken({ name: 'Percent', pattern: /[%％]/ });
export const LParen = createToken({ name: 'LParen', pattern: /[(（]/ });
export const RParen = createToken({ name: 'RParen', pattern: /[)）]/ });
export const LCurly = createToken({ name: 'LCurly', pattern: /\{/ });
export const RCurly = createToken({ name: 'RCurly', pattern: /\}/ });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/ });
export const RBracket = createToken({ name: 'RBracket', pattern: /\]/ });
export const Pipe = createToken({ name: 'Pipe', pattern: /[|｜]/ });

/** Order matters: comments before `-`/`/`, longer operators before their prefixes, keywords before identifiers. */
export const allTokens: TokenType[] = [
  WhiteSpace, Comment,
  StringLiteral, QuotedString, UnterminatedString,
  NumberLiteral,
  Arrow, DotDot, Dot, Coalesce, Question, Comma, Colon,
  Eq, Neq, Le, Ge, Lt, Gt, Assign, AndOp, OrOp, NotOp,
  Plus, Minus, Star, Slash, Percent,
  LParen, RParen, LCurly, RCurly, LBracket, RBracket, Pipe,
  ...keywordsLongestFirst.map((w) => K[w]),
  Identifier,
];

// Lines end at \n only (a \r before it is white space), the same rule parse.ts uses for positions,
// so a stray \r cannot make the lexer's line numbers disagree with the diagnostics'.
export const lexer = new Lexer(allTokens, {
  positionTracking: 'full',
  ensureOptimizations: false,
  lineTerminatorsPattern: /\n/g,
  lineTerminatorCharacters: ['\n'],
});
