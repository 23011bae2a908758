/**
 * Who is calling: a bearer JWT (HS256) names the actor in `sub`; the actor's roles are read from
 * the database (through the engine's org cache), never from the token, so a changed grant takes
 * effect without reissuing tokens. The server-level roles are below; everything a workflow lets a
 * person do is decided by the workflow's own `by` clauses in the engine.
 */
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
}

/** HS256 wants a key at least as long as its hash (RFC 7518 §3.2). */
export const MIN_SECRET_LENGTH = 32;

function key(secret: string): Uint8Array {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`The JWT secret must be at least ${MIN_SECRET_LENGTH} characters (got ${secret.length}).`);
  }
  return new TextEncoder().encode(secret);
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

/**
 * Checks a token and returns the actor it names. Throws `ApiError` UNAUTHORIZED saying why.
 * @example const { actor } = await verifyToken(secret, token);
 */
export async function verifyToken(secret: string, token: string): Promise<{ readonly actor: string }> {
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: ['HS256'], requiredClaims: ['sub', 'exp'], clockTolerance: 5 });
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new ApiError('UNAUTHORIZED', 'The token names no actor (`sub`).');
    return { actor: payload.sub };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw new ApiError('UNAUTHORIZED', 'The token has expired.', { reason: 'expired' });
    if (e instanceof joseErrors.JOSEError) throw new ApiError('UNAUTHORIZED', 'The token is not valid.', { reason: e.code });
    throw e;
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
