/**
 * What `npm start` sets up on a fresh database: the seed workflows deployed, and the demo
 * jurisdiction of workflows/fixtures/org.yaml (黎平县: streets, communities, grids, departments
 * and their people) plus the people who hold the server's own roles. Shared with the tests, so
 * the API is tested on what users first see.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { fileLoader } from '../cli/main.ts';
import { checkSource } from '../dsl/check.ts';
import type { Calendar } from '../engine/calendar.ts';
import type { DeployResult, Engine } from '../engine/engine.ts';
import { EngineError } from '../engine/errors.ts';
import { listOrgUnits } from '../engine/queries.ts';
import { loadFixtures } from '../engine/scenario.ts';
import type { OpenedDatabase } from '../engine/store/open.ts';
import { upsertActor, upsertOrgUnits } from '../engine/store/registry.ts';
import type { OrgUnitLevel } from '../engine/store/tables.ts';
import { SERVER_ROLES } from './auth.ts';

/** People added to the fixture's so that each server role has someone to sign in as. */
export const DEMO_STAFF = [
  { id: '政策员高', name: '高政策员', roles: [{ role: SERVER_ROLES.policy, unit: '黎平县' }] },
  { id: '管理员钟', name: '钟管理员', roles: [{ role: SERVER_ROLES.admin, unit: '黎平县' }] },
] as const;

/**
 * The demo people `npm start` prints a token for: one per role of the 五单 loop and per server
 * role (the fixture's 督查员周 is the auditor).
 */
export const DEMO_LOGINS: readonly { readonly actor: string; readonly as: string }[] = [
  { actor: '居民王先生', as: '居民 (resident: places and rates orders)' },
  { actor: '社区书记张', as: '社区书记 of 永乐社区 (dispatches 派单)' },
  { actor: '卫健局书记钱', as: '单位书记 of 县卫健局 (accepts 接单)' },
  { actor: '党员李', as: '在职党员 of 县卫健局 (claims 抢单, completes 完成)' },
  { actor: '党员杨', as: '在职党员 of 县卫健局 (a second claimant)' },
  { actor: '政策员高', as: `${SERVER_ROLES.policy} (policy staff: deploys workflows)` },
  { actor: '督查员周', as: `${SERVER_ROLES.auditor} (auditor: reads everything)` },
  { actor: '管理员钟', as: `${SERVER_ROLES.admin} (administrator: org units and people)` },
];

interface RawFixture {
  readonly units: readonly { readonly id: string; readonly parent?: string; readonly level: string; readonly name?: string }[];
  readonly actors: readonly { readonly id: string; readonly name?: string; readonly roles?: readonly { readonly role: string; readonly unit: string }[] }[];
}

/**
 * Reads an org fixture (units, people, holiday calendar), checked the way `wf test` checks it.
 * @example const { calendar } = readFixture('workflows/fixtures/org.yaml');
 */
export function readFixture(file: string): { readonly raw: RawFixture; readonly calendar: Calendar } {
  const raw = YAML.parse(readFileSync(file, 'utf8')) as unknown;
  const { calendar } = loadFixtures(raw, path.basename(file));
  return { raw: raw as RawFixture, calendar };
}

/**
 * Writes the fixture's units and people, and {@link DEMO_STAFF}, to the database (creating or
 * overwriting those ids; nothing else is touched).
 * @example await loadDemoData(store, 'workflows/fixtures/org.yaml');
 */
export async function loadDemoData(store: OpenedDatabase, fixtureFile: string): Promise<{ readonly units: number; readonly actors: number }> {
  const { raw } = readFixture(fixtureFile);
  await upsertOrgUnits(store, raw.units.map((u) => ({ id: u.id, parent: u.parent ?? null, level: u.level as OrgUnitLevel, name: u.name ?? u.id })));
  const people = [...raw.actors, ...DEMO_STAFF];
  for (const a of people) {
    await upsertActor(store, { id: a.id, name: a.name ?? a.id, phone: null, roles: (a.roles ?? []).map((r) => ({ role: r.role, unit: r.unit })) });
  }
  return { units: raw.units.length, actors: people.length };
}

/**
 * Deploys every `*.wf` workflow directly in `dir` (not the shared rule libraries below it); an
 * unchanged source keeps its version. With `onlyNew`, a workflow that has any version deployed
 * already is left alone: a restart must not undo a version policy staff deployed since.
 * @example const deployed = await deployWorkflows(engine, 'workflows', { onlyNew: true });
 */
export async function deployWorkflows(engine: Engine, dir: string, options: { readonly onlyNew?: boolean } = {}): Promise<DeployResult[]> {
  const out: DeployResult[] = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.wf')).sort()) {
    const file = path.resolve(dir, name);
    const source = readFileSync(file, 'utf8');
    if (options.onlyNew === true) {
      const workflow = checkSource(source, file, { load: fileLoader }).model?.name;
      if (workflow !== undefined && await isDeployed(engine, workflow)) continue;
    }
    out.push(await engine.deploy(source, file, fileLoader));
  }
  return out;
}

async function isDeployed(engine: Engine, workflow: string): Promise<boolean> {
  try {
    await engine.definition(workflow);
    return true;
  } catch (e) {
    if (e instanceof EngineError && e.code === 'DEFINITION_NOT_FOUND') return false;
    throw e;
  }
}

/**
 * Whether the database has no org units yet: demo data is loaded only into an empty tree, so a
 * restart never overwrites changes made through the API.
 * @example if (await orgIsEmpty(engine)) await loadDemoData(engine.store, fixture);
 */
export async function orgIsEmpty(engine: Engine): Promise<boolean> {
  return (await listOrgUnits(engine)).length === 0;
}
