/** Why the store refused or failed an operation; codes are stable and never reused. */
export type StoreErrorCode =
  | 'STORE_INVALID_OPTIONS'
  | 'STORE_CONNECT_FAILED'
  | 'STORE_IN_USE'
  | 'STORE_MIGRATION_FAILED'
  | 'STORE_INVALID_ROLE_NAME'
  | 'STORE_NOT_OWNER'
  | 'STORE_ROLE_UNSAFE'
  | 'STORE_ARCHIVE_HEAD_MISMATCH'
  | 'STORE_ARCHIVE_NOTHING'
  | 'STORE_ARCHIVE_CHAIN_GAP'
  | 'STORE_APPEND_REUSED';

/**
 * The error the store throws for anything it can name; the driver's error, if any, is `cause`.
 *
 * @example
 * ```ts
 * try {
 *   await openDatabase({ databaseUrl: 'postgres://127.0.0.1:1/none' });
 * } catch (error) {
 *   if (error instanceof StoreError && error.code === 'STORE_CONNECT_FAILED') process.exitCode = 2;
 * }
 * ```
 */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * SQLSTATE codes raised by the schema's own guards (class `WF` is not used by Postgres). The
 * migrations spell them out literally because migrations import no application code; a test keeps
 * the two in step.
 *
 * @example
 * ```ts
 * if (sqlStateOf(error) === SQLSTATE.eventsAppendOnly) console.log('someone tried to rewrite history');
 * ```
 */
export const SQLSTATE = {
  eventsAppendOnly: 'WFA01',
  definitionsImmutable: 'WFA02',
  archiveHeadMismatch: 'WFA03',
  archiveNothing: 'WFA04',
  archiveChainGap: 'WFA05',
  casesNotTruncated: 'WFA06',
  insufficientPrivilege: '42501',
  uniqueViolation: '23505',
  duplicateObject: '42710',
} as const;

/**
 * The SQLSTATE of an error from either driver (`pg` and PGlite both expose it as `code`), or
 * `undefined` for errors that did not come from the database.
 *
 * @example
 * ```ts
 * sqlStateOf(new Error('boom')); // undefined
 * ```
 */
export function sqlStateOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const { code } = error;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Whether the server refused the statement (a SQLSTATE outside the connection classes 08 and
 * 57P), as opposed to a lost connection: the connection is still good, and other statements of a
 * batch can be retried on their own.
 * @example if (isStatementError(e)) retryOneByOne(); else reportOutcomeUnknown();
 */
export function isStatementError(error: unknown): boolean {
  const code = sqlStateOf(error);
  return code !== undefined && !/^(08|57P)/.test(code);
}
