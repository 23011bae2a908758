// Group commit: which events leave together in one statement. A free write slot takes the waiting
// events unless at least as many more are still being computed; then it waits for them (up to half
// of what is in the process), so the batches do not settle into a lopsided 1, 15, 1, 15 rhythm.
// While a batch is in flight, a second slot sends only whole batches (nothing left being computed),
// at least as large as those in flight.
// And each batch is written with the form of the statement its rows need (timer firings,
// idempotency keys, both or neither).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.ts';
import { AppendBatcher, loadEvents, type AppendInput } from '../../engine/store/cases.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, openTestDatabase } from './support.ts';

/** An event for a case that does not exist: the statement runs and applies nothing, which is all a batch's make-up needs. */
function input(caseId: string): AppendInput {
  return {
    caseId, expectedVersion: 1, state: 'x', status: 'active', orgUnitId: 'u',
    event: {
      caseId, seq: 2, type: 't', actorId: 'a', onBehalfOf: null, role: null, orgUnitId: 'u', payload: {},
      recordedAt: '2026-01-05T01:00:00.000Z', facts: {}, resultingState: {}, decision: {}, prevHash: '0'.repeat(64), hash: '1'.repeat(64),
    },
    schedule: [], cancel: [],
    json: { data: '{}', snapshot: '{}', payload: '{}', facts: '{}', decision: '{}', resultingState: '{}' },
  };
}

describe(`group commit on ${backend}`, () => {
  let store: OpenedDatabase;
  /** The case ids of each statement the batcher sent, in the order sent. */
  let sent: string[][];
  /** The name of each statement sent, with whether its rows carry an idempotency key. */
  let forms: { name: string; idempotency: boolean }[] = [];
  let recording: OpenedDatabase;

  beforeAll(async () => {
    store = await openTestDatabase();
    recording = {
      ...store,
      write: (text, values, name) => {
        if (name?.startsWith('wf_append_batch') !== true) return store.write(text, values, name); // case starts
        const rows = JSON.parse(String(values[0])) as { case_id: string; idem_key?: string }[];
        sent.push(rows.map((r) => r.case_id));
        forms.push({ name, idempotency: rows.some((r) => r.idem_key !== undefined) });
        return store.write(text, values, name);
      },
    };
  });

  afterAll(async () => {
    await store?.close();
  });

  it('sends a lone event at once', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording);
    const pending = batcher.prepare();
    const result = pending.append(input('lone'));
    expect(sent).toEqual([['lone']]);
    expect(await result).toEqual({ applied: false, prior: null });
  });

  it('holds a free slot while more events are being computed than wait, then sends them together', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording, 64, 1);
    const [a, b, c, d] = [batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare()];
    const ra = a!.append(input('a'));
    expect(sent).toEqual([]); // 1 waits, 3 are being computed
    const rb = b!.append(input('b'));
    expect(sent).toEqual([['a', 'b']]); // 2 wait, 2 are being computed: half of them leave
    const rc = c!.append(input('c'));
    d!.withdraw();
    expect(sent).toEqual([['a', 'b']]); // the one slot is busy
    await Promise.all([ra, rb]);
    expect(sent).toEqual([['a', 'b'], ['c']]); // sent when the slot freed, before a and b were answered
    expect(await rc).toEqual({ applied: false, prior: null });
  });

  it('sends the waiting events when an event being computed is withdrawn (its step was refused)', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording);
    const [a, b, c] = [batcher.prepare(), batcher.prepare(), batcher.prepare()];
    const ra = a!.append(input('a'));
    expect(sent).toEqual([]);
    c!.withdraw();
    expect(sent).toEqual([['a']]);
    b!.withdraw();
    b!.withdraw(); // twice is harmless
    await ra;
    // Nothing is left waiting for the withdrawn ones: a new event leaves at once.
    const rd = batcher.prepare().append(input('d'));
    expect(sent).toEqual([['a'], ['d']]);
    await rd;
  });

  it('with a batch in flight, holds the second slot until no event is being computed', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording);
    const [a, b, c, d, e, f] = [batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare()];
    const results = [a!.append(input('a')), b!.append(input('b')), c!.append(input('c'))];
    expect(sent).toEqual([['a', 'b', 'c']]); // 3 wait, 3 are being computed: the first slot takes them
    results.push(d!.append(input('d')), e!.append(input('e')));
    expect(sent).toEqual([['a', 'b', 'c']]); // one more is being computed: the second slot waits for it
    results.push(f!.append(input('f')));
    expect(sent).toEqual([['a', 'b', 'c'], ['d', 'e', 'f']]); // whole: it leaves before the first is answered
    expect(await Promise.all(results)).toEqual(results.map(() => ({ applied: false, prior: null })));
  });

  it('with a batch in flight, sends a second one only as large as it, or a full one', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording, 2);
    const [a, b, c, d, e] = [batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare()];
    const results = [a!.append(input('a')), b!.append(input('b'))];
    expect(sent).toEqual([['a', 'b']]); // a full batch of 2
    results.push(c!.append(input('c')));
    d!.withdraw();
    e!.withdraw();
    expect(sent).toEqual([['a', 'b']]); // nothing is being computed, but 1 is fewer than the 2 in flight
    await Promise.all(results.slice(0, 2));
    expect(sent).toEqual([['a', 'b'], ['c']]); // it left when the first slot freed
    await results[2];
    sent = [];
    const [f, g, h, i] = [batcher.prepare(), batcher.prepare(), batcher.prepare(), batcher.prepare()];
    const more = [f!.append(input('f')), g!.append(input('g'))];
    more.push(h!.append(input('h')));
    expect(sent).toEqual([['f', 'g']]); // the first slot took a full batch while h and i were computed
    more.push(i!.append(input('i')));
    expect(sent).toEqual([['f', 'g'], ['h', 'i']]); // a full batch leaves in the second slot
    await Promise.all(more);
  });

  it('with a lone event in flight, sends the next lone event at once', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording);
    const first = batcher.prepare().append(input('one'));
    const second = batcher.prepare().append(input('two'));
    expect(sent).toEqual([['one'], ['two']]);
    await Promise.all([first, second]);
  });

  it('with two slots, sends a second batch while the first is in flight', async () => {
    sent = [];
    const batcher = new AppendBatcher(recording, 64, 2);
    const r1 = batcher.append(input('first'));
    const r2 = batcher.append(input('second'));
    expect(sent).toEqual([['first'], ['second']]);
    await Promise.all([r1, r2]);
  });

  it('refuses a second append of one prepared event, and an append after withdrawing', async () => {
    const batcher = new AppendBatcher(recording);
    const once = batcher.prepare();
    await once.append(input('once'));
    await expect(once.append(input('once'))).rejects.toMatchObject({ name: 'StoreError', code: 'STORE_APPEND_REUSED', message: expect.stringMatching(/already appended or withdrawn/) });
    const gone = batcher.prepare();
    gone.withdraw();
    await expect(gone.append(input('gone'))).rejects.toMatchObject({ name: 'StoreError', code: 'STORE_APPEND_REUSED' });
  });

  it('has a statement for each mix of timer firings and idempotency keys, and each runs', async () => {
    forms = [];
    const batcher = new AppendBatcher(recording);
    const firing = { timerId: 't', claimedBy: 'node', markFired: true };
    const idempotency = { actorId: 'a', key: 'k', requestHash: 'h', response: {} };
    for (const extra of [{}, { firing }, { idempotency }, { firing, idempotency }]) {
      expect(await batcher.append({ ...input('forms'), ...extra })).toEqual({ applied: false, prior: null });
    }
    expect(forms.map((f) => f.name)).toEqual(['wf_append_batch', 'wf_append_batch_fire', 'wf_append_batch_idem', 'wf_append_batch_fire_idem']);
  });

  it('writes a batch without idempotency keys or timer firings with the statement that has no parts for them, and one with them with the full one', async () => {
    await upsertOrgUnits(store, [{ id: '批量社区', parent: null, level: 'community', name: '批量社区' }]);
    await upsertActor(store, { id: '批量办理人', name: '批量办理人', phone: null, roles: [{ role: '办理人', unit: '批量社区' }] });
    const engine = new Engine({ store: recording });
    await engine.deploy(`
workflow 批量 "group commit"
roles 办理人
case { 次数: number = 0 }
start 甲 by anyone
state 甲
  on 推进 by 办理人 set case.次数 = case.次数 + 1 notify 办理人 "轮到乙" -> 乙
  after 2 workdays escalate -> 甲
state 乙
  on 推进 by 办理人 set case.次数 = case.次数 + 1 -> 甲
  on 完成 by 办理人 -> 完结
  after 2 workdays escalate -> 乙
final 完结
`, 'batch.wf');
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await engine.startCase({ workflow: '批量', orgUnit: '批量社区', actor: '批量办理人', data: {} })).id);
    sent = [];
    forms = [];
    // Six at once, every other one with a key, so that batches of both kinds and mixed ones are written.
    const send = (id: string, i: number): Promise<unknown> =>
      engine.sendEvent(id, { type: '推进', actor: '批量办理人', ...(i % 2 === 0 ? { idempotencyKey: `key-${i}` } : {}) });
    const views = await Promise.all(ids.map(send));
    expect(views).toEqual(ids.map(() => expect.objectContaining({ state: '乙', version: 2 })));
    expect(forms.length).toBeGreaterThan(0);
    for (const f of forms) expect(f.name).toBe(f.idempotency ? 'wf_append_batch_idem' : 'wf_append_batch');
    // The keys were recorded: the same requests again are answered as before and write nothing.
    const again = await Promise.all(ids.map((id, i) => i % 2 === 0 ? send(id, i) : Promise.resolve(views[i])));
    expect(again).toEqual(views);
    for (const id of ids) expect((await loadEvents(store, id)).map((e) => e.type)).toEqual(['start', '推进']);
    // And three without keys: batches of those alone.
    const odd = ids.filter((_, i) => i % 2 === 1);
    expect(await Promise.all(odd.map((id, i) => send(id, 2 * i + 1)))).toEqual(odd.map(() => expect.objectContaining({ state: '甲', version: 3 })));
    for (const f of forms) expect(f.name).toBe(f.idempotency ? 'wf_append_batch_idem' : 'wf_append_batch');
    expect(new Set(forms.map((f) => f.name))).toEqual(new Set(['wf_append_batch', 'wf_append_batch_idem']));
  });
});
