/**
 * Two server processes on one Postgres behave as one (issue 4, acceptance): an event sent to
 * process A is seen on process B's server-sent events (a ticket A issued opens B's stream), and
 * due timers, polled by both processes at once, fire once each. Each process
 * (tests/server/stream-server.ts) has its own engine, pool, change feed and timer poller; its
 * clock is the parent's to move. Postgres only: PGlite is one connection inside one process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { signToken } from '../../server/auth.ts';
import { deployWorkflows, loadDemoData, readFixture } from '../../server/demo.ts';
import { openTestDatabase } from '../engine/support.ts';
import { openStream, type SseMessage, type SseReader } from './sse-client.ts';
import { backend, FIXTURE, ORDER, ROOT, SECRET, WORKFLOWS } from './support.ts';

const SERVER = path.join(ROOT, 'tests/server/stream-server.ts');
const T0 = Date.parse('2026-06-01T09:00:00+08:00');
const HOUR = 3_600_000;
const TIMER_CASES = 40;
/** Kills the children and fails if they have not started, or stopped, by then. */
const DEADLINE_MS = 90_000;

const TINY = `workflow 限时 "限时"

case {
  说明: text?,
}

start 等待 by anyone

state 等待 "等待计时"
  after 1 hours -> 完成

final 完成 "完成"
`;

interface Server {
  readonly nodeId: string;
  url: string;
  readonly child: ChildProcess;
  readonly messages: { type: string; [k: string]: unknown }[];
  stderr: string;
  readonly exited: Promise<number | null>;
}

let store: OpenedDatabase | undefined;
const servers: Server[] = [];
let fired = 0;
let firedChanged: (() => void) | undefined;

/** The first message of this type from the process (already received, or the next one). */
function message(s: Server, type: string): Promise<{ type: string; [k: string]: unknown }> {
  return new Promise((resolve, reject) => {
    const found = s.messages.find((m) => m.type === type);
    if (found !== undefined) {
      resolve(found);
      return;
    }
    const on = (m: { type: string }): void => {
      if (m.type !== type) return;
      s.child.off('message', on);
      resolve(m);
    };
    s.child.on('message', on);
    void s.exited.then((code) => reject(new Error(`${s.nodeId} exited (${String(code)}) before "${type}": ${s.stderr}`)));
  });
}

async function startServer(schema: string, nodeId: string): Promise<Server> {
  const child = fork(SERVER, [schema, String(T0), nodeId], {
    cwd: ROOT, env: process.env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  const s: Server = {
    nodeId, child, url: '', messages: [], stderr: '',
    exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stderr?.on('data', (chunk: Buffer) => {
    s.stderr += chunk.toString();
  });
  child.on('message', (m: { type: string; fired?: number }) => {
    s.messages.push(m);
    if (m.type === 'fired') {
      fired += m.fired ?? 0;
      firedChanged?.();
    }
  });
  s.url = String((await message(s, 'ready'))['url']);
  return s;
}

const auth = async (actor: string): Promise<{ authorization: string }> => ({ authorization: `Bearer ${await signToken(SECRET, actor)}` });

async function post(base: string, p: string, actor: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${p}`, { method: 'POST', headers: { ...(await auth(actor)), 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

const data = (m: SseMessage): Record<string, unknown> => JSON.parse(m.data) as Record<string, unknown>;

beforeAll(async () => {
  if (backend !== 'postgres') return;
  store = await openTestDatabase();
  await loadDemoData(store, FIXTURE);
  const engine = new Engine({ store, clock: { now: () => T0 }, calendar: readFixture(FIXTURE).calendar });
  await deployWorkflows(engine, WORKFLOWS);
  await engine.deploy(TINY, 'tiny.wf');
  const schema = store.schema;
  const killer = setTimeout(() => {
    for (const s of servers) s.child.kill('SIGKILL');
  }, DEADLINE_MS);
  try {
    servers.push(...await Promise.all([startServer(schema, 'node-a'), startServer(schema, 'node-b')]));
  } finally {
    clearTimeout(killer);
  }
}, DEADLINE_MS + 30_000);

afterAll(async () => {
  for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  await store?.close();
});

describe('two server processes on one Postgres', () => {
  it.skipIf(backend !== 'postgres')('(Postgres only) an event sent to process A is seen on process B\'s SSE stream; due timers fire once each', async () => {
    const [a, b] = servers as [Server, Server];
    expect(a.url).not.toBe(b.url);

    // A case started on A; its stream opened on B with a ticket A issued.
    const started = await post(a.url, '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER });
    expect(started.status).toBe(201);
    const id = String(started.body['id']);
    const t = await post(a.url, '/v1/stream-tickets', '社区书记张', { case: id });
    expect(t.status).toBe(201);
    const opened = await openStream(`${b.url}${String(t.body['url'])}`);
    expect(opened.status).toBe(200);
    const onB = opened.reader as SseReader;
    const inbox = (await openStream(`${b.url}/v1/inbox/stream`, await auth('卫健局书记钱'))).reader as SseReader;
    expect((await onB.next((m) => m.event === 'case')).id).toBe('1');
    await inbox.next();

    const sent = await post(a.url, `/v1/cases/${encodeURIComponent(id)}/events`, '社区书记张', { type: '派单', payload: { 单位: '县卫健局' } });
    expect(sent.status).toBe(200);
    const seen = await onB.next((m) => m.event === 'case');
    expect(seen.id).toBe('2');
    expect(data(seen)).toMatchObject({ caseId: id, seq: 2, type: '派单', state: '待接单', actor: '社区书记张' });
    expect(data(await inbox.next((m) => m.event === 'inbox' && data(m)['caseId'] === id))).toMatchObject({ canAct: true, state: '待接单' });
    inbox.close();

    // Timers: cases whose deadline falls an hour after T0, half started through each process.
    const ids: string[] = [];
    for (let i = 0; i < TIMER_CASES; i++) {
      const r = await post(i % 2 === 0 ? a.url : b.url, '/v1/cases', '居民王先生', { workflow: '限时', orgUnit: '永乐社区', data: {} });
      expect(r.status).toBe(201);
      ids.push(String(r.body['id']));
    }
    const watched = (await openStream(`${b.url}/v1/cases/${encodeURIComponent(ids[0] ?? '')}/stream`, await auth('社区书记张'))).reader as SseReader;
    expect(data(await watched.next((m) => m.event === 'case'))).toMatchObject({ seq: 1, state: '等待' });

    // Two hours on, in both processes: both pollers race for the same due timers.
    for (const s of servers) s.child.send({ type: 'clock', now: T0 + 2 * HOUR });
    while (fired < TIMER_CASES) {
      await new Promise<void>((resolve) => {
        firedChanged = resolve;
      });
    }
    expect(fired).toBe(TIMER_CASES);
    expect(data(await watched.next((m) => m.event === 'case'))).toMatchObject({ seq: 2, state: '完成', status: 'done', actor: null });
    watched.close();

    // Each process counts what it fired; together, every timer once.
    const counted = await Promise.all(servers.map(async (s) => {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      return Number(/^wf_timers_fired_total (\S+)$/m.exec(text)?.[1] ?? 'NaN');
    }));
    expect(counted.reduce((x, y) => x + y, 0)).toBe(TIMER_CASES);

    // Stopping B with its stream still open: the stream ends and the process exits.
    b.child.send({ type: 'stop' });
    a.child.send({ type: 'stop' });
    await onB.end();
    expect(await b.exited).toBe(0);
    expect(await a.exited).toBe(0);
    expect(`${a.stderr}${b.stderr}`).toBe('');

    // The log: exactly one timer event per case, and each case moved once.
    if (store === undefined) throw new Error('no store');
    const perCase = await store.db.selectFrom('events').select(['case_id', store.db.fn.countAll<string>().as('n')])
      .where('type', 'like', 'xstate.after.%').where('case_id', 'in', ids).groupBy('case_id').execute();
    expect(perCase).toHaveLength(TIMER_CASES);
    expect(perCase.every((r) => Number(r.n) === 1)).toBe(true);
    const cases = await store.db.selectFrom('cases').select(['id', 'state', 'version']).where('id', 'in', ids).execute();
    expect(cases.filter((c) => c.state !== '完成' || Number(c.version) !== 2)).toEqual([]);
  }, DEADLINE_MS);
});
