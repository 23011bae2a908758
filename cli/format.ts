/**
 * Diagnostics as a person reads them in a terminal: `file:line:col`, severity, code and message,
 * the source line with a caret under the span, and the hint.
 */
import type { Diagnostic } from '../dsl/diagnostics.ts';

/** Terminal columns taken by a string: CJK and full-width characters take two. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp === 9) w += 4;
    else if (cp < 32 || (cp >= 0x300 && cp <= 0x36f)) w += 0;
    else if (
      (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
      (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
    ) w += 2;
    else w += 1;
  }
  return w;
}

export interface FormatOptions {
  readonly color?: boolean;
}

/**
 * Formats one diagnostic with a caret excerpt of `source`.
 * @example
 * formatDiagnostic(d, source)
 * // workflows/五单服务.wf:12:8: error WF0201: Unknown state "办里".
 * //    12 |   -> 办里
 * //       |      ^^^^
 * //   hint: Did you mean "办理"?
 */
export function formatDiagnostic(d: Diagnostic, source: string | undefined, opts: FormatOptions = {}): string {
  const c = opts.color === true;
  const paint = (code: string, s: string): string => (c ? `\u001b[${code}m${s}\u001b[0m` : s);
  const sev = d.severity === 'error' ? paint('31;1', 'error') : paint('33;1', 'warning');
  const where = `${d.file ?? '<input>'}:${d.span.start.line}:${d.span.start.col}`;
  const lines = [`${paint('1', where)}: ${sev} ${d.code}: ${d.message}`];
  const text = source?.split('\n')[d.span.start.line - 1];
  if (text !== undefined) {
    const lineNo = String(d.span.start.line);
    const gutter = ' '.repeat(lineNo.length);
    const shown = text.replace(/\r$/, '');
    const startCol = Math.max(1, d.span.start.col);
    const endCol = d.span.end.line === d.span.start.line ? Math.max(d.span.end.col, startCol + 1) : shown.length + 1;
    const before = shown.slice(0, startCol - 1);
    const under = shown.slice(startCol - 1, endCol - 1);
    const caret = '^'.repeat(Math.max(1, displayWidth(under)));
    lines.push(`  ${lineNo} | ${shown}`);
    lines.push(`  ${gutter} | ${' '.repeat(displayWidth(before))}${paint(d.severity === 'error' ? '31' : '33', caret)}`);
  }
  if (d.hint !== undefined) lines.push(`  ${paint('36', 'hint')}: ${d.hint}`);
  return lines.join('\n');
}
