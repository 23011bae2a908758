/**
 * The engine working through the application role on a real Postgres: events are appended, but
 * the role cannot change or delete them, nor switch the guard off.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { fileLoader } from '../../cli/main.ts';
import { Engine } from '../../engine/engine.ts';
import { openAppDatabase, openDatabase, type OpenedDatabase } from '../../engine/store/index.ts';
import { upsertActor, upsertOrgUnits } from '../../engine/store/registry.ts';
import { backend, databaseUrl, dropRole, sqlStateOfRejection, uniqueName } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WUDAN = path.join(ROOT, 'workflows/五单服务.wf');
const opened: OpenedDatabase[] = [];
const schema = uniqueName('wf_app_test');
const role = uniqueName('wf_app');

afterAll(async () => {
  for (const s of opened) await s.close();
  if (databaseUrl !== undefined) {
    const owner = await openDatabase({ databaseUrl, migrate: false });
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(owner.db);
    await dropRole(owner.db, role);
    await owner.close();
  }
});

describe('the application role', () => {
  it.runIf(backend === 'postgres')('(Postgres only) runs cases, and cannot alter, delete or unguard the history', async () => {
    const app = await openAppDatabase({ databaseUrl: databaseUrl as string, schema, appRole: role });
    opened.push(app);
    const { rows } = await sql<{ u: string }>`select current_user as u`.execute(app.db);
    expect(rows[0]?.u).toBe(role);

    await upsertOrgUnits(app, [{ id: '永乐社区', parent: null, level: 'community', name: '永乐社区' }, { id: '县卫健局', parent: null, level: 'department', name: '县卫健局' }]);
    await upsertActor(app, { id: '社区书记张', name: '张', phone: null, roles: [{ role: '社区书记', unit: '永乐社区' }] });
    const engine = new Engine({ store: app });
    await engine.deploy(readFileSync(WUDAN, 'utf8'), WUDAN, fileLoader);
    const c = await engine.startCase({ workflow: '五单服务', orgUnit: '永乐社区', actor: '居民王', data: { 社区: '永乐社区', 姓名: '王', 电话: '13800000000', 心愿: '修理路灯', 类别: '维修' } });
    await engine.sendEvent(c.id, { type: '派单', actor: '社区书记张', payload: { 单位: '县卫健局' } });

    expect(await sqlStateOfRejection(sql`update events set type = 'forged' where case_id = ${c.id}`.execute(app.db))).toBe('42501');
    expect(await sqlStateOfRejection(sql`delete from events where case_id = ${c.id}`.execute(app.db))).toBe('42501');
    expect(await sqlStateOfRejection(sql`alter table events disable trigger all`.execute(app.db))).toBe('42501');
    expect(await sqlStateOfRejection(sql`truncate events`.execute(app.db))).toBe('42501');
    const { rows: left } = await sql<{ n: number }>`select count(*)::int as n from events where case_id = ${c.id}`.execute(app.db);
    expect(left[0]?.n).toBe(2);
  });
});
