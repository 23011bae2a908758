/**
 * The one error table of the HTTP API: the engine's codes (engine/errors.ts) plus the few only
 * the HTTP layer can produce (a missing token, a body that is not JSON, a rate limit). Every
 * problem body the API sends carries one of these codes; `tests/server/errors.test.ts` keeps the
 * table in step with docs/errors.md. Codes are never reused for another meaning.
 */
import { ERRORS as ENGINE_ERRORS, EngineError, type ErrorDetails } from '../engine/errors.ts';

/** Codes only the HTTP layer returns. */
export const SERVER_ERRORS = {
  BAD_REQUEST: { status: 400, title: 'Request does not match the schema', hint: 'Fix the parts named in `errors` (unknown fields are refused) and send again.' },
  INVALID_JSON: { status: 400, title: 'Body is not valid JSON', hint: 'Send a JSON body with Content-Type: application/json.' },
  UNAUTHORIZED: { status: 401, title: 'Authentication required', hint: 'Send Authorization: Bearer <token>; `wf token --actor ID` prints one for local use.' },
  INTAKE_NOT_OPEN: { status: 403, title: 'Workflow does not take the intake form', hint: 'Only workflows whose start is `by anyone` take the 码上办 form; start this one with POST /v1/cases as a signed-in person.' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route', hint: 'See /openapi.json or /docs for the routes.' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Body too large', hint: 'Send a smaller body; the limit is in `limit` (bytes).' },
  URI_TOO_LONG: { status: 414, title: 'Path segment too long', hint: 'Ids and names are at most 200 characters; check the path (the limit per segment is in `limit`).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type', hint: 'Send Content-Type: application/json.' },
  RATE_LIMITED: { status: 429, title: 'Too many requests', hint: 'Wait for the time in the Retry-After header, then send again.' },
  INTERNAL: { status: 500, title: 'Internal error', hint: 'This is a bug; report it with the requestId.' },
} as const satisfies Record<string, { status: number; title: string; hint: string }>;

/** Every code the API can return, engine and HTTP alike. */
export const ERRORS = { ...ENGINE_ERRORS, ...SERVER_ERRORS } as const;

export type ApiErrorCode = keyof typeof ERRORS;

// A code defined in both tables would silently take the server's meaning: refuse it at compile time.
type Overlap = keyof typeof ENGINE_ERRORS & keyof typeof SERVER_ERRORS;
const noOverlap: [Overlap] extends [never] ? true : never = true;
void noOverlap;

/**
 * An error of the HTTP layer, with a code from {@link ERRORS}. Engine errors stay `EngineError`;
 * both become the same problem body.
 * @example throw new ApiError('UNAUTHORIZED', 'The token has expired.', { expiredAt: '2026-03-02T09:00:00Z' })
 */
export class ApiError extends Error {
  readonly status: number;
  readonly hint: string;
  /** Fastify reads this to pick the status when the error passes through its own hooks. */
  readonly statusCode: number;

  constructor(readonly code: ApiErrorCode, message: string, readonly details: ErrorDetails = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = ERRORS[code].status;
    this.statusCode = this.status;
    this.hint = ERRORS[code].hint;
  }
}

/**
 * The body of every error response (RFC 9457 `application/problem+json`). `type` is a stable URN
 * per code; `detail` says what happened to this request; the error's details (who may act
 * instead, which fields failed, the case's current state…) are spread alongside.
 */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ApiErrorCode;
  readonly detail: string;
  readonly instance: string;
  readonly hint: string;
  readonly requestId: string;
  readonly [detail: string]: unknown;
}

/** The `type` URI of a code's problems. */
export function problemType(code: ApiErrorCode): string {
  return `urn:closed-loop:problem:${code}`;
}

/**
 * Builds a problem body. Details never overwrite the standard members.
 * @example problem('CASE_NOT_FOUND', 'No case c-1.', { caseId: 'c-1' }, '/v1/cases/c-1', 'req-1')
 */
export function problem(code: ApiErrorCode, detail: string, details: ErrorDetails, instance: string, requestId: string): Problem {
  const e = ERRORS[code];
  return { ...details, type: problemType(code), title: e.title, status: e.status, code, detail, instance, hint: e.hint, requestId };
}

/** Whether an error carries a code of the table (an `EngineError` or an `ApiError`). */
export function isCoded(e: unknown): e is ApiError | EngineError {
  return e instanceof ApiError || e instanceof EngineError;
}
