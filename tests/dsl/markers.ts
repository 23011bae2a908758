/**
 * Inline expectation markers for `.wf` test fixtures, and span checks shared by the DSL tests.
 *
 * A marker is a comment line (`--`) that says which diagnostic the line above it must produce:
 *
 * ```
 *   on 提交 by 未知角色 -> 办结
 * --           ^^^^^^^^ WF0203
 * ```
 *
 * - Carets mark the span on the nearest line above that is not itself a marker line (so several
 *   markers can stack under one line). They are aligned as the text looks in a monospace editor:
 *   CJK and full-width characters are two columns wide, so `未知角色` takes eight carets.
 * - `^^^^` is the whole span; `^^^^…` (or `^^^^...`) a span that starts there and ends on a later
 *   line; a single `^` a span that starts there and is empty or one character wide (a missing
 *   token is reported as an empty span where it belongs).
 * - Several codes after one caret run mean several diagnostics with that span.
 * - `-- expect WF0212 at 4:1-5:25`, `-- expect WF0218 at 2:1` (start only) or
 *   `-- expect WF0106 at eof` give a position explicitly, for spans that begin in the first two
 *   columns (which a `--` marker cannot reach) or at the end of the file. Lines are those of the
 *   file as it is, markers included.
 *
 * Marker lines are ordinary comments, so the fixture is checked exactly as written.
 */
import type { Pos, Span } from '../../dsl/ast.ts';
import type { Diagnostic } from '../../dsl/diagnostics.ts';

/** One expected diagnostic: its code and 1-based position; `end` is undefined when not pinned. */
export interface Expected {
  readonly code: string;
  readonly line: number;
  readonly col: number;
  /** An exact end, or 'later' for a span that ends on a later line, or 'narrow' for a lone caret. */
  readonly end?: { readonly line: number; readonly col: number } | 'later' | 'narrow';
  /** The 1-based line of the marker itself, for messages. */
  readonly markerLine: number;
}

/** Whether a code point is drawn two columns wide (East Asian Wide and Fullwidth, and emoji). */
export function isWide(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd);
}

/** The display width of a text. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += isWide(ch.codePointAt(0) ?? 0) ? 2 : 1;
  return w;
}

/** The 1-based UTF-16 column of the character that begins at display column `dcol` (0-based), if any. */
function columnAtDisplay(line: string, dcol: number): number | undefined {
  let w = 0;
  let i = 0;
  for (const ch of line) {
    if (w === dcol) return i + 1;
    if (w > dcol) return undefined;
    w += isWide(ch.codePointAt(0) ?? 0) ? 2 : 1;
    i += ch.length;
  }
  return w === dcol ? i + 1 : undefined;
}

const CARET = /^--( *)(\^+)(…|\.\.\.)?((?:\s+WF\d{4})+)\s*$/;
const EXPLICIT = /^--\s*expect\s+((?:WF\d{4}\s+)+)at\s+(?:(eof)|(\d+):(\d+)(?:-(\d+):(\d+))?)\s*$/;
const CODE = /WF\d{4}/g;

/** Whether a line is a marker line (caret or explicit). */
export function isMarkerLine(line: string): boolean {
  return CARET.test(line) || EXPLICIT.test(line);
}

/**
 * Reads the markers of a fixture. Throws on a caret that does not start (or end) at a character
 * boundary of the line it marks, so a misaligned marker is a broken fixture, not a silent pass.
 */
export function readMarkers(source: string): Expected[] {
  const lines = source.split('\n');
  const out: Expected[] = [];
  lines.forEach((text, i) => {
    const markerLine = i + 1;
    const ex = EXPLICIT.exec(text);
    if (ex !== null) {
      const codes = (ex[1] ?? '').match(CODE) ?? [];
      const at = ex[2] === 'eof' ? posAt(source, source.length) : { line: Number(ex[3]), col: Number(ex[4]) };
      const end = ex[5] === undefined ? undefined : { line: Number(ex[5]), col: Number(ex[6]) };
      for (const code of codes) out.push({ code, line: at.line, col: at.col, ...(end === undefined ? {} : { end }), markerLine });
      return;
    }
    const m = CARET.exec(text);
    if (m === null) return;
    let target = i - 1;
    while (target >= 0 && isMarkerLine(lines[target] ?? '')) target--;
    const src = lines[target];
    if (src === undefined) throw new Error(`marker on line ${markerLine} has no line above it to mark`);
    const startD = 2 + (m[1] ?? '').length;
    const width = (m[2] ?? '').length;
    const col = columnAtDisplay(src, startD);
    if (col === undefined) throw new Error(`marker on line ${markerLine}: display column ${startD + 1} is not the start of a character of line ${target + 1}`);
    let end: Expected['end'];
    if (m[3] !== undefined) end = 'later';
    else if (width === 1) end = 'narrow';
    else {
      const endCol = columnAtDisplay(src, startD + width);
      if (endCol === undefined) throw new Error(`marker on line ${markerLine}: its carets do not end at a character boundary of line ${target + 1}`);
      end = { line: target + 1, col: endCol };
    }
    for (const code of (m[4] ?? '').match(CODE) ?? []) out.push({ code, line: target + 1, col, end, markerLine });
  });
  return out;
}

/** Whether a diagnostic is the one a marker expects. */
export function matchesMarker(d: Diagnostic, e: Expected): boolean {
  const s = d.span;
  if (d.code !== e.code || s.start.line !== e.line || s.start.col !== e.col) return false;
  if (e.end === undefined) return true;
  if (e.end === 'later') return s.end.line > s.start.line;
  if (e.end === 'narrow') return s.end.line === s.start.line && s.end.col - s.start.col <= 1;
  return s.end.line === e.end.line && s.end.col === e.end.col;
}

/** A diagnostic as one line, the way the golden files and failure messages show it. */
export function showDiagnostic(d: Diagnostic): string {
  return `${d.span.start.line}:${d.span.start.col} ${d.code} ${d.message}`;
}

/** The 1-based position of a 0-based UTF-16 offset. */
export function posAt(source: string, offset: number): Pos {
  return positions(source)(offset);
}

/** A position lookup for one source, with its line starts computed once. */
export function positions(source: string): (offset: number) => Pos {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (starts[lo] ?? 0) + 1, offset };
  };
}

/**
 * Problems with a span in a source, or an empty list: positions are whole, 1-based, inside the
 * text, consistent with their offsets, and the end is not before the start.
 * @example spanProblems(d.span, source, positions(source)) // []
 */
export function spanProblems(span: Span, source: string, at: (offset: number) => Pos = positions(source)): string[] {
  const problems: string[] = [];
  for (const [which, p] of [['start', span.start], ['end', span.end]] as const) {
    if (!Number.isInteger(p.line) || !Number.isInteger(p.col) || !Number.isInteger(p.offset)) {
      problems.push(`${which} ${JSON.stringify(p)} is not whole numbers`);
      continue;
    }
    if (p.line < 1 || p.col < 1) problems.push(`${which} ${p.line}:${p.col} is not 1-based`);
    if (p.offset < 0 || p.offset > source.length) problems.push(`${which} offset ${p.offset} is outside the text (length ${source.length})`);
    else {
      const q = at(p.offset);
      if (q.line !== p.line || q.col !== p.col) problems.push(`${which} ${p.line}:${p.col} does not match its offset ${p.offset} (which is ${q.line}:${q.col})`);
    }
  }
  if (span.end.offset < span.start.offset) problems.push(`end offset ${span.end.offset} is before start offset ${span.start.offset}`);
  return problems;
}
