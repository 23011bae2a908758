/**
 * The engine on the database (PGlite, or Postgres with DATABASE_URL): deploy, start, events, the
 * one-statement write, idempotency, refusals, versions, and the hash chain.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { canonicalJson, chainHash } from '../../engine/hash.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { loadEvents } from '../../engine/store/cases.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');

let store: OpenedDatabase;
let engine: Engine;
let now = Date.parse('2026-03-02T09:00:00+08:00');
const clock = { now: () => now };

const DATA = { 社区: '永乐社区', 姓名: '王先生', 电话: '13800000000', 心愿: '清理绿化带杂物', 类别: '环境' };

async function refusal(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  store = await openTestDatabase();
  const raw = YAML.parse(readFileSync(path.join(ROOT, 'workflows/fixtures/org.yaml'), 'utf8')) as { units: { id: string; parent?: string; level: string; name?: string }[]; actors: { id: string; name?: string; roles?: { role: string; unit: string }[] }[] };
  loadFixtures(raw); // validates the fixture
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as never, name: u.name ?? u.id })));
  for (const a of raw.actors) await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: a.roles ?? [] });
  engine = new Engine({ store, clock, calendar: loadFixtures(raw).calendar });
});

afterAll(async () => {
  await store?.close();
});

describe('deploy', () => {
  it('creates version 1, returns it again for the same source, and version 2 for a changed one', async () => {
    const source = readFileSync(WUDAN, 'utf8');
    const v1 = await engine.deploy(source, WUDAN, fileLoader);
    expect(v1).toMatchObject({ name: '五单服务', version: 1, created: true });
    expect(await engine.deploy(source, WUDAN, fileLoader)).toMatchObject({ version: 1, created: false });
    const v2 = await engine.deploy(`${source}\n-- 修订\n`, WUDAN, fileLoader);
    expect(v2).toMatchObject({ version: 2, created: true });
  });

  it('refuses a source that does not compile, with its diagnostics', async () => {
    const e = await refusal(engine.deploy('workflow 坏\nstate 甲\n', 'bad.wf'));
    expect(e.code).toBe('DEFINITION_INVALID');
    expect(e.status).toBe(422);
    expect((e.details['diagnostics'] as { code: string }[]).map((d) => d.code)).toContain('WF0218');
  });
});

describe('a case through the 五单 loop', () => {
  it('runs start → 派单 → 接单 → 抢单 → 完成 → 评价 with a hash chain that verifies', async () => {
    const c = await engine.startCase({ workflow: '五单服务', version: 1, orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    expect(c).toMatchObject({ state: '待派单', version: 1, unit: '永乐社区', definitionVersion: 1 });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await engine.sendEvent(c.id, { type: '接单', actor: '卫健局书记钱', payload: {} });
    const claimed = await engine.sendEvent(c.id, { type: '抢单', actor: '党员李', payload: {} });
    expect(claimed).toMatchObject({ state: '办理中', data: { 党员: '党员李' } });
    await engine.sendEvent(c.id, { type: '完成', actor: '党员李', payload: { 办理情况: '已清理完毕', 服务小时: 2 } });
    const done = await engine.sendEvent(c.id, { type: '评价', actor: '居民王先生', payload: { 评分: { 完成是否到位: 5, 推进是否有力: 5, 成效是否明显: 4, 群众是否满意: 5 } } });
    expect(done).toMatchObject({ state: '办结', status: 'done', version: 6 });

    const events = await loadEvents(store, c.id);
    expect(events.map((e) => e.type)).toEqual(['start', '派单', '接单', '抢单', '完成', '评价']);
    let prev: string | null = null;
    for (const e of events) {
      const { hash, prevHash, ...body } = e;
      expect(prevHash).toBe(prev);
      expect(hash).toBe(chainHash(prev, canonicalJson(body)));
      prev = hash;
    }
    expect(events[3]).toMatchObject({ actorId: '党员李', role: '在职党员' });
    // The case row agrees with a fresh engine that has no cache.
    const other = new Engine({ store, clock });
    expect(await other.getCase(c.id)).toEqual(await engine.getCase(c.id));
  });

  it('refusals carry their codes and change nothing', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    expect((await refusal(engine.sendEvent(c.id, { type: '抢单', actor: '党员李' }))).code).toBe('NOT_POSSIBLE');
    expect((await refusal(engine.sendEvent(c.id, { type: '派单', actor: '党员李', payload: { 单位: '县卫健局' } }))).code).toBe('NOT_ALLOWED');
    expect((await refusal(engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: {} }))).code).toBe('VALIDATION_FAILED');
    expect((await refusal(engine.sendEvent('no-such-case', { type: '派单', actor: '社区书记张' }))).code).toBe('CASE_NOT_FOUND');
    expect((await refusal(engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: null, data: { 社区: '永乐社区' } }))).code).toBe('VALIDATION_FAILED');
    expect((await refusal(engine.startCase({ workflow: '没有', orgUnit: '永乐社区', actor: null, data: {} }))).code).toBe('DEFINITION_NOT_FOUND');
    expect((await loadEvents(store, c.id)).length).toBe(1);
  });

  it('a person cannot fire a deadline early by sending its timer event (regression)', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    const timer = `xstate.after.待派单/t2.五单服务.待派单`;
    const e = await refusal(engine.sendEvent(c.id, { type: timer, actor: '社区书记张' }));
    expect(e.code).toBe('NOT_ALLOWED');
    expect(await engine.getCase(c.id)).toMatchObject({ unit: '永乐社区', version: 1 });
  });
});

describe('idempotency', () => {
  it('a retried event with the same key returns the first answer and appends nothing', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    const first = await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, idempotencyKey: 'k1' });
    const again = await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, idempotencyKey: 'k1' });
    expect(again).toEqual(first);
    // Told apart for whoever counts what was applied.
    expect([engine.isReplayed(first), engine.isReplayed(again)]).toEqual([false, true]);
    const fresh = new Engine({ store, clock });
    const fromAnother = await fresh.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, idempotencyKey: 'k1' });
    expect(fromAnother).toEqual(first);
    expect(fresh.isReplayed(fromAnother)).toBe(true);
    expect((await loadEvents(store, c.id)).length).toBe(2);
    const reused = await refusal(engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县民政局' }, idempotencyKey: 'k1' }));
    expect(reused.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(reused.status).toBe(422);
  });

  it('a refusal is remembered too', async () => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    const e1 = await refusal(engine.sendEvent(c.id, { type: '抢单', actor: '党员李', idempotencyKey: 'k2' }));
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await engine.sendEvent(c.id, { type: '接单', actor: '卫健局书记钱' });
    // Now 抢单 would succeed, but the key already has its answer.
    const e2 = await refusal(engine.sendEvent(c.id, { type: '抢单', actor: '党员李', idempotencyKey: 'k2' }));
    expect(e2.code).toBe(e1.code);
    expect(e2.details['replayed']).toBe(true);
  });

  it('starting a case with a key twice gives the same case', async () => {
    const a = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA, idempotencyKey: 'start-1' });
    const b = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA, idempotencyKey: 'start-1' });
    expect(b.id).toBe(a.id);
    expect([engine.isReplayed(a), engine.isReplayed(b)]).toEqual([false, true]);
    expect((await loadEvents(store, a.id)).length).toBe(1);
  });
});

describe('concurrency within one process', () => {
  it('two engines on one case: the stale one recomputes, and a lost race is NOT_POSSIBLE naming the new state', async () => {
    const a = engine;
    const b = new Engine({ store, clock });
    const c = await a.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    await b.getCase(c.id); // b caches version 1
    await a.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
    await b.sendEvent(c.id, { type: '接单', actor: '卫健局书记钱' }); // b's cache is stale; it must re-read
    const claims = await Promise.allSettled(['党员李', '党员杨', '党员李'].map((m, i) => (i % 2 === 0 ? a : b).sendEvent(c.id, { type: '抢单', actor: m })));
    const ok = claims.filter((r) => r.status === 'fulfilled');
    const lost = claims.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as EngineError);
    expect(ok).toHaveLength(1);
    expect(lost.map((e) => e.code)).toEqual(['NOT_POSSIBLE', 'NOT_POSSIBLE']);
    expect(lost[0]?.details['state']).toBe('办理中');
    expect((await loadEvents(store, c.id)).filter((e) => e.type === '抢单')).toHaveLength(1);
  });
});

describe('outcome unknown', () => {
  /** A store whose connection "dies" around the next event write: after the commit, or before it. */
  function flaky(when: 'after-commit' | 'before-commit'): { store: OpenedDatabase; arm: () => void } {
    let armed = false;
    const lost = (): Error => Object.assign(new Error('Connection terminated unexpectedly'), {});
    const wrapped: OpenedDatabase = {
      ...store,
      // Event writes go through `write` (their own connections on Postgres).
      write: async (text, values, name) => {
        if (armed && name?.startsWith('wf_append_batch') === true) {
          armed = false;
          if (when === 'before-commit') throw lost();
          await store.write(text, values, name);
          throw lost();
        }
        return store.write(text, values, name);
      },
    };
    return { store: wrapped, arm: () => { armed = true; } };
  }

  it.each(['after-commit', 'before-commit'] as const)('a connection lost %s answers 503, and a retry with the same key gives the true outcome', async (when) => {
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    const f = flaky(when);
    const shaky = new Engine({ store: f.store, clock });
    f.arm();
    const e = await refusal(shaky.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, idempotencyKey: `lost-${when}` }));
    expect(e.code).toBe('OUTCOME_UNKNOWN');
    expect(e.status).toBe(503);
    const retried = await new Engine({ store, clock }).sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' }, idempotencyKey: `lost-${when}` });
    expect(retried).toMatchObject({ state: '待接单', version: 2 });
    expect((await loadEvents(store, c.id)).map((x) => x.type)).toEqual(['start', '派单']);
  });
});

describe('commit listeners', () => {
  it('hears every committed start, event and case operation once, nothing refused, and stops when asked', async () => {
    const { suspendCase } = await import('../../engine/admin.ts');
    let heard = 0;
    const stop = engine.onCommitted(() => { heard++; });
    try {
      const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
      expect(heard).toBe(1);
      await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });
      expect(heard).toBe(2);
      await refusal(engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } }));
      expect(heard).toBe(2);
      await suspendCase(engine, c.id, { actor: '街道书记赵', reason: '居民外出' });
      expect(heard).toBe(3);
    } finally {
      stop();
    }
    await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王先生', data: DATA });
    expect(heard).toBe(3);
  });
});
