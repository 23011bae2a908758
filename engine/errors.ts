/**
 * The one error table: every error the engine (and the HTTP API in front of it) can return, with
 * a stable code, its HTTP status and what the caller should do. This module imports nothing;
 * `tests/engine/errors.test.ts` keeps it in step with docs/errors.md. Codes are never reused.
 */
export const ERRORS = {
  CASE_NOT_FOUND: { status: 404, title: 'Case not found', hint: 'Check the case id; list cases with GET /v1/cases.' },
  DEFINITION_NOT_FOUND: { status: 404, title: 'Workflow definition not found', hint: 'Deploy the workflow first, or check its name and version.' },
  ORG_UNIT_NOT_FOUND: { status: 404, title: 'Org unit not found', hint: 'Create the unit first, or check its id.' },
  ACTOR_NOT_FOUND: { status: 404, title: 'Actor not found', hint: 'Create the actor first, or check the id.' },
  NOT_ALLOWED: { status: 403, title: 'Not allowed', hint: 'Ask someone who holds one of the roles named in `allowed`.' },
  NOT_POSSIBLE: { status: 409, title: 'Not possible in the current state', hint: 'Reload the case: it may have moved on. `allowedEvents` lists what it accepts now.' },
  CASE_SUSPENDED: { status: 409, title: 'Case is suspended', hint: 'Resume the case before sending events to it.' },
  HISTORY_NOT_REPLAYABLE: { status: 409, title: 'History does not replay', hint: 'The stored log does not replay up to that time: run verify and replay on the case (POST /v1/cases/{id}/verify, /replay) to find the first bad event.' },
  VALIDATION_FAILED: { status: 422, title: 'Validation failed', hint: 'Fix the fields named in `fields` and send again.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'Idempotency key reused with a different request', hint: 'Use a new Idempotency-Key for a different request.' },
  DEFINITION_INVALID: { status: 422, title: 'Workflow does not compile', hint: 'Fix the diagnostics and deploy again.' },
  MIGRATION_REFUSED: { status: 422, title: 'Cases cannot be migrated as asked', hint: 'Run a dry run and add the missing states to the mapping.' },
  OUTCOME_UNKNOWN: { status: 503, title: 'Outcome unknown', hint: 'The connection failed while committing. Retry with the same Idempotency-Key to learn the true outcome.' },
  UNAVAILABLE: { status: 503, title: 'Service unavailable', hint: 'Retry later.' },
} as const satisfies Record<string, { status: number; title: string; hint: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Extra machine-readable facts an error carries, e.g. who may act instead or which fields failed. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/**
 * An error with a stable code from {@link ERRORS}.
 * @example throw new EngineError('NOT_POSSIBLE', 'Case is in 办结; it accepts no events.', { state: '办结', allowedEvents: [] })
 */
export class EngineError extends Error {
  readonly status: number;
  readonly hint: string;

  constructor(readonly code: ErrorCode, message: string, readonly details: ErrorDetails = {}) {
    super(message);
    this.name = 'EngineError';
    this.status = ERRORS[code].status;
    this.hint = ERRORS[code].hint;
  }

  /** The plain form stored for idempotent replies and sent in problem bodies. */
  toJSON(): { code: ErrorCode; status: number; message: string; hint: string; details: ErrorDetails } {
    return { code: this.code, status: this.status, message: this.message, hint: this.hint, details: this.details };
  }
}
