/**
 * The one diagnostic shape, used by the CLI, the HTTP API's 422 bodies and the tests.
 * Codes are stable: a code once published is never reused for another meaning.
 *
 * Ranges: WF01xx syntax, WF02xx names and references, WF03xx types and expressions,
 * WF04xx flow (reachability, closed loop), WF05xx decision tables, WF06xx timers and
 * multi-instance steps, WF07xx scenarios, WF09xx internal.
 */
import type { Span } from './ast.ts';
import { CODES, type Code } from './codes.ts';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  /** Stable code such as `WF0201`. */
  readonly code: string;
  readonly severity: Severity;
  /** What is wrong, in a sentence. */
  readonly message: string;
  /** What to do about it. */
  readonly hint?: string;
  /** The file the span refers to, when known. */
  readonly file?: string;
  readonly span: Span;
}

/** A span at the start of a file, for diagnostics about a whole file. */
export const FILE_START: Span = {
  start: { line: 1, col: 1, offset: 0 },
  end: { line: 1, col: 1, offset: 0 },
};

/**
 * Builds a diagnostic.
 * @example diag('WF0201', span, 'Unknown state "办理".', 'Declare it with `state 办理`.')
 */
export function diag(code: Code, span: Span, message: string, hint?: string): Diagnostic {
  const severity: Severity = CODES[code].severity;
  return hint === undefined ? { code, severity, message, span } : { code, severity, message, hint, span };
}

/** Errors first is not wanted: diagnostics are shown in source order, the way an editor lists them. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) =>
    (a.file ?? '').localeCompare(b.file ?? '') ||
    a.span.start.offset - b.span.start.offset ||
    a.code.localeCompare(b.code));
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}
