/**
 * The outbox worker on the database (PGlite, or Postgres with DATABASE_URL): effects of real 五单
 * cases delivered at least once and applied once (ledger, notifications, webhooks), retries with
 * backoff under the injected clock, the dead-letter list and operator retries.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { defaultHandlers, ledgerEntryNo, notifications, OutboxWorker, pointsBalance, type EffectHandler, type OutboxEntry } from '../../engine/outbox.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { openAppDatabase, openDatabase } from '../../engine/store/index.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { claimOutbox, outboxOfCase, type OutboxRow } from '../../engine/store/outbox.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, databaseUrl, dropRole, openTestDatabase, uniqueName } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');

let store: OpenedDatabase;
let engine: Engine;
let now = Date.parse('2026-03-02T09:00:00+08:00');
const clock = { now: () => now };
const iso = (ms: number): string => new Date(ms).toISOString();

/** What the local webhook receiver got, and which cases it answers 500 for. */
interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: { id: string; topic: string; caseId: string; seq: number; effectNo: number; payload: unknown; attempt: number; sentAt: string };
}
const received: Received[] = [];
const failing = new Set<string>();
let server: Server;
let baseUrl: string;

const DATA = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

interface Run {
  readonly unit: string;
  readonly secretary: string;
  readonly member: string;
  readonly category: string;
  readonly hours: number;
  readonly scores: Readonly<Record<string, number>>;
}

/** Runs a 五单 case from 点单 to 办结 and returns its id. */
async function runToDone(run: Run): Promise<string> {
  const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: { ...DATA, 类别: run.category } });
  await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: run.unit } });
  await engine.sendEvent(c.id, { type: '接单', actor: run.secretary });
  await engine.sendEvent(c.id, { type: '抢单', actor: run.member });
  await engine.sendEvent(c.id, { type: '完成', actor: run.member, payload: { 办理情况: '已办理完毕', 服务小时: run.hours } });
  const done = await engine.sendEvent(c.id, { type: '评价', actor: '居民王先生', payload: { 评分: run.scores } });
  expect(done).toMatchObject({ state: '办结', status: 'done' });
  return c.id;
}

const ALL_FIVES = { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 5, 群众是否满意: 5 };

/** Runs the worker until a run claims nothing; returns the summed counts. */
async function drain(worker: OutboxWorker): Promise<{ claimed: number; delivered: number; retrying: number; dead: number }> {
  const total = { claimed: 0, delivered: 0, retrying: 0, dead: 0 };
  for (;;) {
    const r = await worker.runOnce();
    if (r.claimed === 0) return total;
    total.claimed += r.claimed;
    total.delivered += r.delivered;
    total.retrying += r.retrying;
    total.dead += r.dead;
  }
}

async function ledgerOf(caseId: string): Promise<{ entry_no: number; actor_id: string; points: string; hours: string; reason: string; event_seq: number | null }[]> {
  return store.db.selectFrom('points_ledger').select(['entry_no', 'actor_id', 'points', 'hours', 'reason', 'event_seq']).where('case_id', '=', caseId).orderBy('entry_no').execute();
}

function entryOf(row: OutboxRow): OutboxEntry {
  return { caseId: row.caseId, seq: row.seq, effectNo: row.effectNo, kind: row.kind, effect: row.payload as OutboxEntry['effect'], attempt: row.attempts, createdAt: row.createdAt };
}

beforeAll(async () => {
  store = await openTestDatabase();
  const raw = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as { units: { id: string; parent?: string; level: string; name?: string }[]; actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[] };
  const fixtures = loadFixtures(raw);
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of raw.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar: fixtures.calendar });
  await engine.deploy(readFileSync(WUDAN, 'utf8'), WUDAN, fileLoader);

  server = createServer((request, response) => {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (text += chunk));
    request.on('end', () => {
      const body = JSON.parse(text) as Received['body'];
      received.push({ path: request.url ?? '', headers: request.headers, body });
      response.statusCode = failing.has(body.caseId) ? 500 : 204;
      response.end(failing.has(body.caseId) ? 'down for maintenance' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await store?.close();
});

describe(`the outbox on ${backend}`, () => {
  it('notifications lead their key with case_id (DESIGN §3 scale-out)', async () => {
    const rows = await store.query<{ first_column: string }>(
      `select a.attname as first_column from pg_index i
       join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
       where i.indisprimary and n.nspname = $1 and c.relname = 'notifications'`, [store.schema]);
    expect(rows.map((r) => r.first_column)).toEqual(['case_id']);
  });

  it('delivers the effects of a case run to 办结: inboxes, the points ledger and the balance; a second run changes nothing', async () => {
    const caseId = await runToDone({ unit: '县卫健局', secretary: '卫健局书记钱', member: '党员李', category: '环境', hours: 3, scores: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 4, 群众是否满意: 5 } });
    const pending = await outboxOfCase(store, caseId);
    expect(pending.map((r) => r.kind).sort()).toEqual(['credit', 'credit', 'notify', 'notify', 'notify', 'notify', 'webhook']);
    expect(pending.every((r) => r.status === 'pending' && r.attempts === 0)).toBe(true);

    // No webhook URLs configured: the emitted topic has no subscriber and is delivered as such.
    const worker = new OutboxWorker({ store, clock });
    now += 1_000;
    expect(await worker.runOnce()).toEqual({ claimed: 7, delivered: 7, retrying: 0, dead: 0 });
    const delivered = await outboxOfCase(store, caseId);
    expect(delivered.map((r) => [r.status, r.attempts, r.deliveredAt])).toEqual(delivered.map(() => ['delivered', 1, iso(now)]));

    // 服务积分(环境, 5, 4.75) is 10 points; the hours go to the time bank as their own entry.
    const ledger = await ledgerOf(caseId);
    expect(ledger.map((e) => [e.actor_id, Number(e.points), Number(e.hours), e.reason, e.event_seq])).toEqual([
      ['党员李', 10, 0, '五单服务积分', 6],
      ['党员李', 0, 3, '时间银行', 6],
    ]);
    const credits = delivered.filter((r) => r.kind === 'credit');
    expect(ledger.map((e) => e.entry_no)).toEqual(credits.map((r) => ledgerEntryNo(r)));
    expect(await pointsBalance(store, '党员李')).toEqual({ points: 10, hours: 3 });

    const inbox = await notifications(store, { caseId });
    expect(inbox.map((n) => [n.kind, n.role, n.orgUnitId, n.personId, n.message]).sort()).toEqual([
      ['notify', '单位书记', '县卫健局', null, '有新的群众心愿待接单'],
      ['notify', '在职党员', '县卫健局', null, '有新的群众心愿可以抢单'],
      ['notify', null, null, '党员李', '服务对象已评单，请查看评价结果'],
      ['notify', null, null, '居民王先生', '您的心愿已办理完成，请评单'],
    ].sort());
    expect((await notifications(store, { orgUnitId: '县卫健局', role: '单位书记' })).map((n) => n.caseId)).toContain(caseId);
    expect((await notifications(store, { personId: '居民王先生', caseId })).map((n) => n.message)).toEqual(['您的心愿已办理完成，请评单']);

    now += 60_000;
    expect(await worker.runOnce()).toEqual({ claimed: 0, delivered: 0, retrying: 0, dead: 0 });
    expect(await ledgerOf(caseId)).toEqual(ledger);
    expect(await pointsBalance(store, '党员李')).toEqual({ points: 10, hours: 3 });
    expect(await pointsBalance(store, '没有积分的人')).toEqual({ points: 0, hours: 0 });
  });

  it('a crash between applying effects and marking them delivered applies them again, and the ledger still credits once', async () => {
    const caseId = await runToDone({ unit: '县卫健局', secretary: '卫健局书记钱', member: '党员杨', category: '养老', hours: 1.5, scores: ALL_FIVES });
    const leaseMs = 30_000;
    const worker = new OutboxWorker({ store, clock, leaseMs });

    // The doomed worker: claims, applies every effect of the case, and dies before marking any.
    const claimed = (await claimOutbox(store, { now: iso(now), leaseUntil: iso(now + leaseMs), limit: 100 })).filter((r) => r.caseId === caseId);
    expect(claimed.length).toBe(7);
    const handlers = defaultHandlers();
    for (const row of claimed) await handlers[row.kind as keyof typeof handlers](entryOf(row), { store, now: iso(now) });
    expect(await pointsBalance(store, '党员杨')).toEqual({ points: 15, hours: 1.5 });

    // Its lease holds the rows until it runs out; then another worker delivers them again.
    expect((await worker.runOnce()).claimed).toBe(0);
    now += leaseMs - 1;
    expect((await worker.runOnce()).claimed).toBe(0);
    now += 1;
    expect(await worker.runOnce()).toEqual({ claimed: 7, delivered: 7, retrying: 0, dead: 0 });
    expect((await outboxOfCase(store, caseId)).map((r) => [r.status, r.attempts])).toEqual(claimed.map(() => ['delivered', 2]));

    // 服务积分(养老, 5, 5) is 15 points; 1.5 hours.
    expect((await ledgerOf(caseId)).map((e) => [e.actor_id, Number(e.points), Number(e.hours)])).toEqual([['党员杨', 15, 0], ['党员杨', 0, 1.5]]);
    expect(await pointsBalance(store, '党员杨')).toEqual({ points: 15, hours: 1.5 });
    expect((await notifications(store, { caseId })).length).toBe(4);

    // Applying a credit yet again (a third delivery) still writes nothing.
    const credit = claimed.find((r) => r.kind === 'credit');
    if (credit === undefined) throw new Error('no credit effect');
    await handlers.credit(entryOf(credit), { store, now: iso(now) });
    expect(await pointsBalance(store, '党员杨')).toEqual({ points: 15, hours: 1.5 });
  });

  it('POSTs webhook effects to the URL configured for their topic, keyed for deduplication', async () => {
    const caseId = await runToDone({ unit: '县城管局', secretary: '城管局局长冯', member: '党员马', category: '维修', hours: 2, scores: ALL_FIVES });
    const worker = new OutboxWorker({ store, clock, webhooks: { urls: { '五单.已评单': `${baseUrl}/rated` }, defaultUrl: `${baseUrl}/other`, headers: { authorization: 'Bearer test' } } });
    expect(await drain(worker)).toMatchObject({ claimed: 7, delivered: 7 });

    const mine = received.filter((r) => r.body.caseId === caseId);
    expect(mine.length).toBe(1);
    const hook = mine[0];
    const row = (await outboxOfCase(store, caseId)).find((r) => r.kind === 'webhook');
    expect(row).toBeDefined();
    expect(hook?.path).toBe('/rated');
    expect(hook?.headers['content-type']).toBe('application/json');
    expect(hook?.headers['authorization']).toBe('Bearer test');
    expect(hook?.headers['idempotency-key']).toBe(encodeURIComponent(`${caseId}/${row?.seq}/${row?.effectNo}`));
    expect(hook?.body).toMatchObject({ id: `${caseId}/${row?.seq}/${row?.effectNo}`, topic: '五单.已评单', caseId, seq: 6, attempt: 1, payload: ALL_FIVES, sentAt: iso(now) });
  });

  it('retries a failing webhook with capped exponential backoff, then lists it as a dead letter; an operator retry delivers it', async () => {
    const caseId = await runToDone({ unit: '县供电公司', secretary: '供电公司书记田', member: '党员石', category: '维修', hours: 1, scores: ALL_FIVES });
    failing.add(caseId);
    const worker = new OutboxWorker({ store, clock, maxAttempts: 4, backoff: { baseMs: 1_000, maxMs: 3_000 }, webhooks: { defaultUrl: `${baseUrl}/hook` } });
    const calls = (): number => received.filter((r) => r.body.caseId === caseId).length;

    expect(await worker.runOnce()).toEqual({ claimed: 7, delivered: 6, retrying: 1, dead: 0 });
    const webhookRow = async (): Promise<OutboxRow> => {
      const r = (await outboxOfCase(store, caseId)).find((x) => x.kind === 'webhook');
      if (r === undefined) throw new Error('no webhook effect');
      return r;
    };
    expect(await webhookRow()).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAt: iso(now + 1_000), lastError: expect.stringContaining('HTTP 500: down for maintenance') });

    // Waits of 1 s, 2 s, then 3 s (the cap) before attempts 2, 3 and 4; nothing is due before.
    for (const [wait, attempt] of [[1_000, 2], [2_000, 3], [3_000, 4]] as const) {
      now += wait - 1;
      expect((await worker.runOnce()).claimed).toBe(0);
      now += 1;
      const r = await worker.runOnce();
      expect(r.claimed).toBe(1);
      expect(calls()).toBe(attempt);
    }
    expect(await webhookRow()).toMatchObject({ status: 'dead', attempts: 4, deadAt: iso(now) });

    // Dead letters stay put however long it waits.
    now += 7 * 86_400_000;
    expect((await worker.runOnce()).claimed).toBe(0);
    expect(calls()).toBe(4);

    const page = await worker.deadLetters({ caseId });
    expect(page.next).toBeUndefined();
    expect(page.items).toHaveLength(1);
    const dead = page.items[0];
    expect(dead).toMatchObject({ caseId, kind: 'webhook', status: 'dead', attempts: 4, payload: { kind: 'webhook', topic: '五单.已评单' } });
    expect(dead?.lastError).toContain('HTTP 500');
    expect((await worker.deadLetters({ kind: 'credit', caseId })).items).toEqual([]);

    failing.delete(caseId);
    if (dead === undefined) throw new Error('no dead letter');
    expect(await worker.retry(dead)).toBe(1);
    expect(await worker.retry(dead)).toBe(0); // no longer dead
    expect(await webhookRow()).toMatchObject({ status: 'pending', attempts: 0, nextAttemptAt: iso(now), deadAt: null });
    expect(await worker.runOnce()).toEqual({ claimed: 1, delivered: 1, retrying: 0, dead: 0 });
    expect(calls()).toBe(5);
    expect(received.filter((r) => r.body.caseId === caseId).at(-1)?.body.attempt).toBe(1);
    expect(await webhookRow()).toMatchObject({ status: 'delivered', deliveredAt: iso(now) });
    expect((await worker.deadLetters({ caseId })).items).toEqual([]);
  });

  it('pages through dead letters filtered by case and kind, and retries them all by filter', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县城管局' } });
    await engine.sendEvent(c.id, { type: '退单', actor: '城管局局长冯', payload: { 原因: '不属于本单位职责' } });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const refuse: EffectHandler = async () => {
      throw new Error('SMS gateway refused');
    };
    const broken = new OutboxWorker({ store, clock, maxAttempts: 1, handlers: { notify: refuse } });
    expect(await broken.runOnce()).toEqual({ claimed: 3, delivered: 0, retrying: 0, dead: 3 });

    const first = await broken.deadLetters({ caseId: c.id, kind: 'notify' }, { limit: 2 });
    expect(first.items.map((r) => r.seq)).toEqual([2, 3]);
    expect(first.next).toEqual({ caseId: c.id, seq: 3, effectNo: 1 });
    const second = await broken.deadLetters({ caseId: c.id, kind: 'notify' }, { limit: 2, ...(first.next === undefined ? {} : { after: first.next }) });
    expect(second.items.map((r) => r.seq)).toEqual([4]);
    expect(second.next).toBeUndefined();
    expect(second.items[0]?.lastError).toBe('SMS gateway refused');
    expect((await broken.deadLetters({ caseId: c.id, kind: 'webhook' })).items).toEqual([]);

    const worker = new OutboxWorker({ store, clock });
    expect(await worker.retry({ caseId: c.id })).toBe(3);
    expect(await worker.runOnce()).toEqual({ claimed: 3, delivered: 3, retrying: 0, dead: 0 });
    expect((await notifications(store, { caseId: c.id })).map((n) => n.message).sort()).toEqual(
      ['单位已退单，请重新派单', '有新的群众心愿待接单', '有新的群众心愿待接单'].sort());
  });

  it('records escalations from a working-day timer in the inbox of the unit the case went to', async () => {
    now = Date.parse('2026-03-09T09:00:00+08:00'); // a Monday
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    // The reminder at 50%, then the 2-workday deadline: escalate to the street and notify its secretary.
    for (let i = 0; i < 2; i++) {
      const rows = await store.query<{ timer_id: string; event_type: string; due_at: unknown }>(
        `select timer_id, event_type, due_at from timers where case_id = $1 and state = 'scheduled' order by due_at, timer_id limit 1`, [c.id]);
      const t = rows[0];
      if (t === undefined) throw new Error('no scheduled timer');
      now = Math.max(now, new Date(t.due_at as string).getTime());
      await store.query(`update timers set state = 'claimed', claimed_by = 'outbox-test', claimed_until = $3::timestamptz where case_id = $1 and timer_id = $2`, [c.id, t.timer_id, iso(now + 60_000)]);
      expect(await engine.fireTimer(c.id, t.timer_id, t.event_type, 'outbox-test')).toBe(true);
    }
    expect(await engine.getCase(c.id)).toMatchObject({ unit: '龙形街道' });

    const worker = new OutboxWorker({ store, clock });
    expect(await drain(worker)).toMatchObject({ claimed: 3, delivered: 3 });
    const inbox = await notifications(store, { caseId: c.id });
    expect(inbox.map((n) => [n.kind, n.role, n.orgUnitId, n.reason]).sort()).toEqual([
      ['escalated', null, '龙形街道', 'escalated'],
      ['notify', '社区书记', '永乐社区', 'reminder'],
      ['notify', '街道书记', '龙形街道', 'timeout'],
    ].sort());
    expect(inbox.find((n) => n.kind === 'escalated')?.message).toBe('案件已从 永乐社区 上报至 龙形街道');
  });

  it('refuses nonsensical options with VALIDATION_FAILED', () => {
    expect(() => new OutboxWorker({ store, maxAttempts: 0 })).toThrow(EngineError);
    expect(() => new OutboxWorker({ store, leaseMs: 1.5 })).toThrow(/leaseMs/);
  });

  it('start() polls until stop(), delivering what comes due', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    const delivered: string[] = [];
    let seen: () => void = () => {};
    const done = new Promise<void>((resolve) => (seen = resolve));
    const notify: EffectHandler = async (entry, context) => {
      await defaultHandlers().notify(entry, context);
      delivered.push(entry.caseId);
      seen();
    };
    const worker = new OutboxWorker({ store, clock, handlers: { notify } });
    worker.start(10);
    await done;
    await worker.stop();
    expect((await outboxOfCase(store, c.id)).map((r) => r.status)).toEqual(['delivered']);
    expect(delivered).toContain(c.id);
  });

  it.runIf(backend === 'postgres')('(Postgres only) two workers on separate connection pools claim disjoint rows: each effect is handled exactly once', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    await store.query(
      `insert into outbox (case_id, seq, effect_no, kind, payload, next_attempt_at)
       select $1, 1000 + g, 1, 'test.count', jsonb_build_object('kind', 'test.count'), $2::timestamptz from generate_series(1, 400) as g`,
      [c.id, iso(now)]);
    const other = await openDatabase({ databaseUrl: databaseUrl ?? '', schema: store.schema, migrate: false, poolSize: 4 });
    try {
      const handled = new Map<number, number>();
      const count: EffectHandler = async (entry) => {
        handled.set(entry.seq, (handled.get(entry.seq) ?? 0) + 1);
      };
      const workers = [store, other, store, other].map((s) => new OutboxWorker({ store: s, clock, batchSize: 7, handlers: { 'test.count': count } }));
      const totals = await Promise.all(workers.map((w) => drain(w)));
      expect(totals.reduce((sum, t) => sum + t.delivered, 0)).toBe(400);
      expect(handled.size).toBe(400);
      expect([...handled.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it.runIf(backend === 'postgres')('(Postgres only) delivers through the application role: it may claim, mark, credit and notify', async () => {
    const role = uniqueName('wf_outbox_app');
    const app = await openAppDatabase({ databaseUrl: databaseUrl ?? '', schema: store.schema, appRole: role, poolSize: 2 });
    try {
      const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
      await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
      await store.query(
        `insert into outbox (case_id, seq, effect_no, kind, payload, next_attempt_at) values ($1, 900, 1, 'credit', $2::jsonb, $3::timestamptz)`,
        [c.id, JSON.stringify({ kind: 'credit', actor: '党员应用角色', points: 2, hours: 0.5, reason: '测试' }), iso(now)]);
      const worker = new OutboxWorker({ store: app, clock, maxAttempts: 1, handlers: { 'test.fail': async () => { throw new Error('always'); } } });
      await store.query(
        `insert into outbox (case_id, seq, effect_no, kind, payload, next_attempt_at) values ($1, 901, 1, 'test.fail', '{"kind":"test.fail"}'::jsonb, $2::timestamptz)`,
        [c.id, iso(now)]);
      expect(await drain(worker)).toEqual({ claimed: 3, delivered: 2, retrying: 0, dead: 1 });
      expect(await worker.retry({ caseId: c.id, kind: 'test.fail' })).toBe(1);
      expect(await pointsBalance(app, '党员应用角色')).toEqual({ points: 2, hours: 0.5 });
      expect((await notifications(app, { caseId: c.id })).map((n) => n.message)).toEqual(['有新的群众心愿待接单']);
    } finally {
      await app.close();
      await dropRole(store.db, role);
    }
  });
});
