/**
 * The golden test: a realistic 五单 draft with ten different mistakes, four of them syntax errors,
 * spread over the file, so error recovery has to carry on after each one and every mistake is
 * reported once, with no cascade. The full output (`line:col CODE message`, one per diagnostic,
 * in order) is kept in `fixtures/ten-mistakes.expected.txt`; run with `UPDATE_GOLDEN=1` to rewrite
 * it after a deliberate change to a message. The positions are also pinned below, by hand, so a
 * rewrite cannot quietly accept a diagnostic that moved.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../dsl/check.ts';
import { CODES } from '../../dsl/codes.ts';
import { positions, showDiagnostic, spanProblems } from './markers.ts';

const SOURCE_PATH = fileURLToPath(new URL('./fixtures/ten-mistakes.wf', import.meta.url));
const GOLDEN_PATH = fileURLToPath(new URL('./fixtures/ten-mistakes.expected.txt', import.meta.url));
const source = readFileSync(SOURCE_PATH, 'utf8');

/** The mistakes as made, with where each must be reported (start line:col, checked by hand). */
const MISTAKES: readonly (readonly [line: number, col: number, code: keyof typeof CODES, what: string])[] = [
  [10, 6, 'WF0101', 'syntax: the field 姓名 has no ":" before its type'],
  [24, 27, 'WF0103', 'syntax: a full-width full stop "。" typed at the end of a line'],
  [27, 10, 'WF0104', 'syntax: the label "待接单 of state 派单 has no closing quote'],
  [30, 14, 'WF0205', 'set case.退回原因, but the field is called 退单原因'],
  [34, 12, 'WF0203', 'by 党员, but the role is called 在职党员'],
  [36, 31, 'WF0102', 'syntax: the timer of 接单 has "->" with no state after it (reported at the end of "->")'],
  [38, 7, 'WF0402', 'state 挂起 only loops back to itself: nothing resumes a suspended order'],
  [43, 53, 'WF0201', 'the timer of 办理 goes to 督办, which is never declared'],
  [47, 17, 'WF0301', '满意 >= "3" compares a number with a text'],
  [48, 5, 'WF0407', 'the targets of 评价 all have `when`, and none is `otherwise`'],
];

describe('ten-mistakes.wf', () => {
  const result = checkSource(source, 'ten-mistakes.wf');
  const lines = result.diagnostics.map(showDiagnostic);

  it('matches the golden output', () => {
    const text = `${lines.join('\n')}\n`;
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(GOLDEN_PATH, text);
    expect(existsSync(GOLDEN_PATH), 'run with UPDATE_GOLDEN=1 to create the golden file').toBe(true);
    expect(text).toBe(readFileSync(GOLDEN_PATH, 'utf8'));
  });

  it('reports each of the ten mistakes once, where it was made, and nothing else', () => {
    const got = result.diagnostics.map((d) => `${d.span.start.line}:${d.span.start.col} ${d.code}`);
    expect(got).toEqual(MISTAKES.map(([line, col, code]) => `${line}:${col} ${code}`));
    expect(result.diagnostics.filter((d) => d.severity === 'error')).toHaveLength(10);
  });

  it('has ten different kinds of mistake, at least three of them syntax errors', () => {
    expect(new Set(MISTAKES.map(([, , code]) => code)).size).toBe(10);
    expect(MISTAKES.filter(([, , code]) => code.startsWith('WF01')).length).toBeGreaterThanOrEqual(3);
  });

  it('gives every diagnostic a message, a hint and a valid span, and no model', () => {
    const at = positions(source);
    for (const d of result.diagnostics) {
      expect(d.message.trim(), showDiagnostic(d)).not.toBe('');
      expect((d.hint ?? '').trim(), showDiagnostic(d)).not.toBe('');
      expect(spanProblems(d.span, source, at), showDiagnostic(d)).toEqual([]);
      expect(d.file).toBe('ten-mistakes.wf');
    }
    expect(result.model).toBeUndefined();
  });
});
