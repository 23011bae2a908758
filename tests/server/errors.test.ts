/**
 * The one error table stays in step with docs/errors.md: every code the API can return is
 * documented with its status, and the page lists no code the table lacks (STYLE §12).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS as ENGINE_ERRORS } from '../../engine/errors.ts';
import { ApiError, ERRORS, problem, problemType, SERVER_ERRORS } from '../../server/errors.ts';

const DOC = readFileSync(path.resolve(import.meta.dirname, '../../docs/errors.md'), 'utf8');

/** Rows of the table: `| CODE | status | title | … |`. */
function documented(): Map<string, { status: number; title: string }> {
  const rows = new Map<string, { status: number; title: string }>();
  for (const line of DOC.split('\n')) {
    const m = /^\| ([A-Z_]+) \| (\d{3}) \| ([^|]+) \|/.exec(line);
    if (m !== null) rows.set(m[1] ?? '', { status: Number(m[2]), title: (m[3] ?? '').trim() });
  }
  return rows;
}

describe('the error table', () => {
  it('holds every engine code and every server code, with no code in both', () => {
    for (const code of Object.keys(ENGINE_ERRORS)) expect(ERRORS).toHaveProperty(code);
    for (const code of Object.keys(SERVER_ERRORS)) expect(Object.keys(ENGINE_ERRORS)).not.toContain(code);
  });

  it.each(Object.entries(ERRORS))('documents %s in docs/errors.md with its status and title', (code, e) => {
    expect(documented().get(code)).toEqual({ status: e.status, title: e.title });
  });

  it('documents no code the table lacks', () => {
    expect([...documented().keys()].filter((c) => !(c in ERRORS))).toEqual([]);
  });

  it('gives every code a 4xx or 5xx status and a hint', () => {
    for (const e of Object.values(ERRORS)) {
      expect(e.status).toBeGreaterThanOrEqual(400);
      expect(e.status).toBeLessThan(600);
      expect(e.hint.length).toBeGreaterThan(0);
    }
  });

  it('builds problem bodies whose details never overwrite the standard members', () => {
    const p = problem('NOT_ALLOWED', 'no', { code: 'FAKE', status: 200, allowed: [] }, '/v1/x', 'r1');
    expect(p).toMatchObject({ type: problemType('NOT_ALLOWED'), code: 'NOT_ALLOWED', status: 403, title: 'Not allowed', instance: '/v1/x', requestId: 'r1', allowed: [] });
    expect(new ApiError('RATE_LIMITED', 'slow down')).toMatchObject({ code: 'RATE_LIMITED', status: 429, statusCode: 429 });
  });
});
