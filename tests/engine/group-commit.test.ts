// Group commit: which events leave together in one statement. A free write slot takes the waiting
// events unless at least as many more are still being computed; then it waits for them (up to half
// of what is in the process), so the batches do not settle into a lopsided 1, 15, 1, 15 rhythm.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppendBatcher, type AppendInput } from '../../engine/store/cases.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
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
  let recording: OpenedDatabase;

  beforeAll(async () => {
    store = await openTestDatabase();
    recording = {
      ...store,
      write: (text, values, name) => {
        sent.push((JSON.parse(String(values[0])) as { case_id: string }[]).map((r) => r.case_id));
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
    const batcher = new AppendBatcher(recording);
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
    await expect(once.append(input('once'))).rejects.toThrow(/already appended or withdrawn/);
    const gone = batcher.prepare();
    gone.withdraw();
    await expect(gone.append(input('gone'))).rejects.toThrow(/already appended or withdrawn/);
  });
});
