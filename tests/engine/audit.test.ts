/**
 * History for auditors (issue 3): verify names the first altered, inserted or missing event;
 * replay re-runs every case on its stored definition and names the first mismatch (a corrupted
 * case row too); stateAt shows a case as it was. On PGlite, or Postgres with DATABASE_URL.
 *
 * Tampering is done as the owner inside one transaction that disables the append-only trigger,
 * changes rows and re-enables it (as ALWAYS, as migration 0002 left it), so no other session
 * ever sees the guard off.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import type { Runtime } from '../../dsl/runtime.ts';
import { auditCases, replay, replayCases, ReplayPool, stateAt, systemEventReplayers, verify, verifyChain, type AuditProgress } from '../../engine/audit.ts';
import { createCalendar } from '../../engine/calendar.ts';
import { Engine, type CaseView } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { canonicalJson, chainHash } from '../../engine/hash.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { replayEvent, type CaseSnapshot } from '../../engine/step.ts';
import { loadEvents, type EventRecord } from '../../engine/store/cases.ts';
import { loadReplayLogs } from '../../engine/store/audit.ts';
import { resumeCase, suspendCase } from '../../engine/admin.ts';
import { findActor, upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import type { Database, OpenedDatabase } from '../../engine/store/index.ts';
import { backend, openTestDatabase, sqlStateOfRejection } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');
const WHISTLE = path.join(ROOT, 'workflows/吹哨报到.wf');
const ORG = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as {
  units: { id: string; parent?: string; level: string; name?: string }[];
  actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[];
};

let store: OpenedDatabase;
let engine: Engine;
let now = Date.parse('2026-03-02T09:00:00+08:00');
const clock = { now: () => now };
const MINUTE = 60_000;

const DATA = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

beforeAll(async () => {
  store = await openTestDatabase();
  await upsertOrgUnits(store, ORG.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of ORG.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar: loadFixtures(ORG).calendar });
  await engine.deploy(readFileSync(WUDAN, 'utf8'), WUDAN, fileLoader);
  await engine.deploy(readFileSync(WHISTLE, 'utf8'), WHISTLE, fileLoader);
});

afterAll(async () => {
  await store?.close();
});

/** Runs `work` as the owner with the events table's append-only guard off, in one transaction. */
describe(`bulk replay on ${backend}`, () => {
  it('gives the same answer on worker threads as on this one, naming a corrupted row and a tampered event (Postgres: threads; PGlite: this thread)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await wudanCase());
    const [rowBad, eventBad] = [ids[1]!, ids[4]!];
    await store.query(`update cases set data = jsonb_set(data, '{平均分}', '2') where id = $1`, [rowBad]);
    await tamper(async (trx) => {
      await sql`update events set payload = jsonb_set(payload, '{服务小时}', '9') where case_id = ${eventBad} and seq = 5`.execute(trx);
    });
    const all = [...ids, 'no-such-case'];
    const here = await replayCases(engine, all, { batchSize: 2 });
    const threads = await replayCases(engine, all, { batchSize: 2, workers: 3 });
    expect(here).toMatchObject({ cases: 6, ok: 4, events: 36, notFound: ['no-such-case'] });
    expect(here.mismatches.map((m) => [m.caseId, m.firstBadSeq])).toEqual([[rowBad, 6], [eventBad, 5]]);
    expect(threads).toEqual(here);

    // The audit reads each batch once and also verifies the chains: the tampered event is altered.
    const audited = await auditCases(engine, all, { batchSize: 2 });
    const auditedOnThreads = await auditCases(engine, all, { batchSize: 2, workers: 3 });
    expect(audited).toMatchObject({ ...here, verified: 5 });
    expect(audited.problems.map((p) => [p.caseId, p.firstBadSeq, p.problem])).toEqual([[eventBad, 5, 'altered']]);
    expect(auditedOnThreads).toEqual(audited);
  });

  it('reads of a machine event\'s facts only what replay asks (oracle, instance, definition), of a system event its facts whole, and replays the same', async () => {
    now += MINUTE;
    const id = (await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data: DATA })).id;
    await step(id, '派单', '社区书记张', { 单位: '县卫健局', 派单说明: '尽快' });
    await suspendCase(engine, id, { actor: '街道书记赵', reason: '群众外出' });
    await resumeCase(engine, id, { actor: '街道书记赵' });
    const stored = await loadEvents(store, id);
    const read = (await loadReplayLogs(store, [id])).get(id) ?? [];
    expect(read.map((e) => e.type)).toEqual(stored.map((e) => e.type));
    expect(stored.some((e) => e.type.startsWith('case.'))).toBe(true);
    for (const [i, e] of read.entries()) {
      const f = stored[i]!.facts as { oracle?: unknown; authorization?: { instance?: unknown }; definitionId?: unknown };
      if (e.type.startsWith('case.')) expect(e.facts).toEqual(f);
      else expect(e.facts).toEqual({ oracle: f.oracle ?? null, authorization: { instance: f.authorization?.instance ?? null }, definitionId: f.definitionId ?? null });
    }
    expect(await replayCases(engine, [id])).toMatchObject({ cases: 1, ok: 1, mismatches: [] });
  });

  it.runIf(backend === 'postgres')('(Postgres only) a ReplayPool keeps its threads for many calls: the same answers as this thread each time, progress up to the totals; a pool that cannot start says why', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await wudanCase());
    await store.query(`update cases set data = jsonb_set(data, '{平均分}', '1') where id = $1`, [ids[2]!]);
    const all = [...ids, 'no-such-case'];
    const here = await auditCases(engine, all, { batchSize: 2 });
    expect(here.mismatches.map((m) => m.caseId)).toEqual([ids[2]]);
    const pool = new ReplayPool({ connectionString: store.connectionString!, schema: store.schema, threads: 2 });
    try {
      const progress: AuditProgress[] = [];
      expect(await auditCases(engine, all, { batchSize: 2, pool, onProgress: (p) => progress.push(p) })).toEqual(here);
      expect(progress.at(-1)).toEqual({ cases: all.length, events: here.events });
      expect(progress.map((p) => p.cases)).toEqual([2, 4, 6]);
      // The same threads again, replay alone, with other batches; and calls made at once run in turn.
      const [a, b] = await Promise.all([replayCases(engine, all, { batchSize: 1, pool }), replayCases(engine, all.slice(0, 3), { pool })]);
      const { verified: _v, problems: _p, ...replayedHere } = here;
      expect(a).toEqual(replayedHere);
      expect(b).toMatchObject({ cases: 3, ok: 2 });
    } finally {
      await pool.close();
    }
    const lost = new ReplayPool({ connectionString: store.connectionString!, schema: 'wf_no_such_schema', threads: 1 });
    try {
      // The pool's threads read another schema than the engine's store: refused before any is read.
      await expect(replayCases(engine, ids, { pool: lost })).rejects.toThrow(/another database or schema/);
      await expect(replayCases(engine, ids, { pool: lost })).rejects.toMatchObject({ name: 'ThreadPoolError', code: 'POOL_STORE_MISMATCH' });
      // A store on that schema: the threads cannot start there, and say why.
      const elsewhere = { store: { ...store, schema: 'wf_no_such_schema' }, loadDefinition: (id: string) => engine.loadDefinition(id) };
      await expect(replayCases(elsewhere, ids, { pool: lost })).rejects.toThrow(/Schema wf_no_such_schema does not exist/);
    } finally {
      await lost.close();
    }
  });
});

async function tamper(work: (trx: Transaction<Database>) => Promise<void>): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await sql`alter table events disable trigger events_append_only`.execute(trx);
    await work(trx);
    // Plain ENABLE would make it an ORIGIN trigger; 0002 made it fire ALWAYS.
    await sql`alter table events enable always trigger events_append_only`.execute(trx);
  });
}

/** Inserts an event row as given (a forgery). */
async function insertRow(db: Kysely<Database>, e: EventRecord): Promise<void> {
  await db.insertInto('events').values({
    case_id: e.caseId, seq: e.seq, type: e.type, actor_id: e.actorId, on_behalf_of: e.onBehalfOf, role: e.role, org_unit_id: e.orgUnitId,
    payload: JSON.stringify(e.payload), recorded_at: e.recordedAt, facts: JSON.stringify(e.facts), resulting_state: JSON.stringify(e.resultingState),
    decision: JSON.stringify(e.decision), prev_hash: e.prevHash, hash: e.hash,
  }).execute();
}

/** A forged event that chains correctly onto `prev`: what someone who knows the algorithm would write. */
function forge(base: EventRecord, seq: number, prevHash: string, change: Partial<EventRecord>): EventRecord {
  const e = { ...base, ...change, seq, prevHash };
  const { hash: _h, prevHash: _p, ...body } = e;
  return { ...e, hash: chainHash(prevHash, canonicalJson(body)) };
}

async function step(caseId: string, type: string, actor: string, payload: Record<string, unknown> = {}, extra: { instance?: string } = {}): Promise<CaseView> {
  now += 10 * MINUTE;
  return engine.sendEvent(caseId, { type, actor, payload, ...extra });
}

/** The 五单 loop to its end: six events. */
async function wudanCase(data: Record<string, unknown> = DATA): Promise<string> {
  now += MINUTE;
  const c = await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data });
  await step(c.id, '派单', '社区书记张', { 单位: '县卫健局', 派单说明: '尽快' });
  await step(c.id, '接单', '卫健局书记钱');
  await step(c.id, '抢单', '党员李');
  await step(c.id, '完成', '党员李', { 办理情况: '已清理完毕', 服务小时: 2.5 });
  await step(c.id, '评价', '居民王先生', { 评分: { 完成是否到位: 5, 推进是否有力: 4, 成效是否明显: 4, 群众是否满意: 5 } });
  return c.id;
}

/** Fires the case's earliest scheduled timer at its due time, as the poller would. */
async function fireNext(caseId: string): Promise<CaseView> {
  const rows = await store.query<{ timer_id: string; event_type: string; due_at: unknown }>(
    `select timer_id, event_type, due_at from timers where case_id = $1 and state = 'scheduled' order by due_at, timer_id limit 1`, [caseId]);
  const t = rows[0];
  if (t === undefined) throw new Error(`no scheduled timer for ${caseId}`);
  now = Math.max(now, new Date(t.due_at as string).getTime());
  await store.query(`update timers set state = 'claimed', claimed_by = 'audit-test', claimed_until = now() + interval '1 minute' where case_id = $1 and timer_id = $2`, [caseId, t.timer_id]);
  expect(await engine.fireTimer(caseId, t.timer_id, t.event_type, 'audit-test')).toBe(true);
  return engine.getCase(caseId);
}

describe(`verify on ${backend}`, () => {
  it('passes for a freshly written multi-event case, read back from jsonb (reordered keys, respelled numbers, awkward text)', async () => {
    const id = await wudanCase({ ...DATA, 心愿: '清理"绿化带"杂物\u2028第二行 🌳 \\ end', 姓名: 'Zoë 王' });
    const r = await verify(engine, id);
    const view = await engine.getCase(id);
    expect(r).toEqual({ ok: true, events: 6, headHash: view.headHash });
    // Each row's hash is over the same canonical body the engine hashed when it wrote it.
    const events = await loadEvents(store, id);
    expect(events.map((e) => e.type)).toEqual(['start', '派单', '接单', '抢单', '完成', '评价']);
    expect(verifyChain(events)).toMatchObject({ ok: true, events: 6 });
  });

  it('the append-only guard refuses the owner too, until it is disabled', async () => {
    const id = await wudanCase();
    expect(await sqlStateOfRejection(store.query(`update events set payload = '{}'::jsonb where case_id = $1 and seq = 2`, [id]))).toBe('WFA01');
    expect(await verify(engine, id)).toMatchObject({ ok: true });
  });

  it('names an event whose payload the owner changed as altered', async () => {
    const id = await wudanCase();
    await tamper(async (trx) => {
      await sql`update events set payload = jsonb_set(payload, '{单位}', '"县民政局"') where case_id = ${id} and seq = 2`.execute(trx);
    });
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'altered' });
    // The guard is back on afterwards.
    expect(await sqlStateOfRejection(store.query(`delete from events where case_id = $1 and seq = 6`, [id]))).toBe('WFA01');
  });

  it('names a changed recorded time and a changed resulting state as altered', async () => {
    const a = await wudanCase();
    const b = await wudanCase();
    await tamper(async (trx) => {
      await sql`update events set recorded_at = recorded_at - interval '1 hour' where case_id = ${a} and seq = 4`.execute(trx);
      await sql`update events set resulting_state = jsonb_set(resulting_state, '{state}', '"办结"') where case_id = ${b} and seq = 5`.execute(trx);
    });
    expect(await verify(engine, a)).toMatchObject({ ok: false, firstBadSeq: 4, problem: 'altered' });
    expect(await verify(engine, b)).toMatchObject({ ok: false, firstBadSeq: 5, problem: 'altered' });
  });

  it('names a deleted middle event as missing, whether or not the later ones were renumbered', async () => {
    const gap = await wudanCase();
    const renumbered = await wudanCase();
    await tamper(async (trx) => {
      await sql`delete from events where case_id = ${gap} and seq = 3`.execute(trx);
      await sql`delete from events where case_id = ${renumbered} and seq = 3`.execute(trx);
      // In two moves, so the primary key never sees two rows with one number.
      await sql`update events set seq = seq + 100 where case_id = ${renumbered} and seq > 3`.execute(trx);
      await sql`update events set seq = seq - 101 where case_id = ${renumbered} and seq > 100`.execute(trx);
    });
    expect(await verify(engine, gap)).toMatchObject({ ok: false, firstBadSeq: 3, problem: 'missing' });
    expect(await verify(engine, renumbered)).toMatchObject({ ok: false, firstBadSeq: 3, problem: 'missing' });
  });

  it('time travel over a log that does not replay answers HISTORY_NOT_REPLAYABLE naming the first bad event, not a bare error', async () => {
    const id = await wudanCase();
    const events = await loadEvents(store, id);
    // The first event no longer starts the case: nothing after it has a case to apply to.
    await tamper(async (trx) => {
      await sql`update events set type = '派单' where case_id = ${id} and seq = 1`.execute(trx);
    });
    const at = events[3]!.recordedAt;
    const refused = await stateAt(engine, id, at).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(EngineError);
    expect(refused).toMatchObject({ code: 'HISTORY_NOT_REPLAYABLE', status: 409, details: { caseId: id, firstBadSeq: 1, at } });
    expect((refused as EngineError).message).toContain('does not begin with a start event');
    expect(await replay(engine, id)).toMatchObject({ ok: false, firstBadSeq: 1 });
  });

  it('names a deleted last event as missing', async () => {
    const id = await wudanCase();
    await tamper(async (trx) => {
      await sql`delete from events where case_id = ${id} and seq = 6`.execute(trx);
    });
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 6, problem: 'missing' });
  });

  it('names a forged event appended with a correct chain as inserted (the case row does not know it)', async () => {
    const id = await wudanCase();
    const events = await loadEvents(store, id);
    const last = events[5] as EventRecord;
    await tamper(async (trx) => insertRow(trx, forge(last, 7, last.hash, { type: '评价', actorId: '居民王先生' })));
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 7, problem: 'inserted' });
  });

  it('names a forged event slipped into the middle as inserted', async () => {
    const id = await wudanCase();
    const events = await loadEvents(store, id);
    const second = events[1] as EventRecord;
    await tamper(async (trx) => {
      // Make room at 3 (in two moves, so the primary key never sees two rows with one number).
      await sql`update events set seq = seq + 100 where case_id = ${id} and seq >= 3`.execute(trx);
      await sql`update events set seq = seq - 99 where case_id = ${id} and seq >= 103`.execute(trx);
      await insertRow(trx, forge(second, 3, second.hash, { type: '改派', payload: { 单位: '县民政局' } }));
    });
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 3, problem: 'inserted' });
  });

  it('names an event rewritten with a recomputed hash as altered', async () => {
    const id = await wudanCase();
    const events = await loadEvents(store, id);
    const e4 = events[3] as EventRecord;
    const rewritten = forge(e4, 4, e4.prevHash ?? '', { actorId: '党员杨' });
    await tamper(async (trx) => {
      await sql`update events set actor_id = ${rewritten.actorId}, hash = ${rewritten.hash} where case_id = ${id} and seq = 4`.execute(trx);
    });
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 4, problem: 'altered' });
  });

  it('names a case row whose head hash is not the last event hash as head-mismatch', async () => {
    const id = await wudanCase();
    await store.query(`update cases set head_hash = $2 where id = $1`, [id, 'f'.repeat(64)]);
    expect(await verify(engine, id)).toMatchObject({ ok: false, firstBadSeq: 6, problem: 'head-mismatch' });
  });
});

describe(`replay on ${backend}`, () => {
  it('reproduces a case, and names a corrupted cases.snapshot and cases.data as the last event with the case row', async () => {
    const a = await wudanCase();
    const b = await wudanCase();
    expect(await replay(engine, a)).toMatchObject({ ok: true, events: 6, definitionId: '五单服务@1' });
    await store.query(`update cases set snapshot = jsonb_set(snapshot, '{unit}', '"县民政局"') where id = $1`, [a]);
    await store.query(`update cases set data = jsonb_set(data, '{平均分}', '1') where id = $1`, [b]);
    const ra = await replay(engine, a);
    expect(ra).toMatchObject({ ok: false, firstBadSeq: 6 });
    if (!ra.ok) expect(ra.message).toMatch(/case row differs.*snapshot \(unit\)/);
    const rb = await replay(engine, b);
    expect(rb).toMatchObject({ ok: false, firstBadSeq: 6 });
    if (!rb.ok) expect(rb.message).toMatch(/case row differs.*data \(平均分\)/);
  });

  it('names the event whose payload the owner changed (its recorded resulting state no longer follows)', async () => {
    const id = await wudanCase();
    await tamper(async (trx) => {
      await sql`update events set payload = jsonb_set(payload, '{服务小时}', '3') where case_id = ${id} and seq = 5`.execute(trx);
    });
    const r = await replay(engine, id);
    expect(r).toMatchObject({ ok: false, firstBadSeq: 5 });
  });

  it('replays system events through registered replayers, follows a definition change, and reports an unregistered type', async () => {
    const v2 = await engine.deploy(`${readFileSync(WUDAN, 'utf8')}\n-- 修订：审计测试\n`, WUDAN, fileLoader);
    systemEventReplayers['case.test-noted'] = (s) => s;
    systemEventReplayers['case.test-moved'] = (s, e, runtimeOf) => {
      runtimeOf((e.facts as { definitionId: string }).definitionId); // the target must be loadable
      return { ...s, context: { ...s.context, unit: (e.payload as { to: string }).to } };
    };
    try {
      now += MINUTE;
      const c = await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
      await step(c.id, '派单', '社区书记张', { 单位: '县卫健局' });
      await engine.writeSystemEvent(c.id, { type: 'case.test-noted', actor: '督查员周', payload: { note: '抽查' } }, ({ snapshot }) => ({ snapshot }));
      await engine.writeSystemEvent(c.id, { type: 'case.test-moved', actor: '街道书记赵', payload: { to: '龙形街道' } },
        ({ snapshot }) => ({ snapshot: { ...snapshot, context: { ...snapshot.context, unit: '龙形街道' } }, definitionId: v2.id }));
      await step(c.id, '接单', '卫健局书记钱');
      expect(await replay(engine, c.id)).toMatchObject({ ok: true, events: 5, definitionId: v2.id });
      expect(await verify(engine, c.id)).toMatchObject({ ok: true, events: 5 });

      await engine.writeSystemEvent(c.id, { type: 'case.test-unknown', actor: '督查员周', payload: {} }, ({ snapshot }) => ({ snapshot }));
      const r = await replay(engine, c.id);
      expect(r).toMatchObject({ ok: false, firstBadSeq: 6 });
      if (!r.ok) expect(r.message).toContain('case.test-unknown');
    } finally {
      delete systemEventReplayers['case.test-noted'];
      delete systemEventReplayers['case.test-moved'];
    }
  });
});

describe(`replay and stateAt after the world changed, on ${backend}`, () => {
  it('reproduce every snapshot of several cases after the org tree, the roles and the holiday calendar change', async () => {
    /** What each case looked like after each of its events, and when. */
    const seen = new Map<string, { at: number; view: CaseView }[]>();
    const see = (v: CaseView): void => {
      const list = seen.get(v.id) ?? [];
      list.push({ at: now, view: v });
      seen.set(v.id, list);
    };

    // 1. The full 五单 loop.
    now = Date.parse('2026-03-09T09:00:00+08:00');
    const loop = await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    see(loop);
    see(await step(loop.id, '派单', '社区书记张', { 单位: '县卫健局' }));
    see(await step(loop.id, '接单', '卫健局书记钱'));
    see(await step(loop.id, '抢单', '党员李'));
    see(await step(loop.id, '完成', '党员李', { 办理情况: '已清理完毕', 服务小时: 2 }));
    see(await step(loop.id, '评价', '居民王先生', { 评分: { 完成是否到位: 2, 推进是否有力: 2, 成效是否明显: 2, 群众是否满意: 2 } }));

    // 2. Two workdays without dispatch over the National Day holiday: reminder, then escalation to the street.
    now = Date.parse('2026-09-30T10:00:00+08:00');
    const late = await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    see(late);
    see(await fireNext(late.id)); // reminder at 50%
    const escalated = await fireNext(late.id); // 2 workdays: after the holiday week
    see(escalated);
    expect(escalated).toMatchObject({ state: '待派单', unit: '龙形街道' });
    expect(now).toBe(Date.parse('2026-10-09T10:00:00+08:00'));
    see(await step(late.id, '派单', '街道书记赵', { 单位: '县卫健局' }));
    // 3. 24 hours without acceptance: escalated from the department to the county.
    see(await fireNext(late.id));
    see(await fireNext(late.id));
    expect(seen.get(late.id)?.at(-1)?.view).toMatchObject({ state: '待接单', unit: '黎平县' });
    see(await step(late.id, '接单', '卫健局书记钱'));
    see(await step(late.id, '抢单', '党员杨'));
    see(await step(late.id, '延期', '党员杨', { 理由: '材料未到货', 天数: 2 }));

    // 4. 吹哨报到: a multi-unit step, two of three departments report, the rest time out across a weekend.
    now = Date.parse('2026-03-06T10:00:00+08:00');
    const whistle = await engine.startCase({ workflow: '吹哨报到', orgUnit: '永乐社区', actor: '社区书记张', data: { 社区: '永乐社区', 事项: '沿街商铺占道经营并私接电线', 类别: '消防隐患' } });
    see(whistle);
    see(await step(whistle.id, '吹哨', '社区书记张', { 部门: ['县城管局', '县住建局', '龙形派出所'], 牵头: '县城管局', 事由: '占道经营和私接电线需联合整治' }));
    see(await step(whistle.id, '报到', '城管局局长冯', { 到场人员: '执法中队 3 人', 到场人数: 3 }, { instance: '县城管局' }));
    see(await step(whistle.id, '报到', '住建局局长韩', { 到场人员: '规划股 2 人', 到场人数: 2 }, { instance: '县住建局' }));
    while ((seen.get(whistle.id)?.at(-1)?.view.state) === '待报到') see(await fireNext(whistle.id));
    expect(seen.get(whistle.id)?.at(-1)?.view).toMatchObject({ state: '督办', multi: { missed: ['龙形派出所'] } });
    see(await step(whistle.id, '督办', '督查员周', { 督办意见: '请龙形派出所说明原因' }));

    const ids = [...seen.keys()];
    const before = await Promise.all(ids.map((id) => replay(engine, id)));
    expect(before.map((r) => r.ok)).toEqual(ids.map(() => true));

    // Runtime.transition (one inert actor scope per runtime) gives exactly what XState's own helpers give.
    for (const id of ids) {
      const rt = (await engine.loadDefinition((await engine.getCase(id)).definitionId)).runtime;
      const viaHelpers: Runtime = { ...rt, transition: (s, e) => transition(rt.machine, s, e), initialTransition: (i) => initialTransition(rt.machine, i) };
      let a: CaseSnapshot | null = null;
      let b: CaseSnapshot | null = null;
      for (const e of await loadEvents(store, id)) {
        const ours = replayEvent(rt, a, e);
        const theirs = replayEvent(viaHelpers, b, e);
        expect(ours, `${id} event ${e.seq}`).toEqual(theirs);
        a = ours.snapshot;
        b = theirs.snapshot;
      }
    }

    // The world changes: 永乐社区 moves to another street, 社区书记张 loses the role, the holidays change.
    const zhang = await findActor(store, '社区书记张');
    await upsertOrgUnits(store, [{ id: '永乐社区', parent: '德凤街道', level: 'community', name: '永乐社区' }]);
    await upsertActor(store, { id: '社区书记张', name: '张书记', phone: null, roles: [] });
    engine.invalidateOrg();
    engine.setCalendar(createCalendar({ holidays: ['2026-03-09', '2026-03-10'] }));
    try {
      expect((await engine.org()).unit('永乐社区')?.parent).toBe('德凤街道');
      const fresh = new Engine({ store, clock, calendar: createCalendar() });
      for (const id of ids) {
        const r = await replay(fresh, id);
        expect(r, id).toMatchObject({ ok: true, events: (await loadEvents(store, id)).length });
        expect(await verify(fresh, id)).toMatchObject({ ok: true });
      }
      const bulk = await replayCases(fresh, [...ids, 'no-such-case'], { batchSize: 2 });
      expect(bulk).toMatchObject({ cases: 3, ok: 3, mismatches: [], notFound: ['no-such-case'] });
      expect(bulk.events).toBe([...seen.values()].reduce((n, l) => n + l.length, 0));

      // stateAt, at each moment the case changed and just before the next change, shows what the engine showed then.
      for (const [id, list] of seen) {
        expect(await stateAt(fresh, id, list[0]!.at - 1)).toBeNull();
        for (let i = 0; i < list.length; i++) {
          const { at, view } = list[i]!;
          if (list[i + 1]?.at === at) continue; // two timers fired at one instant: only the later state was ever visible
          const times = [at, (list[i + 1]?.at ?? at + 1) - 1];
          for (const t of times) {
            const then = await stateAt(fresh, id, new Date(t).toISOString());
            expect(then, `${id} at ${new Date(t).toISOString()}`).toMatchObject({
              seq: view.version, state: view.state, data: view.data, unit: view.unit, due: view.due, multi: view.multi, submitter: view.submitter,
            });
          }
        }
      }
    } finally {
      await upsertOrgUnits(store, [{ id: '永乐社区', parent: '龙形街道', level: 'community', name: '永乐社区' }]);
      await upsertActor(store, zhang ?? { id: '社区书记张', name: '张书记', phone: null, roles: [{ role: '社区书记', unit: '永乐社区' }] });
      engine.invalidateOrg();
      engine.setCalendar(loadFixtures(ORG).calendar);
    }
  });
});
