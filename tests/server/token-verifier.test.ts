/**
 * The app's bearer-token check (server/auth.ts TokenVerifier): valid tokens are remembered by
 * their whole text until the earlier of their expiry and 30 s, invalid ones never, on a clock the
 * test moves.
 */
import { describe, expect, it } from 'vitest';
import { signCaseToken, signToken, TokenVerifier, verifyToken } from '../../server/auth.ts';
import { ApiError } from '../../server/errors.ts';
import { SECRET } from './support.ts';

const T = Date.parse('2026-03-02T01:00:00Z');
const OTHER_SECRET = 'another-secret-that-is-also-long-enough!';

function clocked(options: { maxEntries?: number; maxAgeMs?: number } = {}): { verifier: TokenVerifier; clock: { now: number } } {
  const clock = { now: T };
  return { verifier: new TokenVerifier(SECRET, { ...options, now: () => clock.now }), clock };
}

async function refusal(work: Promise<unknown>): Promise<{ code: string; reason: unknown } | string> {
  try {
    await work;
  } catch (e) {
    return e instanceof ApiError ? { code: e.code, reason: e.details['reason'] } : `not an ApiError: ${String(e)}`;
  }
  return 'accepted';
}

describe('TokenVerifier', () => {
  it('verifies a token and remembers its claims', async () => {
    const { verifier } = clocked();
    const token = await signToken(SECRET, '社区书记张', { now: T });
    expect(verifier.cached(token)).toBeUndefined();
    expect(await verifier.verify(token)).toEqual({ actor: '社区书记张' });
    expect(verifier.cached(token)).toEqual({ actor: '社区书记张' });
    expect(verifier.size).toBe(1);
  });

  it('remembers a case token with its case', async () => {
    const { verifier } = clocked();
    const { token } = await signCaseToken(SECRET, '居民:1', 'c-1', { now: T });
    expect(await verifier.verify(token)).toEqual({ actor: '居民:1', caseScope: 'c-1' });
    expect(verifier.cached(token)).toEqual({ actor: '居民:1', caseScope: 'c-1' });
  });

  it('refuses a remembered token once it has expired, as an unremembered one would be', async () => {
    const { verifier, clock } = clocked();
    const token = await signToken(SECRET, '社区书记张', { now: T, ttlSeconds: 10 });
    await verifier.verify(token);
    // Accepted until exp plus the 5 s of allowed clock skew, exactly as a fresh check says.
    clock.now = T + 14_999;
    expect(verifier.cached(token)).toEqual({ actor: '社区书记张' });
    expect(await verifyToken(SECRET, token, { now: clock.now })).toEqual({ actor: '社区书记张' });
    clock.now = T + 15_000;
    expect(verifier.cached(token)).toBeUndefined();
    expect(await refusal(verifier.verify(token))).toEqual({ code: 'UNAUTHORIZED', reason: 'expired' });
    expect(await refusal(verifyToken(SECRET, token, { now: clock.now }))).toEqual({ code: 'UNAUTHORIZED', reason: 'expired' });
    expect(verifier.size).toBe(0);
  });

  it('checks a long-lived token again after 30 s', async () => {
    const { verifier, clock } = clocked();
    const token = await signToken(SECRET, '督查员周', { now: T, ttlSeconds: 3600 });
    await verifier.verify(token);
    clock.now = T + 29_999;
    expect(verifier.cached(token)).toEqual({ actor: '督查员周' });
    clock.now = T + 30_000;
    expect(verifier.cached(token)).toBeUndefined();
    expect(await verifier.verify(token)).toEqual({ actor: '督查员周' });
    clock.now = T + 59_999;
    expect(verifier.cached(token)).toEqual({ actor: '督查员周' });
  });

  it('never remembers a token it refuses', async () => {
    const { verifier, clock } = clocked();
    const good = await signToken(SECRET, '督查员周', { now: T });
    const [head, body, sig] = good.split('.') as [string, string, string];
    const refused = [
      await signToken(OTHER_SECRET, '督查员周', { now: T }),
      // The payload of a remembered token under another signature is a different token.
      `${head}.${body}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`,
      await signToken(SECRET, '督查员周', { now: T - 7_200_000, ttlSeconds: 60 }),
      (await signCaseToken(OTHER_SECRET, '居民:1', 'c-1', { now: T })).token,
    ];
    await verifier.verify(good);
    for (const token of refused) {
      expect(await refusal(verifier.verify(token))).toMatchObject({ code: 'UNAUTHORIZED' });
      expect(verifier.cached(token)).toBeUndefined();
      // Refused again when asked again: no memory of it either way.
      expect(await refusal(verifier.verify(token))).toMatchObject({ code: 'UNAUTHORIZED' });
    }
    expect(verifier.size).toBe(1);
    clock.now = T + 1_000;
    expect(verifier.cached(good)).toEqual({ actor: '督查员周' });
  });

  it('forgets the least recently used token beyond its bound', async () => {
    const { verifier } = clocked({ maxEntries: 2 });
    const [a, b, c] = await Promise.all(['甲', '乙', '丙'].map((actor) => signToken(SECRET, actor, { now: T }))) as [string, string, string];
    await verifier.verify(a);
    await verifier.verify(b);
    expect(verifier.cached(a)).toEqual({ actor: '甲' });
    await verifier.verify(c);
    expect(verifier.size).toBe(2);
    expect(verifier.cached(b)).toBeUndefined();
    expect(verifier.cached(a)).toEqual({ actor: '甲' });
    expect(verifier.cached(c)).toEqual({ actor: '丙' });
  });

  it('refuses a secret too short for HS256', () => {
    expect(() => new TokenVerifier('short')).toThrow(/at least 32 characters/);
  });
});
