/**
 * The global order of events that live streams follow (migration 0005, engine/store/changes.ts):
 * every event gets its transaction's id; the order is the database's; the JavaScript comparison
 * agrees with it; an event whose transaction commits late is held back, never skipped; the feed
 * hands batches to subscribers; cursors are checked.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeFeed, comparePositions, decodePosition, encodePosition, type FeedChange } from '../../engine/changes.ts';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { backend, openTestDatabase, seedCase, seedReferenceData } from './support.ts';

let store: OpenedDatabase;

beforeAll(async () => {
  store = await openTestDatabase();
  await seedReferenceData(store.db);
});

afterAll(async () => {
  await store?.close();
});

describe('the event order', () => {
  it('gives every new event the id of the transaction that wrote it', async () => {
    await seedCase(store.db, 'order-1', 2);
    const rows = await store.db.selectFrom('events').select(['seq', 'tx']).where('case_id', '=', 'order-1').orderBy('seq').execute();
    expect(rows.map((r) => typeof r.tx === 'string' && /^[0-9]+$/.test(r.tx))).toEqual([true, true]);
    expect(BigInt(rows[1]?.tx ?? '0')).toBeGreaterThan(BigInt(rows[0]?.tx ?? '0'));
  });

  it('reads in the order the database sorts, which comparePositions reproduces (case ids bytewise)', async () => {
    const feed = new ChangeFeed(store);
    const from = await feed.head();
    const ids = ['ordb', 'orda', 'ordZ', 'ordé', 'ord永乐', 'ord😀', 'ordｚ', 'ord-'];
    // One transaction: they share a tx, so the case id decides.
    await store.db.transaction().execute(async (trx) => {
      for (const id of ids) await seedCase(trx, id, 1);
    });
    await seedCase(store.db, 'ordlater', 1);
    const page = await feed.page(from, 100);
    const got = page.changes.filter((c) => c.caseId.startsWith('ord'));
    expect(got.map((c) => c.caseId).sort()).toEqual([...ids, 'ordlater'].sort());
    expect(got[got.length - 1]?.caseId).toBe('ordlater');
    const sorted = [...got].sort((a, b) => comparePositions(a.position, b.position));
    expect(sorted.map((c) => c.caseId)).toEqual(got.map((c) => c.caseId));
    // And after a position, exactly the rest.
    const mid = got[3] as FeedChange;
    const rest = (await feed.page(mid.position, 100)).changes.filter((c) => c.caseId.startsWith('ord'));
    expect(rest.map((c) => c.caseId)).toEqual(got.slice(4).map((c) => c.caseId));
    await feed.close();
  });

  it.skipIf(backend !== 'postgres')('(Postgres only) holds back events behind a transaction that commits late, and never skips them', async () => {
    const feed = new ChangeFeed(store);
    const from = await feed.head();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let began: () => void = () => {};
    const written = new Promise<void>((resolve) => {
      began = resolve;
    });
    // The early transaction takes its id first and commits last.
    const early = store.db.transaction().execute(async (trx) => {
      await seedCase(trx, 'late-early', 1);
      began();
      await gate;
    });
    await written;
    await seedCase(store.db, 'late-later', 1);
    const held = await feed.page(from, 100);
    expect(held.changes.map((c) => c.caseId).filter((id) => id.startsWith('late-'))).toEqual([]);
    expect(held.waiting).toBe(true);
    release();
    await early;
    const both = await feed.page(from, 100);
    expect(both.changes.map((c) => c.caseId).filter((id) => id.startsWith('late-'))).toEqual(['late-early', 'late-later']);
    await feed.close();
  });

  it('answers "after a position" from the BRIN index of migration 0005', async () => {
    const plan = await store.db.transaction().execute(async (trx) => {
      await sql`set local enable_seqscan = off`.execute(trx);
      const { rows } = await sql<{ 'QUERY PLAN': string }>`explain select case_id, seq from events where tx >= 1 order by tx limit 10`.execute(trx);
      return rows.map((row) => row['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('events_tx_brin');
  });
});

describe('the feed', () => {
  it('hands each new batch to its subscribers, in order, and stops reading when the last one leaves', async () => {
    const feed = new ChangeFeed(store, { pollMs: 20 });
    const seen: string[] = [];
    let wake: () => void = () => {};
    const stop = feed.subscribe((changes) => {
      seen.push(...changes.filter((c) => c.caseId.startsWith('feed-')).map((c) => `${c.caseId}#${c.seq}`));
      wake();
    });
    await feed.whenStarted();
    await seedCase(store.db, 'feed-1', 2);
    await seedCase(store.db, 'feed-2', 1);
    feed.poke();
    while (seen.length < 3) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    expect(seen).toEqual(['feed-1#1', 'feed-1#2', 'feed-2#1']);
    stop();
    expect(feed.size).toBe(0);
    await feed.close();
    expect(() => feed.subscribe(() => {})).toThrow(/closed/);
  });

  it('refuses a cursor it did not hand out', () => {
    const p = { tx: '12345', caseId: '永乐-1', seq: 3 };
    expect(decodePosition(encodePosition(p))).toEqual(p);
    expect(encodePosition(p)).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const bad of ['x', Buffer.from('[1,"a",2]').toString('base64url'), Buffer.from('["1","a",-1]').toString('base64url'), Buffer.from('["1e3","a",1]').toString('base64url')]) {
      expect(() => decodePosition(bad), bad).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    }
  });
});
