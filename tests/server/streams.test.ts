/**
 * Live updates on a real listening port: stream tickets, a case's server-sent events (resumed with
 * Last-Event-ID without loss or duplicates), the inbox stream, the long-poll forms, heartbeats,
 * the refusals (no credentials, a bearer token in the URL, an expired ticket, a ticket for another
 * stream, a case the caller may not read), graceful shutdown with streams open, and the backlog
 * metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeFeed, decodePosition } from '../../engine/changes.ts';
import { buildApp } from '../../server/app.ts';
import { MeteredTimerPoller } from '../../server/metrics.ts';
import { openStream, type SseMessage, type SseReader } from './sse-client.ts';
import { openHarness, ORDER, SECRET, type Harness } from './support.ts';

let h: Harness;
let base: string;

type Json = Record<string, unknown>;

async function api(method: string, path: string, actor: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(actor === null ? {} : await h.auth(actor)), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Json };
}

async function startOrder(): Promise<string> {
  const r = await api('POST', '/v1/cases', '居民王先生', { workflow: '五单服务', orgUnit: '永乐社区', data: ORDER });
  expect(r.status).toBe(201);
  return String(r.body['id']);
}

function send(id: string, actor: string, type: string, payload: Json = {}): Promise<{ status: number; body: Json }> {
  return api('POST', `/v1/cases/${encodeURIComponent(id)}/events`, actor, { type, payload });
}

const dispatch = (id: string) => send(id, '社区书记张', '派单', { 单位: '县卫健局' });

async function ticket(actor: string, body: Json): Promise<{ ticket: string; url: string; expiresAt: string }> {
  const r = await api('POST', '/v1/stream-tickets', actor, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { ticket: string; url: string; expiresAt: string };
}

async function caseStream(id: string, actor: string, headers: Record<string, string> = {}, query = ''): Promise<SseReader> {
  const opened = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream${query}`, { ...(await h.auth(actor)), ...headers });
  expect(opened.status, JSON.stringify(opened.problem)).toBe(200);
  if (opened.reader === undefined) throw new Error('no stream');
  return opened.reader;
}

const data = (m: SseMessage): Json => JSON.parse(m.data) as Json;
const caseEvents = (m: SseMessage): boolean => m.event === 'case';

beforeAll(async () => {
  h = await openHarness({ streams: { heartbeatMs: 50, pollMs: 100 } });
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await h?.close();
});

describe('the case stream', () => {
  it('opens with a ticket from POST /v1/stream-tickets, starts with the latest event, and shows an event sent as it happens', async () => {
    const id = await startOrder();
    const t = await ticket('社区书记张', { case: id });
    expect(t.url).toBe(`/v1/cases/${encodeURIComponent(id)}/stream?ticket=${encodeURIComponent(t.ticket)}`);
    expect(Date.parse(t.expiresAt) - h.clock.now).toBe(60_000);

    // No Authorization header: the ticket alone opens it, as EventSource would.
    const opened = await openStream(`${base}${t.url}`);
    expect(opened.status).toBe(200);
    expect(opened.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(opened.headers.get('cache-control')).toContain('no-cache');
    const s = opened.reader as SseReader;
    try {
      const first = await s.next(caseEvents);
      expect(first.id).toBe('1');
      expect(data(first)).toMatchObject({ caseId: id, seq: 1, type: 'start', state: '待派单', status: 'active', version: 1, actor: '居民王先生' });

      expect((await dispatch(id)).status).toBe(200);
      const second = await s.next(caseEvents);
      expect(second.id).toBe('2');
      expect(data(second)).toMatchObject({ caseId: id, seq: 2, type: '派单', state: '待接单', status: 'active', version: 2, actor: '社区书记张' });
    } finally {
      s.close();
    }
  });

  it('resumes from Last-Event-ID with every event missed, each once, then follows on', async () => {
    const id = await startOrder();
    const s1 = await caseStream(id, '社区书记张');
    expect((await s1.next(caseEvents)).id).toBe('1');
    expect((await dispatch(id)).status).toBe(200);
    expect((await s1.next(caseEvents)).id).toBe('2');
    s1.close();

    // Missed while disconnected: 接单 (3) and 抢单 (4).
    expect((await send(id, '卫健局书记钱', '接单')).status).toBe(200);
    expect((await send(id, '党员李', '抢单')).status).toBe(200);

    const s2 = await caseStream(id, '社区书记张', { 'last-event-id': '2' });
    try {
      const a = await s2.next();
      const b = await s2.next();
      expect([a.id, a.event, data(a)['type'], data(a)['state']]).toEqual(['3', 'case', '接单', '待抢单']);
      expect([b.id, b.event, data(b)['type'], data(b)['state']]).toEqual(['4', 'case', '抢单', '办理中']);
      expect((await send(id, '党员李', '完成', { 办理情况: '已清理完毕', 服务小时: 2 })).status).toBe(200);
      const c = await s2.next(caseEvents);
      expect([c.id, data(c)['type']]).toEqual(['5', '完成']);
      // Nothing else came in between: no duplicates of 3 and 4.
      expect(s2.pending().filter(caseEvents)).toEqual([]);
    } finally {
      s2.close();
    }

    // `?after=` does the same for a new EventSource, which cannot set the header.
    const s3 = await caseStream(id, '督查员周', {}, '?after=3');
    try {
      expect((await s3.next()).id).toBe('4');
      expect((await s3.next()).id).toBe('5');
    } finally {
      s3.close();
    }
  });

  it('shows events written by the engine directly (not through this app), such as a deadline firing', async () => {
    const id = await startOrder();
    const s = await caseStream(id, '社区书记张');
    try {
      expect((await s.next(caseEvents)).id).toBe('1');
      await h.engine.sendEvent(id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
      expect(data(await s.next(caseEvents))).toMatchObject({ seq: 2, type: '派单' });
    } finally {
      s.close();
    }
  });

  it('sends heartbeat comments while idle', async () => {
    const id = await startOrder();
    const s = await caseStream(id, '社区书记张');
    try {
      expect((await s.next((m) => m.event === 'comment' && m.data === 'heartbeat')).data).toBe('heartbeat');
    } finally {
      s.close();
    }
  });

  it('says `gone` and ends when the case leaves the caller\'s reach, without showing the event that moved it', async () => {
    const id = await startOrder();
    expect((await dispatch(id)).status).toBe(200);
    // The unit the order was dispatched to may read it, and follows it.
    const s = await caseStream(id, '卫健局书记钱');
    try {
      expect(data(await s.next(caseEvents))).toMatchObject({ seq: 2, type: '派单' });
      expect((await send(id, '卫健局书记钱', '退单', { 原因: '不属于本单位职责' })).status).toBe(200);
      const gone = await s.next((m) => m.event !== 'comment');
      expect([gone.event, data(gone)]).toEqual(['gone', { caseId: id }]);
      await s.end();
      // Reading it again is refused as for any case out of reach.
      expect((await api('GET', `/v1/cases/${encodeURIComponent(id)}`, '卫健局书记钱')).status).toBe(404);
    } finally {
      s.close();
    }
  });

  it('marks a suspended case as suspended', async () => {
    const id = await startOrder();
    const s = await caseStream(id, '社区书记张');
    try {
      await s.next(caseEvents);
      expect((await api('POST', `/v1/cases/${encodeURIComponent(id)}/suspend`, '管理员钟', { reason: '核实情况' })).status).toBe(200);
      expect(data(await s.next(caseEvents))).toMatchObject({ seq: 2, type: 'case.suspended', status: 'suspended' });
      expect((await api('POST', `/v1/cases/${encodeURIComponent(id)}/resume`, '管理员钟', {})).status).toBe(200);
      expect(data(await s.next(caseEvents))).toMatchObject({ seq: 3, type: 'case.resumed', status: 'active' });
    } finally {
      s.close();
    }
  });
});

describe('the inbox stream', () => {
  it('tells an actor of a case they can now act on, with the action, and when they no longer can; resumable', async () => {
    const id = await startOrder();
    const t = await ticket('卫健局书记钱', {});
    expect(t.url).toMatch(/^\/v1\/inbox\/stream\?ticket=/);
    const opened = await openStream(`${base}${t.url}`);
    const s = opened.reader as SseReader;
    let resumeFrom: string;
    try {
      // The first message gives a position even before anything happens.
      const seen = await s.next();
      expect(seen.event).toBe('seen');
      expect(seen.id).toBeTruthy();

      expect((await dispatch(id)).status).toBe(200);
      const now = await s.next((m) => m.event === 'inbox' && data(m)['caseId'] === id);
      expect(data(now)).toMatchObject({ caseId: id, canAct: true, state: '待接单', type: '派单', version: 2, workflow: '五单服务' });
      expect((data(now)['actions'] as { event: string }[]).map((a) => a.event)).toEqual(expect.arrayContaining(['接单', '退单']));
      // A list: the resident's name and phone number are masked, as in GET /v1/inbox.
      expect((data(now)['data'] as Json)['电话']).toBe('138****0000');
      expect(now.id).toBe(data(now)['cursor']);
      resumeFrom = String(now.id);

      // Accepted: the secretary can still assign a member (指派).
      expect((await send(id, '卫健局书记钱', '接单')).status).toBe(200);
      const still = await s.next((m) => m.event === 'inbox' && data(m)['caseId'] === id);
      expect(data(still)).toMatchObject({ caseId: id, canAct: true, state: '待抢单' });
      expect((data(still)['actions'] as { event: string }[]).map((a) => a.event)).toEqual(['指派']);

      // Claimed by a member: nothing left for the secretary to do.
      expect((await send(id, '党员李', '抢单')).status).toBe(200);
      const done = await s.next((m) => m.event === 'inbox' && data(m)['caseId'] === id);
      expect(data(done)).toMatchObject({ caseId: id, canAct: false, actions: [], state: '办理中', version: 4 });
    } finally {
      s.close();
    }

    // Resuming after the first message tells the case as it is now, once.
    const again = await openStream(`${base}/v1/inbox/stream`, { ...(await h.auth('卫健局书记钱')), 'last-event-id': resumeFrom });
    const r = again.reader as SseReader;
    try {
      const m = await r.next((x) => x.event === 'inbox');
      expect(data(m)).toMatchObject({ caseId: id, canAct: false, state: '办理中', seq: 4 });
      expect(r.pending().filter((x) => x.event === 'inbox')).toEqual([]);
    } finally {
      r.close();
    }
  });

  it('says `gone` when a case it offered leaves the caller\'s reach (returned by the unit)', async () => {
    const id = await startOrder();
    const s = (await openStream(`${base}/v1/inbox/stream`, await h.auth('卫健局书记钱'))).reader as SseReader;
    try {
      await s.next();
      expect((await dispatch(id)).status).toBe(200);
      expect(data(await s.next((m) => m.event === 'inbox' && data(m)['caseId'] === id))).toMatchObject({ canAct: true });
      expect((await send(id, '卫健局书记钱', '退单', { 原因: '不属于本单位职责' })).status).toBe(200);
      const gone = await s.next((m) => m.event === 'inbox' && data(m)['caseId'] === id);
      expect(data(gone)).toEqual({ cursor: gone.id, caseId: id, seq: 3, canAct: false, gone: true });
    } finally {
      s.close();
    }
  });

  it('says nothing of cases the caller may not see', async () => {
    const id = await startOrder();
    const other = await openStream(`${base}/v1/inbox/stream`, await h.auth('社区书记刘'));
    const mine = await openStream(`${base}/v1/inbox/stream`, await h.auth('卫健局书记钱'));
    const o = other.reader as SseReader;
    const m = mine.reader as SseReader;
    try {
      await o.next();
      await m.next();
      expect((await dispatch(id)).status).toBe(200);
      // Both streams read the same batch; the one who may act hears of it, the other only moves on.
      expect(data(await m.next((x) => x.event === 'inbox'))).toMatchObject({ caseId: id, canAct: true });
      const next = await o.next();
      expect(next.event).toBe('seen');
    } finally {
      o.close();
      m.close();
    }
  });
});

describe('the long-poll forms', () => {
  it('answers at once when events follow `after`, when one arrives, and with nothing when the wait runs out', async () => {
    const id = await startOrder();
    const path = `/v1/cases/${encodeURIComponent(id)}/changes`;
    const now = await api('GET', `${path}?after=0&waitMs=0`, '社区书记张');
    expect(now.status).toBe(200);
    expect(now.body).toMatchObject({ caseId: id, next: 1, items: [{ seq: 1, type: 'start', state: '待派单' }] });

    const latest = await api('GET', path, '社区书记张');
    expect(latest.body).toMatchObject({ next: 1, items: [{ seq: 1 }] });

    const waiting = api('GET', `${path}?after=1&waitMs=30000`, '社区书记张');
    expect((await dispatch(id)).status).toBe(200);
    const arrived = await waiting;
    expect(arrived.status).toBe(200);
    expect(arrived.body).toMatchObject({ next: 2, items: [{ seq: 2, type: '派单', state: '待接单', version: 2 }] });

    const timedOut = await api('GET', `${path}?after=2&waitMs=20`, '社区书记张');
    expect(timedOut.body).toEqual({ caseId: id, items: [], next: 2 });
  });

  it('answers 404 instead of the events that took the case out of the caller\'s reach', async () => {
    const id = await startOrder();
    expect((await dispatch(id)).status).toBe(200);
    const path = `/v1/cases/${encodeURIComponent(id)}/changes`;
    const waiting = api('GET', `${path}?after=2&waitMs=30000`, '卫健局书记钱');
    expect((await send(id, '卫健局书记钱', '退单', { 原因: '不属于本单位职责' })).status).toBe(200);
    const answer = await waiting;
    expect([answer.status, answer.body['code']]).toEqual([404, 'CASE_NOT_FOUND']);
  });

  it('follows the inbox by cursor', async () => {
    const start = await api('GET', '/v1/inbox/changes?waitMs=10', '卫健局书记钱');
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({ items: [], reset: false });
    const cursor = String(start.body['next']);
    expect(() => decodePosition(cursor)).not.toThrow();

    const id = await startOrder();
    expect((await dispatch(id)).status).toBe(200);
    const changed = await api('GET', `/v1/inbox/changes?after=${cursor}&waitMs=30000`, '卫健局书记钱');
    expect(changed.status).toBe(200);
    const items = changed.body['items'] as Json[];
    expect(items.map((i) => [i['caseId'], i['canAct']])).toContainEqual([id, true]);
    expect(changed.body['next']).toBe(items[items.length - 1]?.['cursor']);

    const waiting = api('GET', `/v1/inbox/changes?after=${String(changed.body['next'])}&waitMs=30000`, '卫健局书记钱');
    expect((await send(id, '卫健局书记钱', '退单', { 原因: '不属于本单位职责' })).status).toBe(200);
    expect(((await waiting).body['items'] as Json[]).map((i) => [i['caseId'], i['canAct'], i['gone']])).toEqual([[id, false, true]]);

    const bad = await api('GET', '/v1/inbox/changes?after=not-a-cursor&waitMs=0', '卫健局书记钱');
    expect([bad.status, bad.body['code']]).toEqual([422, 'VALIDATION_FAILED']);
    const tooLong = await api('GET', `/v1/cases/${encodeURIComponent(id)}/changes?waitMs=30001`, '卫健局书记钱');
    expect([tooLong.status, tooLong.body['code']]).toEqual([400, 'BAD_REQUEST']);
  });
});

describe('who may open a stream', () => {
  let id: string;
  beforeAll(async () => {
    id = await startOrder();
  });

  it('refuses a stream without credentials (401)', async () => {
    const r = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream`);
    expect([r.status, r.problem?.['code'], r.problem?.['reason']]).toEqual([401, 'UNAUTHORIZED', 'no_credentials']);
  });

  it('refuses a bearer token in the URL, as ?ticket= or as ?access_token= (401)', async () => {
    const token = (await h.auth('社区书记张')).authorization.slice('Bearer '.length);
    for (const q of [`ticket=${token}`, `access_token=${token}`]) {
      const r = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream?${q}`);
      expect([r.status, r.problem?.['code'], r.problem?.['reason']], q).toEqual([401, 'UNAUTHORIZED', 'token_in_url']);
    }
    const inbox = await openStream(`${base}/v1/inbox/stream?ticket=${token}`);
    expect([inbox.status, inbox.problem?.['reason']]).toEqual([401, 'token_in_url']);
    // …and a ticket is no bearer token.
    const t = await ticket('社区书记张', { case: id });
    const asBearer = await api('GET', `/v1/cases/${encodeURIComponent(id)}`, null, undefined, { authorization: `Bearer ${t.ticket}` });
    expect(asBearer.status).toBe(401);
  });

  it('refuses an expired ticket (401), judged by the server clock', async () => {
    const t = await ticket('社区书记张', { case: id });
    const saved = h.clock.now;
    h.clock.now += 61_000;
    try {
      const r = await openStream(`${base}${t.url}`);
      expect([r.status, r.problem?.['code'], r.problem?.['reason']]).toEqual([401, 'UNAUTHORIZED', 'ticket_expired']);
    } finally {
      h.clock.now = saved;
    }
    const fresh = await openStream(`${base}${t.url}`);
    expect(fresh.status).toBe(200);
    fresh.reader?.close();
  });

  it('refuses a ticket for another stream (403)', async () => {
    const other = await startOrder();
    const forOther = await ticket('社区书记张', { case: other });
    const r = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream?ticket=${encodeURIComponent(forOther.ticket)}`);
    expect([r.status, r.problem?.['code']]).toEqual([403, 'NOT_ALLOWED']);
    const inboxTicket = await ticket('社区书记张', {});
    const r2 = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream?ticket=${encodeURIComponent(inboxTicket.ticket)}`);
    expect([r2.status, r2.problem?.['code']]).toEqual([403, 'NOT_ALLOWED']);
    const r3 = await openStream(`${base}/v1/inbox/stream?ticket=${encodeURIComponent(forOther.ticket)}`);
    expect([r3.status, r3.problem?.['code']]).toEqual([403, 'NOT_ALLOWED']);
  });

  it('lets a resident with a case token (码上办) follow that case, by long-poll or stream, and nothing else', async () => {
    const form = await api('POST', `/v1/intake/${encodeURIComponent('五单服务')}`, null, { orgUnit: '永乐社区', data: ORDER });
    expect(form.status).toBe(201);
    const own = String((form.body['case'] as Json)['id']);
    const bearer = { authorization: `Bearer ${String(form.body['token'])}` };
    const polled = await api('GET', `/v1/cases/${encodeURIComponent(own)}/changes?waitMs=0`, null, undefined, bearer);
    expect(polled.body).toMatchObject({ caseId: own, next: 1, items: [{ seq: 1, type: 'start' }] });
    const s = await openStream(`${base}/v1/cases/${encodeURIComponent(own)}/stream`, bearer);
    expect(s.status).toBe(200);
    expect((await (s.reader as SseReader).next(caseEvents)).id).toBe('1');
    s.reader?.close();
    const other = await api('GET', `/v1/cases/${encodeURIComponent(id)}/changes?waitMs=0`, null, undefined, bearer);
    expect([other.status, other.body['code']]).toEqual([403, 'NOT_ALLOWED']);
    const inbox = await openStream(`${base}/v1/inbox/stream`, bearer);
    expect([inbox.status, inbox.problem?.['code']]).toEqual([403, 'NOT_ALLOWED']);
  });

  it('refuses the stream of a case the caller may not read: no ticket, no stream, no long-poll (404, as for GET /v1/cases/{id})', async () => {
    // 社区书记刘 holds roles in 滨江社区 only; the case is in 永乐社区.
    const t = await api('POST', '/v1/stream-tickets', '社区书记刘', { case: id });
    expect([t.status, t.body['code']]).toEqual([404, 'CASE_NOT_FOUND']);
    const s = await openStream(`${base}/v1/cases/${encodeURIComponent(id)}/stream`, await h.auth('社区书记刘'));
    expect([s.status, s.problem?.['code']]).toEqual([404, 'CASE_NOT_FOUND']);
    const p = await api('GET', `/v1/cases/${encodeURIComponent(id)}/changes?waitMs=0`, '社区书记刘');
    expect([p.status, p.body['code']]).toEqual([404, 'CASE_NOT_FOUND']);
    // A ticket issued while the caller could read the case is checked again when the stream opens.
    const unknown = await api('POST', '/v1/stream-tickets', '社区书记张', { case: 'no-such-case' });
    expect([unknown.status, unknown.body['code']]).toEqual([404, 'CASE_NOT_FOUND']);
  });
});

describe('shutdown', () => {
  it('app.close() ends the open streams and waiting long-polls instead of hanging on them', async () => {
    const app = await buildApp({ engine: h.engine, jwtSecret: SECRET, rateLimit: false, streams: { changes: new ChangeFeed(h.store, { pollMs: 100 }) } });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const id = await startOrder();
    const s = await openStream(`${url}/v1/cases/${encodeURIComponent(id)}/stream`, await h.auth('社区书记张'));
    const reader = s.reader as SseReader;
    await reader.next(caseEvents);
    const poll = fetch(`${url}/v1/cases/${encodeURIComponent(id)}/changes?after=1&waitMs=30000`, { headers: await h.auth('社区书记张') });
    // The long-poll is in (it is counted as open) before the server closes.
    for (;;) {
      const text = await (await fetch(`${url}/metrics`)).text();
      if (/wf_streams_open\{kind="long-poll"\} 1/.test(text)) break;
    }
    await app.close();
    await reader.end();
    expect(reader.ended).toBe(true);
    const answered = await poll;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toMatchObject({ items: [], next: 1 });
  });
});

describe('metrics', () => {
  it('/metrics shows timers due and fired, the outbox backlog and lag, and open streams', async () => {
    const scrape = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();
    const value = (text: string, name: string): number => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
      if (m === null) throw new Error(`${name} is not in /metrics`);
      return Number(m[1]);
    };
    // Dispatching notifies the unit's secretary: an outbox effect that waits, as no worker runs here.
    expect((await dispatch(await startOrder())).status).toBe(200);
    const before = await scrape();
    for (const name of ['wf_timers_due', 'wf_timers_claimed', 'wf_outbox_dead', 'wf_timers_fired_total']) {
      expect(value(before, name), name).toBeGreaterThanOrEqual(0);
    }
    expect(value(before, 'wf_outbox_pending')).toBeGreaterThan(0);
    expect(value(before, 'wf_outbox_lag_seconds')).toBeGreaterThan(0);
    expect(value(before, 'wf_streams_open')).toBeGreaterThanOrEqual(0);

    // Three weeks on, every case's deadline is due; the poller fires them and counts it.
    const saved = h.clock.now;
    h.clock.now += 21 * 86_400_000;
    try {
      const due = value(await scrape(), 'wf_timers_due');
      expect(due).toBeGreaterThan(0);
      const poller = new MeteredTimerPoller(h.engine, h.app.metrics, { logger: { info: () => {}, warn: () => {}, error: () => {} } });
      const fired = await poller.poll();
      expect(fired).toBeGreaterThanOrEqual(due);
      const after = await scrape();
      expect(value(after, 'wf_timers_fired_total')).toBe(fired);
      expect(value(after, 'wf_timers_due')).toBe(0);
    } finally {
      h.clock.now = saved;
    }
  });
});
