/**
 * Opaque paging cursors: the parts of a position as base64url JSON, so they travel in URLs and
 * `Last-Event-ID` headers untouched, and are refused with one error when they were not handed out.
 */
import { EngineError } from './errors.ts';

/**
 * A cursor for the parts of a position.
 * @example encodeCursor(['1772413200000000', 'c-1']) // 'WyIxNzcyNDEzMjAwMDAwMDAwIiwiYy0xIl0'
 */
export function encodeCursor(parts: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

/**
 * The position of a cursor, when `accept` takes its parts (and answers undefined otherwise);
 * VALIDATION_FAILED naming `field` for anything else, saying `who` handed cursors out.
 * @example decodeCursor(c, { who: 'this list', field: 'cursor', hint: 'Pass back `nextCursor` …' }, ([a, b]) => …)
 */
export function decodeCursor<T>(cursor: string, refusal: { readonly who: string; readonly field: string; readonly hint: string }, accept: (parts: readonly unknown[]) => T | undefined): T {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const taken = Array.isArray(v) ? accept(v) : undefined;
    if (taken !== undefined) return taken;
  } catch {
    // fall through to the refusal
  }
  throw new EngineError('VALIDATION_FAILED', `The cursor is not one ${refusal.who} handed out.`, {
    fields: [{ path: refusal.field, code: 'type', message: refusal.hint }],
  });
}

/** The hint for a page cursor: give back what the previous page said. */
export const PAGE_CURSOR_HINT = 'Pass back `nextCursor` from the previous page unchanged.';

/**
 * A case's paging key as a cursor carries it: its creation time in microseconds since the epoch
 * (up to about the year 5000, so that the database can turn it back into a time).
 */
export const CREATED_US = /^[0-9]{1,17}$/;
