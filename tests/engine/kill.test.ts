/**
 * A killed engine loses nothing it acknowledged, and its timers still fire after a restart: an
 * engine process (tests/engine/kill-worker.ts) sends events to 100 cases from eight loops while it
 * fires the due timers of 1,500 others, and is killed with SIGKILL mid-stream, holding
 * claims on timers it has not fired. Then every event it acknowledged is in the log with its
 * outbox effect; a restarted node, once the dead node's leases have run out, fires every timer
 * left, each exactly once; every case either closed by one timer or waits on one due later; and
 * every chain verifies and replays. Postgres only: PGlite lives inside one process.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayCases, verify } from '../../engine/audit.ts';
import { Engine } from '../../engine/engine.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { runDueTimers } from '../../engine/timers.ts';
import { backend, openTestDatabase } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKER = path.join(ROOT, 'tests/engine/kill-worker.ts');
const CASES = 1_600;
const HOUR = 3_600_000;
const T0 = Date.parse('2026-06-01T09:00:00+08:00');
/**
 * The worker's clock: the timers of the cases started at T0 (T0 + 1 h) are due; those of the cases
 * started at {@link LATER} and the ones the worker schedules (+1 h) are not.
 */
const WORKER_NOW = T0 + 2 * HOUR;
const LATER = T0 + 1.5 * HOUR;
/** After the restart: past the dead node's 60-second leases, before the timers it scheduled. */
const RESTART_NOW = WORKER_NOW + 2 * 60_000;
const DEADLINE_MS = 120_000;

const WORKFLOW = `workflow 断电 "断电续跑"
roles 办理人
case { 次数: number = 0 }
start 甲 by anyone
state 甲
  on 推进 by 办理人 set case.次数 = case.次数 + 1 notify 办理人 "轮到乙" -> 乙
  after 1 hours -> 完成
state 乙
  on 推进 by 办理人 set case.次数 = case.次数 + 1 notify 办理人 "轮到甲" -> 甲
  after 1 hours -> 完成
final 完成 "完成"
`;

interface Ack {
  readonly caseId: string;
  readonly seq: number;
}

let store: OpenedDatabase;
/** The first hundred get events ('kill-a…'); the rest only wait for their timers ('kill-t…'). */
const ids = Array.from({ length: CASES }, (_, i) => `kill-${i < 100 ? 'a' : 't'}${String(i).padStart(4, '0')}`);

beforeAll(async () => {
  if (backend !== 'postgres') return;
  store = await openTestDatabase();
  await upsertOrgUnits(store, [{ id: '永乐社区', parent: null, level: 'community', name: '永乐社区' }]);
  await upsertActor(store, { id: '办理人甲', name: '办理人甲', phone: null, roles: [{ role: '办理人', unit: '永乐社区' }] });
  let now = T0;
  const engine = new Engine({ store, clock: { now: () => now } });
  await engine.deploy(WORKFLOW, 'kill.wf');
  const start = async (batch: readonly string[]): Promise<void> => {
    for (let i = 0; i < batch.length; i += 50) {
      await Promise.all(batch.slice(i, i + 50).map((caseId) => engine.startCase({ workflow: '断电', orgUnit: '永乐社区', actor: null, data: {}, caseId })));
    }
  };
  await start(ids.filter((id) => id.startsWith('kill-t')));
  // The cases that get events start later: their timers do not close them under the worker.
  now = LATER;
  await start(ids.filter((id) => id.startsWith('kill-a')));
}, 60_000);

afterAll(async () => {
  await store?.close();
});

/** The worker's timers: claimed and not fired yet, and not claimed yet. */
async function timerCounts(): Promise<{ claimed: number; scheduled: number }> {
  const rows = await store.db.selectFrom('timers').select(['state', (eb) => eb.fn.countAll<string>().as('n')])
    .where('case_id', 'like', 'kill-t%').where('state', 'in', ['claimed', 'scheduled']).groupBy('state').execute();
  const n = (s: string): number => Number(rows.find((r) => r.state === s)?.n ?? 0);
  return { claimed: n('claimed'), scheduled: n('scheduled') };
}

/**
 * Runs the worker until it has acknowledged `acks` events and holds timer claims it has not fired,
 * then kills it.
 */
async function runAndKill(acks: number): Promise<{ acked: Ack[]; signal: string | null }> {
  const child = fork(WORKER, [store.schema, String(WORKER_NOW), 'doomed'], {
    cwd: ROOT, env: process.env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const acked: Ack[] = [];
  let refused = 0;
  const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const timeout = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
  try {
    await new Promise<void>((resolve, reject) => {
      void exited.then(() => reject(new Error(`the worker exited before it was killed: ${stderr}`)));
      child.on('message', (m: { type: string; caseId?: string; seq?: number }) => {
        if (m.type === 'ready') child.send({ type: 'go' });
        else if (m.type === 'ack') acked.push({ caseId: String(m.caseId), seq: Number(m.seq) });
        else if (m.type === 'refused') refused++;
        if (acked.length >= acks) resolve();
        else if (refused > 0) reject(new Error(`the worker was refused an event: ${stderr}`));
      });
    });
    for (;;) {
      const { claimed, scheduled } = await timerCounts();
      if (claimed > 0) break;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the worker exited before it was killed: ${stderr}`);
      if (scheduled === 0) throw new Error('the worker fired every timer before it could be killed holding claims');
    }
    // Mid-stream: eight loops have events in flight and the timer loop holds claims.
    child.kill('SIGKILL');
    return { acked, signal: await exited };
  } finally {
    clearTimeout(timeout);
  }
}

describe('an engine process killed mid-stream', () => {
  it.runIf(backend === 'postgres')('(Postgres only) loses no acknowledged event, and its timers fire after a restart', async () => {
    const { acked, signal } = await runAndKill(100);
    expect(signal).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThan(0);
    const claimedAtKill = (await timerCounts()).claimed;

    // Every acknowledged event is in the log, as sent, with its outbox effect.
    const events = await store.db.selectFrom('events').select(['case_id', 'seq', 'type', 'actor_id']).where('case_id', 'like', 'kill-%').execute();
    const bySeq = new Map(events.map((e) => [`${e.case_id}#${e.seq}`, e]));
    const lost = acked.filter((a) => bySeq.get(`${a.caseId}#${a.seq}`)?.type !== '推进');
    expect(lost).toEqual([]);
    const sent = events.filter((e) => e.type === '推进');
    expect(sent.every((e) => e.actor_id === '办理人甲')).toBe(true);
    const effects = await store.db.selectFrom('outbox').select(['case_id', 'seq']).where('case_id', 'like', 'kill-%').execute();
    expect(effects.map((f) => `${f.case_id}#${f.seq}`).sort()).toEqual(sent.map((e) => `${e.case_id}#${e.seq}`).sort());

    // The restarted node fires what the dead one left, once its leases have run out.
    const restarted = new Engine({ store, clock: { now: () => RESTART_NOW }, nodeId: 'restarted', logger: { info: () => {}, warn: () => {}, error: () => {} } });
    while (await runDueTimers(restarted, { limit: 50 }) > 0) { /* until nothing is due */ }
    const timers = await store.db.selectFrom('timers').select(['case_id', 'state', 'due_at']).where('case_id', 'like', 'kill-%').execute();
    expect(timers.filter((t) => t.state === 'claimed')).toEqual([]);
    expect(timers.filter((t) => t.state === 'scheduled' && new Date(t.due_at).getTime() <= RESTART_NOW)).toEqual([]);

    const firedBefore = events.filter((e) => e.type.startsWith('xstate.after.')).length;
    const after = await store.db.selectFrom('events').select(['case_id', 'type']).where('case_id', 'like', 'kill-%').where('type', 'like', 'xstate.after.%').execute();
    const firedAfter = new Map<string, number>();
    for (const e of after) firedAfter.set(e.case_id, (firedAfter.get(e.case_id) ?? 0) + 1);
    const cases = await store.db.selectFrom('cases').select(['id', 'state', 'status']).where('id', 'like', 'kill-%').execute();
    expect(cases).toHaveLength(CASES);
    for (const c of cases) {
      if (c.state === '完成') {
        expect([c.id, firedAfter.get(c.id)]).toEqual([c.id, 1]);
      } else {
        // Moved on by an event before its timer: no timer fired, and the next one waits.
        expect([c.id, firedAfter.get(c.id) ?? 0]).toEqual([c.id, 0]);
        expect(timers.some((t) => t.case_id === c.id && t.state === 'scheduled' && new Date(t.due_at).getTime() > RESTART_NOW)).toBe(true);
      }
    }
    // Every case that got no event closed by its timer, whoever fired it.
    expect(cases.filter((c) => c.id.startsWith('kill-t') && c.state !== '完成')).toEqual([]);
    console.log(`killed after ${acked.length} acknowledged events (${sent.length} in the log), holding ${claimedAtKill} timer claims; timers fired: ${firedBefore} before the kill, ${after.length - firedBefore} after the restart`);
    expect(claimedAtKill).toBeGreaterThan(0);
    expect(after.length - firedBefore).toBeGreaterThanOrEqual(claimedAtKill);

    // Every history still proves itself.
    for (const id of ids) expect([id, (await verify(restarted, id)).ok]).toEqual([id, true]);
    const replayed = await replayCases(restarted, ids);
    expect(replayed.mismatches).toEqual([]);
    expect(replayed.ok).toBe(CASES);
  }, DEADLINE_MS + 60_000);
});
