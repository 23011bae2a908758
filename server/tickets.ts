/**
 * Stream tickets: a browser's `EventSource` cannot send an `Authorization` header, so a client
 * trades its bearer token (in a header, `POST /v1/stream-tickets`) for a ticket it may put in a
 * stream's URL. A ticket is an HS256 JWT with a short life (60 s by default), the purpose
 * `stream`, and one scope: one case's stream, or the caller's inbox stream. It opens a stream and
 * does nothing else.
 *
 * Why a signed ticket rather than a random one stored in the database: every server process
 * shares the JWT secret (JWT_SECRET is required with DATABASE_URL), so any process accepts a
 * ticket another issued with no write per ticket, no table to sweep and no read on connect; and a
 * ticket stays usable for its minute, so `EventSource`'s own reconnect (which sends the same URL
 * with `Last-Event-ID`) survives a brief network drop. The cost is that it cannot be used only
 * once: a URL copied from a log opens the same read-only stream until the ticket expires, which
 * the short life and the single scope bound. It is signed with a key derived from the secret for
 * this purpose alone, so a ticket is never accepted as a bearer token, nor a bearer token as a
 * ticket.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { ApiError } from './errors.ts';

/** How long a ticket opens streams by default. */
export const DEFAULT_TICKET_TTL_SECONDS = 60;

const AUDIENCE = 'closed-loop:stream';
const TYPE = 'stream-ticket+jwt';

/** What a ticket opens: one case's stream, or its holder's inbox stream. */
export type TicketScope = { readonly kind: 'case'; readonly caseId: string } | { readonly kind: 'inbox' };

export interface Ticket {
  readonly actor: string;
  readonly scope: TicketScope;
  /** Issued to a case token (码上办): whoever holds it stays limited to that case. */
  readonly caseScoped: boolean;
  /** Epoch ms. */
  readonly expiresAt: number;
}

function ticketKey(secret: string): Uint8Array {
  return createHmac('sha256', secret).update('closed-loop stream ticket v1').digest();
}

/**
 * Signs a ticket, valid from `now` (epoch ms) for `ttlSeconds`.
 * @example const { ticket, expiresAt } = await signTicket(secret, { actor: '社区书记张', scope: { kind: 'inbox' }, caseScoped: false }, Date.now());
 */
export async function signTicket(secret: string, t: Omit<Ticket, 'expiresAt'>, now: number, ttlSeconds = DEFAULT_TICKET_TTL_SECONDS): Promise<{ readonly ticket: string; readonly expiresAt: number }> {
  if (t.caseScoped && t.scope.kind !== 'case') throw new Error('A case-scoped ticket must name its case.');
  const iat = Math.floor(now / 1000);
  const exp = iat + ttlSeconds;
  const claims = { purpose: 'stream', ...(t.scope.kind === 'case' ? { case: t.scope.caseId } : {}), ...(t.caseScoped ? { scoped: true } : {}) };
  const ticket = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: TYPE })
    .setSubject(t.actor)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(randomUUID())
    .sign(ticketKey(secret));
  return { ticket, expiresAt: exp * 1000 };
}

/**
 * Checks a ticket at `now` (epoch ms). Throws UNAUTHORIZED with `reason` `ticket_expired` or
 * `ticket_invalid`.
 * @example const t = await verifyTicket(secret, request.query.ticket, engine.clock.now());
 */
export async function verifyTicket(secret: string, ticket: string, now: number): Promise<Ticket> {
  try {
    const { payload, protectedHeader } = await jwtVerify(ticket, ticketKey(secret), {
      algorithms: ['HS256'], audience: AUDIENCE, typ: TYPE, requiredClaims: ['sub', 'exp', 'purpose'], currentDate: new Date(now),
    });
    const c = payload['case'];
    if (protectedHeader.typ !== TYPE || payload['purpose'] !== 'stream' || typeof payload.sub !== 'string' || payload.sub.length === 0 || typeof payload.exp !== 'number' || (c !== undefined && (typeof c !== 'string' || c.length === 0))) {
      throw new ApiError('UNAUTHORIZED', 'The ticket is not a stream ticket.', { reason: 'ticket_invalid' });
    }
    const caseScoped = payload['scoped'] === true;
    if (caseScoped && c === undefined) throw new ApiError('UNAUTHORIZED', 'The ticket is not a stream ticket.', { reason: 'ticket_invalid' });
    return { actor: payload.sub, scope: c === undefined ? { kind: 'inbox' } : { kind: 'case', caseId: c }, caseScoped, expiresAt: payload.exp * 1000 };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof joseErrors.JWTExpired) throw new ApiError('UNAUTHORIZED', 'The stream ticket has expired; POST /v1/stream-tickets for a new one.', { reason: 'ticket_expired' });
    if (e instanceof joseErrors.JOSEError) throw new ApiError('UNAUTHORIZED', 'The stream ticket is not valid; POST /v1/stream-tickets for one.', { reason: 'ticket_invalid' });
    throw e;
  }
}
