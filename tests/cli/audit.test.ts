/**
 * `wf audit` on a database with cases of two workflows: on PGlite the data directory `npm start`
 * keeps, on Postgres a schema of its own. Clean, it says every chain is intact and every state
 * reproduced (exit 0); after an event is altered and a case row corrupted by the owner, it names
 * both cases and the events (exit 1); it refuses to run without a database or with an unknown
 * workflow (exit 2).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { Engine } from '../../engine/engine.ts';
import { openDatabase, type OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, databaseUrl, openTestDatabase } from '../engine/support.ts';
import { capture, GOOD } from './support.ts';

const TURNS = `workflow 轮转 "turns"
roles 书记
case { 次数: number = 0 }
start 甲 by anyone
state 甲
  on 推进 by 书记 set case.次数 = case.次数 + 1 -> 乙
state 乙
  on 推进 by 书记 set case.次数 = case.次数 + 1 -> 甲
  on 完成 by 书记 -> 完结
final 完结
`;

let store: OpenedDatabase | undefined;
let dataDir: string | undefined;
/** The arguments that point `wf audit` at the test's database. */
let target: string[];
const small: string[] = [];
const turns: string[] = [];
const EVENTS_PER_TURN_CASE = 6;

async function run(...args: string[]): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const io = capture();
  const code = await main(['audit', ...target, ...args], io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

/** The store to seed and tamper with; on PGlite closed again before `wf audit` opens the directory. */
async function withStore<T>(work: (s: OpenedDatabase) => Promise<T>): Promise<T> {
  if (store !== undefined) return work(store);
  const s = await openDatabase({ dataDir: path.join(dataDir as string, 'pglite') });
  try {
    return await work(s);
  } finally {
    await s.close();
  }
}

beforeAll(async () => {
  if (backend === 'postgres') {
    store = await openTestDatabase();
    target = ['--database-url', databaseUrl as string, '--schema', store.schema];
  } else {
    dataDir = mkdtempSync(path.join(tmpdir(), 'wf-audit-'));
    target = ['--data-dir', dataDir];
  }
  await withStore(async (s) => {
    await upsertOrgUnits(s, [{ id: '永乐社区', parent: null, level: 'community', name: '永乐社区' }]);
    await upsertActor(s, { id: '书记张', name: '书记张', phone: null, roles: [{ role: '书记', unit: '永乐社区' }] });
    let now = Date.parse('2026-03-02T09:00:00+08:00');
    const engine = new Engine({ store: s, clock: { now: () => now } });
    await engine.deploy(GOOD, 'small.wf');
    await engine.deploy(TURNS, 'turns.wf');
    for (let i = 0; i < 8; i++) {
      const c = await engine.startCase({ workflow: '小流程', orgUnit: '永乐社区', actor: '居民王', data: { 说明: `第${i}件` } });
      small.push(c.id);
      if (i % 2 === 0) await engine.sendEvent(c.id, { type: '办理', actor: '书记张' });
    }
    for (let i = 0; i < 12; i++) {
      const c = await engine.startCase({ workflow: '轮转', orgUnit: '永乐社区', actor: null, data: {} });
      turns.push(c.id);
      for (let k = 1; k < EVENTS_PER_TURN_CASE; k++) {
        now += 60_000;
        await engine.sendEvent(c.id, { type: '推进', actor: '书记张' });
      }
    }
  });
}, 60_000);

afterAll(async () => {
  await store?.close();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe('wf audit', () => {
  it('finds every chain intact and every state reproduced (exit 0), with progress on stderr', async () => {
    const r = await run();
    expect(r.code, r.stderr.join('\n')).toBe(0);
    expect(r.stdout).toEqual(['verify: 20 cases, every chain intact', 'replay: 20 cases, every state reproduced']);
    const events = 8 + 4 + 12 * EVENTS_PER_TURN_CASE;
    expect(r.stderr[0]).toMatch(/^wf audit: 20 cases \((PGlite in|Postgres, schema) /);
    expect(r.stderr).toContain(`audit: 20/20 cases, ${events} events`);
  });

  it('takes the cases of one workflow, and answers in JSON', async () => {
    const r = await run('--workflow', '轮转', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.at(-1) ?? '')).toEqual({
      cases: 12, events: 12 * EVENTS_PER_TURN_CASE, verify: { ok: 12, problems: [] }, replay: { ok: 12, mismatches: [] },
    });
  });

  it.runIf(backend === 'postgres')('(Postgres only) gives the same answer on worker threads', async () => {
    const one = await run('--json');
    const threads = await run('--json', '--workers', '2');
    expect(threads.code).toBe(0);
    expect(threads.stderr).toContain(`audit: 20/20 cases, ${8 + 4 + 12 * EVENTS_PER_TURN_CASE} events`);
    expect(JSON.parse(threads.stdout.at(-1) ?? '')).toEqual(JSON.parse(one.stdout.at(-1) ?? ''));
  });

  it('refuses to run with no database, an unknown workflow or a bad option (exit 2, saying why)', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'wf-audit-empty-'));
    try {
      const io = capture();
      expect(await main(['audit', '--data-dir', empty], io)).toBe(2);
      expect(io.stderr.join('\n')).toContain(`No database in ${path.join(empty, 'pglite')}`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const unknown = await run('--workflow', '没有这个');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.join('\n')).toContain('No workflow named 没有这个 is deployed here; deployed: 小流程, 轮转');
    expect((await run('--workers', 'many')).code).toBe(2);
    if (dataDir !== undefined) {
      // The embedded database is one process's: while it is open (a running server), the audit waits its turn.
      await withStore(async () => {
        const busy = await run();
        expect(busy.code).toBe(2);
        expect(busy.stderr.join('\n')).toContain('is open in this process already');
      });
    }
    expect((await run('some-file.wf')).code).toBe(2);
  });

  // Last: it changes the database.
  it('names an altered event and a corrupted case row, by case and sequence number (exit 1)', async () => {
    const altered = turns[3] as string;
    const corrupted = small[5] as string;
    await withStore(async (s) => {
      await s.db.transaction().execute(async (trx) => {
        await sql`alter table events disable trigger events_append_only`.execute(trx);
        await sql`update events set payload = '{"说明":"改过"}'::jsonb where case_id = ${altered} and seq = 4`.execute(trx);
        await sql`alter table events enable always trigger events_append_only`.execute(trx);
      });
      await sql`update cases set state = '"办结"'::jsonb where id = ${corrupted}`.execute(s.db);
    });
    const r = await run();
    expect(r.code).toBe(1);
    expect(r.stdout[0]).toBe('verify: 1 of 20 cases fail');
    expect(r.stdout[1]).toMatch(new RegExp(`^  ${altered}: event 4 altered: `));
    expect(r.stdout[2]).toBe('replay: 1 of 20 cases fail');
    expect(r.stdout[3]).toMatch(new RegExp(`^  ${corrupted}: event 1: .*state`));
  });
});
