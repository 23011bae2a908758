/**
 * Who is calling: a bearer JWT (HS256) names the actor in `sub`; the actor's roles are read from
 * the database (through the engine's org cache), never from the token, so a changed grant takes
 * effect without reissuing tokens. The server-level roles are below; everything a workflow lets a
 * person do is decided by the workflow's own `by` clauses in the engine.
 */
import { webcrypto } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { RoleGrant } from '../engine/org.ts';
import { ApiError } from './errors.ts';

/**
 * Roles the HTTP layer itself checks. Held in any unit; a role held anywhere counts.
 * - 政策员 (policy staff): deploys workflow definitions.
 * - 督查员 (auditor): reads everything; gets no write access from the role (see README).
 * - 管理员 (administrator): changes org units and actors.
 */
export const SERVER_ROLES = {
  policy: '政策员',
  auditor: '督查员',
  admin: '管理员',
} as const;

/** The caller of a request. */
export interface Principal {
  readonly actor: string;
  readonly roles: readonly RoleGrant[];
  /**
   * Set for a case token (from the 码上办 intake form): the one case this caller may follow. Such
   * a caller may read that case and its history and send it events, nothing else.
   */
  readonly caseScope?: string;
}

/** The private claim of a case token that names its case. */
export const CASE_CLAIM = 'case';

/** HS256 wants a key at least as long as its hash (RFC 7518 §3.2). */
export const MIN_SECRET_LENGTH = 32;

function key(secret: string): Uint8Array<ArrayBuffer> {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`The JWT secret must be at least ${MIN_SECRET_LENGTH} characters (got ${secret.length}).`);
  }
  return new TextEncoder().encode(secret);
}

/** Seconds of clock skew allowed between the signer and this server on `exp` and `nbf`. */
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * The secret as an HS256 WebCrypto key, to import once: given the raw bytes, jose imports them anew
 * on every call, about a fifth of the server's CPU per request in bench/http.ts.
 */
function hmacKey(secret: string): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('raw', key(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
}

/** What a valid token says. */
export interface VerifiedToken {
  readonly actor: string;
  /** For a case token: its case (see {@link Principal.caseScope}). */
  readonly caseScope?: string;
}

/** Checks a token at `now` (ms); its claims and expiry (s), or `ApiError` UNAUTHORIZED saying why. */
async function check(secret: Promise<webcrypto.CryptoKey> | Uint8Array, token: string, now: number): Promise<{ claims: VerifiedToken; exp: number }> {
  try {
    const { payload } = await jwtVerify(token, await secret, { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'], clockTolerance: CLOCK_TOLERANCE_SECONDS, currentDate: new Date(now) });
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new ApiError('UNAUTHORIZED', 'The token names no actor (`sub`).');
    const exp = payload.exp ?? 0;
    const scope = payload[CASE_CLAIM];
    if (scope === undefined) return { claims: Object.freeze({ actor: payload.sub }), exp };
    if (typeof scope !== 'string' || scope.length === 0) throw new ApiError('UNAUTHORIZED', 'The token\'s `case` claim is not a case id.', { reason: 'bad_case_claim' });
    return { claims: Object.freeze({ actor: payload.sub, caseScope: scope }), exp };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw new ApiError('UNAUTHORIZED', 'The token has expired.', { reason: 'expired' });
    if (e instanceof joseErrors.JOSEError) throw new ApiError('UNAUTHORIZED', 'The token is not valid.', { reason: e.code });
    throw e;
  }
}

/** How long tokens from {@link signToken} live by default: 12 hours. */
export const DEFAULT_TOKEN_TTL_SECONDS = 12 * 3600;

/**
 * Signs a token naming `actor`.
 * @example const token = await signToken(process.env.JWT_SECRET!, '社区书记张', { ttlSeconds: 3600 });
 */
export async function signToken(secret: string, actor: string, options: { readonly ttlSeconds?: number; readonly now?: number } = {}): Promise<string> {
  if (actor.length === 0) throw new Error('The actor id is empty.');
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(actor)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS))
    .sign(key(secret));
}

/** How long a case token lives by default: 30 days, long enough to rate the case once it is done. */
export const DEFAULT_CASE_TOKEN_TTL_SECONDS = 30 * 86_400;

/**
 * Signs a case token: its subject is the resident who started the case through the intake form,
 * and its `case` claim limits it to that one case (see {@link Principal.caseScope}).
 * @example const token = await signCaseToken(secret, '居民:3f2a…', caseId, { ttlSeconds: 30 * 86_400 });
 */
export async function signCaseToken(secret: string, actor: string, caseId: string, options: { readonly ttlSeconds?: number; readonly now?: number } = {}): Promise<{ readonly token: string; readonly expiresAt: string }> {
  if (actor.length === 0 || caseId.length === 0) throw new Error('A case token needs an actor and a case id.');
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const exp = now + (options.ttlSeconds ?? DEFAULT_CASE_TOKEN_TTL_SECONDS);
  const token = await new SignJWT({ [CASE_CLAIM]: caseId })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(actor)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(key(secret));
  return { token, expiresAt: new Date(exp * 1000).toISOString() };
}

/**
 * Checks a token and returns the actor it names and, for a case token, its case. Throws
 * `ApiError` UNAUTHORIZED saying why. Checks afresh each time; the app's requests go through a
 * {@link TokenVerifier}, which remembers tokens it has verified.
 * @example const { actor, caseScope } = await verifyToken(secret, token);
 */
export async function verifyToken(secret: string, token: string, options: { readonly now?: number } = {}): Promise<VerifiedToken> {
  return (await check(key(secret), token, options.now ?? Date.now())).claims;
}

/** How a {@link TokenVerifier} remembers tokens; tests pass a clock they move. */
export interface TokenVerifierOptions {
  /** The clock, in ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
  /** Most tokens remembered (default 10,000); the least recently used is forgotten first. */
  readonly maxEntries?: number;
  /** How long a verified token is remembered at most (default 30 s); never past its `exp`. */
  readonly maxAgeMs?: number;
}

/**
 * Verifies bearer tokens with the key imported once, and remembers each valid token's claims (by
 * the whole token, signature included) until the earlier of its expiry and `maxAgeMs` after it
 * was checked, so a client's every request does not pay for an HMAC check. Only valid tokens are
 * remembered. Nothing else is: the caller's roles are still read per request.
 * @example
 * const tokens = new TokenVerifier(process.env.JWT_SECRET!);
 * const { actor } = tokens.cached(token) ?? await tokens.verify(token);
 */
export class TokenVerifier {
  readonly #key: Promise<webcrypto.CryptoKey>;
  readonly #now: () => number;
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  /** In order of last use, oldest first (a Map keeps insertion order). */
  readonly #verified = new Map<string, { readonly claims: VerifiedToken; readonly until: number }>();

  constructor(secret: string, options: TokenVerifierOptions = {}) {
    this.#key = hmacKey(secret);
    // Settled here so an unused verifier leaves no unhandled rejection; `verify` awaits it again.
    this.#key.catch(() => undefined);
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxAgeMs = options.maxAgeMs ?? 30_000;
  }

  /** How many tokens are remembered. */
  get size(): number {
    return this.#verified.size;
  }

  /** The claims of a token verified before and still valid, or undefined (then call {@link verify}). */
  cached(token: string): VerifiedToken | undefined {
    const hit = this.#verified.get(token);
    if (hit === undefined) return undefined;
    this.#verified.delete(token);
    if (this.#now() >= hit.until) return undefined;
    this.#verified.set(token, hit);
    return hit.claims;
  }

  /** The token's claims, from memory or checked now; `ApiError` UNAUTHORIZED saying why it is refused. */
  async verify(token: string): Promise<VerifiedToken> {
    const known = this.cached(token);
    if (known !== undefined) return known;
    const now = this.#now();
    const { claims, exp } = await check(this.#key, token, now);
    // jose accepts a token until `exp` plus the tolerance; so does the memory, and no longer than maxAgeMs.
    const until = Math.min((exp + CLOCK_TOLERANCE_SECONDS) * 1000, now + this.#maxAgeMs);
    if (until > now && this.#maxEntries > 0) {
      this.#verified.set(token, { claims, until });
      while (this.#verified.size > this.#maxEntries) {
        const oldest = this.#verified.keys().next();
        if (oldest.done === true) break;
        this.#verified.delete(oldest.value);
      }
    }
    return claims;
  }
}

/**
 * The token of an `Authorization: Bearer …` header, or undefined.
 * @example bearer('Bearer abc') // 'abc'
 */
export function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header);
  return m?.[1];
}

/** Whether the principal holds `role` in any unit. */
export function holds(p: Principal, role: string): boolean {
  return p.roles.some((g) => g.role === role);
}

/**
 * Refuses with NOT_ALLOWED (403) unless the principal holds `role` somewhere; the problem names
 * who may act instead, as the engine's refusals do.
 * @example requireRole(request.principal, SERVER_ROLES.policy, 'deploy workflows');
 */
export function requireRole(p: Principal, role: string, what: string): void {
  if (!holds(p, role)) {
    throw new ApiError('NOT_ALLOWED', `${p.actor} may not ${what}: it needs the role ${role}.`, { actor: p.actor, allowed: [{ role, unit: null }] });
  }
}

/** What a case token may do, by method and route template; always to its own case only. */
const CASE_TOKEN_ROUTES = new Set(['GET /v1/cases/:id', 'HEAD /v1/cases/:id', 'GET /v1/cases/:id/history', 'HEAD /v1/cases/:id/history', 'POST /v1/cases/:id/events', 'GET /v1/cases/:id/stream', 'GET /v1/cases/:id/changes']);

/**
 * Refuses with NOT_ALLOWED (403) a case token used for anything but reading its case and that
 * case's history and sending the case events (which the workflow's `by` clauses then judge).
 * Other tokens pass.
 * @example assertCaseScope(principal, request.method, request.routeOptions.url, request.params);
 */
export function assertCaseScope(p: Principal, method: string, route: string | undefined, params: unknown): void {
  if (p.caseScope === undefined) return;
  const id = typeof params === 'object' && params !== null ? (params as Record<string, unknown>)['id'] : undefined;
  if (route !== undefined && CASE_TOKEN_ROUTES.has(`${method} ${route}`) && id === p.caseScope) return;
  throw new ApiError('NOT_ALLOWED', `This token only follows case ${p.caseScope}: it may read that case (GET /v1/cases/${p.caseScope}) and its history, and send it the resident's own events; nothing else.`, {
    actor: p.actor, caseScope: p.caseScope, allowed: [],
  });
}
