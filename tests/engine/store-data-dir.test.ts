import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase, StoreError } from '../../engine/store/index.ts';
import { backend } from './support.ts';

// `npm start` without DATABASE_URL keeps its data in a directory; this is the embedded database's
// own behaviour, so the Postgres run has nothing to add and says so.
describe('embedded database in a data directory', () => {
  it.skipIf(backend === 'postgres')(
    backend === 'postgres'
      ? '(PGlite only: dataDir is the embedded database) keeps rows across a restart and does not migrate twice'
      : 'keeps rows across a restart and does not migrate twice',
    async () => {
      const dataDir = join(await mkdtemp(join(tmpdir(), 'wf-store-')), 'nested', 'data');
      try {
        const first = await openDatabase({ dataDir, schema: 'wf' });
        try {
          expect(first).toMatchObject({ kind: 'pglite', schema: 'wf', migrations: ['0001-core-tables', '0002-audit-guards', '0003-outbox-deliveries', '0004-personal-data-reads', '0005-event-order', '0006-history-writes-without-foreign-keys', '0007-case-paging-indexes', '0008-hash-check-without-regex'] });
          await first.db.insertInto('org_units').values({ id: 'grid-7', parent_id: null, level: 'grid', name: '第七网格' }).execute();
        } finally {
          await first.close();
        }

        const second = await openDatabase({ dataDir, schema: 'wf' });
        try {
          expect(second.migrations).toEqual([]);
          const units = await second.db.selectFrom('org_units').select(['id', 'name']).execute();
          expect(units).toEqual([{ id: 'grid-7', name: '第七网格' }]);
        } finally {
          await second.close();
        }
      } finally {
        await rm(join(dataDir, '..', '..'), { recursive: true, force: true });
      }
    },
  );

  it.skipIf(backend === 'postgres')(
    backend === 'postgres'
      ? '(PGlite only) refuses a second opener of the directory while the first has it, and takes over a lock left by a crash'
      : 'refuses a second opener of the directory while the first has it, and takes over a lock left by a crash',
    async () => {
      const root = await mkdtemp(join(tmpdir(), 'wf-store-lock-'));
      const dataDir = join(root, 'pglite');
      const lock = `${dataDir}.lock`;
      try {
        const first = await openDatabase({ dataDir });
        try {
          expect(await readFile(lock, 'utf8')).toBe(String(process.pid));
          const second = openDatabase({ dataDir });
          await expect(second).rejects.toBeInstanceOf(StoreError);
          await expect(second).rejects.toMatchObject({ code: 'STORE_IN_USE', message: expect.stringContaining(`delete ${lock}`) });
          // The first store still works.
          await first.db.insertInto('org_units').values({ id: 'grid-8', parent_id: null, level: 'grid', name: '第八网格' }).execute();
        } finally {
          await first.close();
        }
        expect(existsSync(lock)).toBe(false);

        // A lock left by a process that has ended (a crash) is taken over, also one with this
        // process's pid that this process did not take (a restarted container reuses pids).
        const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
        for (const stale of [gone.stdout, String(process.pid)]) {
          await writeFile(lock, stale);
          const after = await openDatabase({ dataDir });
          try {
            expect(await readFile(lock, 'utf8')).toBe(String(process.pid));
            expect(await after.db.selectFrom('org_units').select('id').execute()).toEqual([{ id: 'grid-8' }]);
          } finally {
            await after.close();
          }
        }
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  );
});
