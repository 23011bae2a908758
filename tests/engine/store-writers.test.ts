/**
 * The store's write connections (`OpenedDatabase.write`): the engine's event statements go out on
 * connections of their own, planned for key lookups, and a lost connection is replaced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../engine/store/index.ts';
import { backend, openTestDatabase } from './support.ts';

let store: OpenedDatabase;

beforeAll(async () => {
  store = await openTestDatabase();
});

afterAll(async () => {
  await store?.close();
});

describe(`write connections on ${backend}`, () => {
  it('see the store schema, and answer many statements at once in order of arrival per statement', async () => {
    const rows = await Promise.all(Array.from({ length: 20 }, (_, i) => store.write<{ n: number; schema: string }>('select $1::int as n, current_schema() as schema', [i])));
    expect(rows.map((r) => r[0]?.n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(new Set(rows.map((r) => r[0]?.schema))).toEqual(new Set([store.schema]));
  });

  it('stay usable after a statement the server refuses', async () => {
    await expect(store.write('select 1/0', [])).rejects.toMatchObject({ code: '22012' });
    expect(await store.write<{ ok: number }>('select 1 as ok', [])).toEqual([{ ok: 1 }]);
  });

  it.skipIf(backend !== 'postgres')('(Postgres only) plan by index, never by scanning every case', async () => {
    expect(await store.write<{ enable_seqscan: string }>('show enable_seqscan', [])).toEqual([{ enable_seqscan: 'off' }]);
    // The pool's connections, which run everything else, keep the server's default.
    expect(await store.query<{ enable_seqscan: string }>('show enable_seqscan', [])).toEqual([{ enable_seqscan: 'on' }]);
  });

  it.skipIf(backend !== 'postgres')('(Postgres only) replace a connection the server dropped: the statement on it fails, the next one runs', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const r = await Promise.all([0, 1, 2, 3].map(() => store.write<{ pid: number }>('select pg_backend_pid() as pid, pg_sleep(0.01)', [])));
      for (const x of r) pids.add(Number(x[0]?.pid));
    }
    // Another session ends every write connection, as a restart or an administrator would.
    await store.query('select pg_terminate_backend(pid) from pg_stat_activity where pid = any($1::int[])', [JSON.stringify([...pids]).replace('[', '{').replace(']', '}')]);
    const after = await Promise.allSettled(Array.from({ length: 6 }, () => store.write<{ pid: number }>('select pg_backend_pid() as pid', [])));
    const ok = after.filter((r): r is PromiseFulfilledResult<readonly { pid: number }[]> => r.status === 'fulfilled');
    expect(ok.length).toBeGreaterThan(0);
    for (const r of ok) expect(pids.has(Number(r.value[0]?.pid))).toBe(false);
    expect(await store.write<{ ok: number }>('select 1 as ok', [])).toEqual([{ ok: 1 }]);
  });
});
