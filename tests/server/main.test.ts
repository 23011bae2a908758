/**
 * `npm start`'s main module as a real process: it starts on an empty data directory (PGlite,
 * migrations, seed workflows, demo people, a generated secret), prints its URL and demo tokens,
 * answers health and readiness, and stops cleanly on SIGTERM; a restart keeps the secret and the
 * data. With DATABASE_URL it refuses to start without JWT_SECRET, and (Postgres only) runs as the
 * append-only role with no demo data. Also `wf token`, which signs with the same secret.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { main as cli } from '../../cli/main.ts';
import { openDatabase } from '../../engine/store/index.ts';
import { readConfig } from '../../server/main.ts';
import { backend, databaseUrl, dropRole, uniqueName } from '../engine/support.ts';
import { ROOT } from './support.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'wf-main-'));
  dirs.push(d);
  return d;
}

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: () => string;
  readonly stdout: () => string;
}

/** The environment without anything that would change what main does. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return { ...env, PORT: '0', LOG_LEVEL: 'info', ...extra };
}

function spawnMain(env: NodeJS.ProcessEnv, args: readonly string[] = []): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/main.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts main and waits for its "Listening on" line. */
async function startMain(env: NodeJS.ProcessEnv, args: readonly string[] = []): Promise<Server> {
  const child = spawnMain(env, args);
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no "Listening on" within 90 s.\nstderr:\n${err}\nstdout:\n${out}`));
    }, 90_000);
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString('utf8');
      // The banner ends with how to stop the server: wait for all of it.
      const m = /Listening on (http:\/\/\S+)[\s\S]*Stop with Ctrl\+C/.exec(err);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`main exited with ${code} before listening.\nstderr:\n${err}\nstdout:\n${out}`));
    });
  });
  return { child, url, stderr: () => err, stdout: () => out };
}

async function stop(s: Server): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code, signal) => {
    if (code === null) process.stderr.write(`main died of ${signal}\nstdout:\n${s.stdout()}\nstderr:\n${s.stderr()}\n`);
    resolve(code);
  }));
  s.child.kill('SIGTERM');
  return exited;
}

async function exitOf(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let err = '';
  child.stderr?.on('data', (b: Buffer) => { err += b.toString('utf8'); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, stderr: err };
}

/** The token printed under a demo person's line of the banner. */
function bannerToken(stderr: string, actor: string): string {
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => l.trim().startsWith(`${actor} `));
  const token = lines[i + 1]?.trim();
  if (i < 0 || token === undefined) throw new Error(`no token for ${actor} in:\n${stderr}`);
  return token;
}

async function get(url: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

async function wfToken(args: readonly string[], env: Record<string, string | undefined>): Promise<{ code: number; out: string; err: string }> {
  const saved = { DATA_DIR: process.env['DATA_DIR'], JWT_SECRET: process.env['JWT_SECRET'] };
  let out = '';
  let err = '';
  try {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const code = await cli(['token', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; }, cwd: ROOT, color: false });
    return { code, out, err };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('npm start on an empty data directory (embedded PGlite)', () => {
  it('starts, serves health, readiness and demo tokens, stops on SIGTERM, and keeps its secret and data across a restart', async () => {
    const dataDir = tempDir();
    const env = baseEnv({ DATA_DIR: dataDir });
    const first = await startMain(env);
    let token: string;
    try {
      expect((await get(`${first.url}/healthz`)).body).toEqual({ status: 'ok' });
      expect(await get(`${first.url}/readyz`)).toMatchObject({ status: 200, body: { status: 'ready', database: { ok: true, kind: 'pglite' } } });
      token = bannerToken(first.stderr(), '社区书记张');
      expect((await get(`${first.url}/v1/me`, token)).body).toMatchObject({ actor: '社区书记张', roles: [{ role: '社区书记', unit: '永乐社区' }] });
      const defs = await get(`${first.url}/v1/definitions`, token);
      expect((defs.body['items'] as { name: string }[]).map((d) => d.name).sort()).toEqual(['五单服务', '五步闭环', '吹哨报到', '网格事件'].sort());
      for (const actor of ['政策员高', '督查员周', '管理员钟', '党员李']) expect(first.stderr()).toContain(actor);
      // The secret is kept in the data directory, readable by its owner only, and `wf token` signs with it.
      expect(statSync(path.join(dataDir, 'jwt-secret')).mode & 0o777).toBe(0o600);
      const minted = await wfToken(['--actor', '管理员钟'], { DATA_DIR: dataDir, JWT_SECRET: undefined });
      expect(minted.code, minted.err).toBe(0);
      expect((await get(`${first.url}/v1/me`, minted.out.trim())).body).toMatchObject({ actor: '管理员钟' });
      // Logs are JSON lines with a request id.
      const line = first.stdout().split('\n').find((l) => l.includes('"reqId"'));
      expect(line).toBeDefined();
      expect(() => JSON.parse(line ?? '')).not.toThrow();
      // A second server on the same data directory is refused while the first runs (it would corrupt it).
      const twice = await exitOf(spawnMain(env));
      expect(twice.code).toBe(1);
      expect(twice.stderr).toContain(`could not start: The embedded database in ${path.join(dataDir, 'pglite')} is open in process ${first.child.pid}`);
    } finally {
      expect(await stop(first)).toBe(0);
    }
    expect(first.stdout()).toContain('"msg":"stopped"');

    const second = await startMain(env);
    try {
      // Same secret: the first run's token still works; the org tree was not loaded twice.
      expect((await get(`${second.url}/v1/me`, token)).status).toBe(200);
      expect(second.stdout()).toContain('org tree present; demo data not loaded again');
    } finally {
      expect(await stop(second)).toBe(0);
    }
  }, 240_000);
});

describe('configuration', () => {
  it('refuses to start with DATABASE_URL but no JWT_SECRET (exit 2, saying why)', async () => {
    const r = await exitOf(spawnMain(baseEnv({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', DATA_DIR: tempDir() })));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('JWT_SECRET is required with DATABASE_URL');
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
    [{ DATABASE_URL: 'postgres://x@127.0.0.1/db' }, 'JWT_SECRET is required'],
  ])('refuses %j', (env, message) => {
    expect(() => readConfig(env, [])).toThrow(message);
  });

  it('has defaults for everything, and demo data only without DATABASE_URL or with --demo', () => {
    expect(readConfig({}, [])).toMatchObject({ port: 3000, host: '127.0.0.1', dataDir: path.resolve('data'), logLevel: 'info', demo: true, databaseUrl: undefined });
    const secret = 'x'.repeat(40);
    expect(readConfig({ DATABASE_URL: 'postgres://x@h/db', JWT_SECRET: secret }, []).demo).toBe(false);
    expect(readConfig({ DATABASE_URL: 'postgres://x@h/db', JWT_SECRET: secret }, ['--demo']).demo).toBe(true);
    expect(() => readConfig({}, ['--verbose'])).toThrow('--verbose');
  });

  it('wf token needs an actor and a secret, and takes a lifetime', async () => {
    const empty = tempDir();
    expect((await wfToken([], { DATA_DIR: empty, JWT_SECRET: undefined })).code).toBe(2);
    const none = await wfToken(['--actor', '张'], { DATA_DIR: empty, JWT_SECRET: undefined });
    expect(none.code).toBe(1);
    expect(none.err).toContain('no secret');
    const ok = await wfToken(['--actor', '张', '--ttl', '30m'], { DATA_DIR: empty, JWT_SECRET: 'y'.repeat(40) });
    expect(ok.code).toBe(0);
    const claims = JSON.parse(Buffer.from(ok.out.trim().split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub: string; iat: number; exp: number };
    expect(claims.sub).toBe('张');
    expect(claims.exp - claims.iat).toBe(1800);
    expect((await wfToken(['--actor', '张', '--ttl', 'forever'], { DATA_DIR: empty, JWT_SECRET: 'y'.repeat(40) })).code).toBe(2);
  });
});

describe('npm start on Postgres', () => {
  it.runIf(backend === 'postgres')('(Postgres only) runs as the append-only role, with no demo data unless --demo', async () => {
    const schema = uniqueName('wf_main');
    const role = uniqueName('wf_app_main');
    const secret = 'z'.repeat(48);
    const env = baseEnv({ DATABASE_URL: databaseUrl ?? '', JWT_SECRET: secret, DATABASE_SCHEMA: schema, DATABASE_APP_ROLE: role, DATA_DIR: tempDir() });
    try {
      const s = await startMain(env);
      try {
        expect(await get(`${s.url}/readyz`)).toMatchObject({ status: 200, body: { database: { ok: true, kind: 'postgres' } } });
        const { signToken } = await import('../../server/auth.ts');
        const token = await signToken(secret, '任何人');
        expect((await get(`${s.url}/v1/definitions`, token)).body).toEqual({ items: [] });
        expect((await get(`${s.url}/v1/org-units`, token)).body).toEqual({ items: [] });
        expect(s.stderr()).not.toContain('Demo tokens');
        // A stream starts the change feed, whose LISTEN connection is the application's role too.
        const opened = new AbortController();
        const stream = await fetch(`${s.url}/v1/inbox/stream`, { headers: { authorization: `Bearer ${token}` }, signal: opened.signal });
        expect(stream.status).toBe(200);
        const owner = await openDatabase({ databaseUrl: databaseUrl ?? '', migrate: false });
        try {
          let listeners: string[] = [];
          for (let i = 0; i < 5_000 && listeners.length === 0; i++) {
            const { rows } = await sql<{ usename: string }>`select usename from pg_stat_activity
              where application_name = ${`closed-loop-listen ${schema}`}`.execute(owner.db);
            listeners = rows.map((r) => r.usename);
          }
          expect(listeners).toEqual([role]);
        } finally {
          opened.abort();
          await owner.close();
        }
      } finally {
        expect(await stop(s)).toBe(0);
      }
      const demo = await startMain(env, ['--demo']);
      try {
        const token = bannerToken(demo.stderr(), '督查员周');
        expect(((await get(`${demo.url}/v1/definitions`, token)).body['items'] as unknown[]).length).toBe(4);
      } finally {
        expect(await stop(demo)).toBe(0);
      }
    } finally {
      const owner = await openDatabase({ databaseUrl: databaseUrl ?? '', migrate: false });
      try {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(owner.db);
        await dropRole(owner.db, role);
      } finally {
        await owner.close();
      }
    }
  }, 240_000);
});
