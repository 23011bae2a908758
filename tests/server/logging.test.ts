/**
 * Request logs: every line of a request carries its id, and credentials a URL may hold (a stream
 * ticket, a token put there by mistake) are blanked before they are written.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHarness, type Harness } from './support.ts';

let h: Harness;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  h = await openHarness({ logger: pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } }) });
});

afterAll(async () => {
  await h?.close();
});

describe('request logs', () => {
  it('blank a ticket or token in the query string and keep the rest of the URL', async () => {
    const secret = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl';
    const res = await h.app.inject({ url: `/healthz?a=1&ticket=${secret}&access_token=${secret}&TOKEN=${secret}&b=2`, headers: { 'x-request-id': 'log-test-1' } });
    expect(res.statusCode).toBe(200);
    const mine = lines.filter((l) => l['reqId'] === 'log-test-1');
    expect(mine.length).toBeGreaterThan(0);
    expect(JSON.stringify(mine)).not.toContain(secret);
    const incoming = mine.find((l) => l['msg'] === 'incoming request');
    expect(incoming?.['req']).toMatchObject({ method: 'GET', url: '/healthz?a=1&ticket=[redacted]&access_token=[redacted]&TOKEN=[redacted]&b=2' });
  });
});
