// Shared by the HTTP tests: one database per test file (PGlite, or a fresh schema on the real
// Postgres when DATABASE_URL is set), the demo jurisdiction and seed workflows loaded as `npm start`
// loads them, an engine on a clock the test moves, and the app on top.
import path from 'node:path';
import { expect } from 'vitest';
import { Engine } from '../../engine/engine.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { buildApp, type App, type AppOptions } from '../../server/app.ts';
import { signToken } from '../../server/auth.ts';
import { deployWorkflows, loadDemoData, readFixture } from '../../server/demo.ts';
import { ERRORS } from '../../server/errors.ts';
import { folderLoader } from '../../server/loader.ts';
import { openTestDatabase } from '../engine/support.ts';

export { backend, databaseUrl } from '../engine/support.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const WORKFLOWS = path.join(ROOT, 'workflows');
export const FIXTURE = path.join(WORKFLOWS, 'fixtures/org.yaml');
export const SECRET = 'test-secret-that-is-long-enough-for-hs256!';

/** A 五单 order as the 码上办 form sends it. */
export const ORDER = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

export interface Harness {
  readonly store: OpenedDatabase;
  readonly engine: Engine;
  readonly app: App;
  readonly clock: { now: number };
  /** A bearer header for an actor. */
  auth(actor: string): Promise<{ authorization: string }>;
  close(): Promise<void>;
}

/**
 * Opens a database, loads the demo data, deploys workflows/*.wf and builds the app.
 * @example const h = await openHarness(); const res = await h.app.inject({ url: '/v1/me', headers: await h.auth('社区书记张') });
 */
export async function openHarness(options: Partial<Omit<AppOptions, 'engine' | 'jwtSecret'>> = {}): Promise<Harness> {
  const store = await openTestDatabase();
  const clock = { now: Date.parse('2026-03-02T09:00:00+08:00') };
  try {
    await loadDemoData(store, FIXTURE);
    const engine = new Engine({ store, clock: { now: () => clock.now }, calendar: readFixture(FIXTURE).calendar, orgMaxAgeMs: 60_000 });
    await deployWorkflows(engine, WORKFLOWS);
    const app = await buildApp({ engine, jwtSecret: SECRET, loader: folderLoader(WORKFLOWS), rateLimit: false, ...options });
    const tokens = new Map<string, string>();
    return {
      store, engine, app, clock,
      async auth(actor) {
        let t = tokens.get(actor);
        if (t === undefined) {
          t = await signToken(SECRET, actor);
          tokens.set(actor, t);
        }
        return { authorization: `Bearer ${t}` };
      },
      async close() {
        await app.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** An answer as the tests read it: the body parsed when it is JSON, and as text. */
export interface Res {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
  readonly headers: Record<string, string | string[] | number | undefined>;
}

/**
 * An `inject` answer as a {@link Res}.
 * @example const r = toRes(await h.app.inject({ url: '/healthz' }));
 */
export function toRes(r: { readonly statusCode: number; readonly body: string; readonly headers: Res['headers'] }): Res {
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    // not JSON (SVG, Mermaid, metrics)
  }
  return { status: r.statusCode, body, text: r.body, headers: r.headers };
}

/** Asserts a problem body (RFC 9457) with the given status and a code from the one error table. */
export function expectProblem(r: Res, status: number, code: string): void {
  expect({ status: r.status, code: r.body['code'] }, r.text).toEqual({ status, code });
  expect(String(r.headers['content-type'])).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, type: `urn:closed-loop:problem:${code}`, title: expect.any(String), detail: expect.any(String), hint: expect.any(String), instance: expect.any(String), requestId: expect.any(String) });
  expect(code in ERRORS).toBe(true);
}
