/**
 * The security headers every answer carries: the same set @fastify/helmet (with the API's CSP) gave
 * before it was replaced by fixed headers (server/app.ts), now also on refusals made before any
 * route runs (a missing token, a path the router cannot take), each with its request id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHarness, type Harness } from './support.ts';

let h: Harness;

beforeAll(async () => {
  h = await openHarness();
});

afterAll(async () => {
  await h?.close();
});

/** What helmet sent on a JSON route, recorded from the app as it was configured. */
const API_HEADERS = {
  'content-security-policy': "default-src 'none';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
};

/** The docs page keeps the policy @fastify/swagger-ui's `staticCSP` gives it (its scripts and styles are its own files). */
const DOCS_HEADERS = {
  ...API_HEADERS,
  'content-security-policy': "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; frame-ancestors 'self'; img-src 'self' data: validator.swagger.io; object-src 'none'; script-src 'self' ; script-src-attr 'none'; style-src 'self' https: ; upgrade-insecure-requests;",
};

/** The response headers that are not per-request (date, length, request id) or per-body (type). */
function security(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!['date', 'content-length', 'content-type', 'connection', 'x-request-id', 'www-authenticate', 'location', 'etag', 'last-modified', 'cache-control', 'vary', 'accept-ranges'].includes(k)) out[k] = v;
  }
  return out;
}

describe('security headers', () => {
  it.each([
    ['a JSON route', '/v1/me', true, 200],
    ['a public route', '/healthz', false, 200],
    ['the OpenAPI document', '/openapi.json', false, 200],
    ['a refusal for want of a token', '/v1/cases/x', false, 401],
    ['an unknown route', '/v1/nothing-here', true, 404],
    ['a refusal by the schema', '/v1/cases?limit=0', true, 400],
    // Regressions: these two were Fastify's own JSON, with no security headers and no request id.
    ['a path with broken percent-encoding', '/v1/cases/%E6%B4%BE%E5%8', true, 400],
    ['a path over the router\'s parameter limit', `/v1/cases/${'c'.repeat(600)}`, true, 414],
  ] as const)('on %s: exactly the API set, and the request id', async (_name, url, signed, status) => {
    const r = await h.app.inject({ url, headers: { 'x-request-id': 'req-headers-1', ...(signed ? await h.auth('督查员周') : {}) } });
    expect(r.statusCode, r.body).toBe(status);
    expect(security(r.headers)).toEqual(API_HEADERS);
    expect(r.headers['x-request-id']).toBe('req-headers-1');
    if (status >= 400) {
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(r.body)).toMatchObject({ status, requestId: 'req-headers-1' });
    }
  });

  it.each(['/docs', '/docs/'])('on the docs page %s: the API set with the page\'s own policy', async (url) => {
    const r = await h.app.inject({ url });
    expect(r.statusCode).toBe(200);
    expect(security(r.headers)).toEqual(DOCS_HEADERS);
  });
});
