/**
 * Scenarios that policy staff write next to a workflow (`<name>.test.yaml`): who sends which
 * event with which payload, how far the clock moves, and which state, data and effects are
 * expected. They run in memory on `MemoryEngine`. This module takes the parsed YAML; reading
 * files is the CLI's job.
 */
import type { CompiledDefinition } from '../dsl/compile.ts';
import { T, type FieldType, type Value } from '../dsl/types.ts';
import { validateValue } from '../dsl/values.ts';
import { createCalendar, type Calendar } from './calendar.ts';
import { EngineError, type ErrorCode } from './errors.ts';
import { MemoryEngine } from './memory.ts';
import { MemoryOrg, type OrgLevel, type OrgUnit, type RoleGrant } from './org.ts';

export class ScenarioFormatError extends Error {
  readonly code = 'WF0702';
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'ScenarioFormatError';
  }
}

export interface Fixtures {
  readonly org: MemoryOrg;
  readonly calendar: Calendar;
}

const LEVELS: readonly OrgLevel[] = ['prefecture', 'county', 'street', 'community', 'grid', 'department', 'co_building'];

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ScenarioFormatError(path, 'expected a mapping (key: value).');
  return v as Record<string, unknown>;
}

function list(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ScenarioFormatError(path, 'expected a list (- items).');
  return v;
}

function text(v: unknown, path: string): string {
  if (typeof v === 'string' && v.length > 0) return v;
  if (typeof v === 'number') return String(v);
  throw new ScenarioFormatError(path, 'expected a non-empty text.');
}

function optText(v: unknown, path: string): string | null {
  return v === undefined || v === null ? null : text(v, path);
}

/** YAML reads `2026-10-01` as a Date; dates in fixtures and scenarios are kept as written. */
function dateText(v: unknown, path: string): string {
  if (v instanceof Date) return v.toISOString().slice(0, 10);
  return text(v, path);
}

function instant(v: unknown, path: string): number {
  if (v instanceof Date) return v.getTime();
  const t = Date.parse(text(v, path));
  if (!Number.isFinite(t)) throw new ScenarioFormatError(path, `"${String(v)}" is not a date and time; write e.g. 2026-03-02T09:00:00+08:00.`);
  return t;
}

/**
 * Reads an org/roles fixture (units, actors and an optional calendar).
 * @example const { org, calendar } = loadFixtures(YAML.parse(readFileSync('workflows/fixtures/org.yaml', 'utf8')));
 */
export function loadFixtures(raw: unknown, path = 'fixtures'): Fixtures {
  const root = obj(raw, path);
  const units: OrgUnit[] = list(root['units'], `${path}.units`).map((u, i) => {
    const p = `${path}.units[${i}]`;
    const o = obj(u, p);
    const id = text(o['id'], `${p}.id`);
    const level = text(o['level'], `${p}.level`);
    if (!LEVELS.includes(level as OrgLevel)) throw new ScenarioFormatError(`${p}.level`, `"${level}" is not a level; use one of ${LEVELS.join(', ')}.`);
    return { id, parent: optText(o['parent'], `${p}.parent`), level: level as OrgLevel, name: optText(o['name'], `${p}.name`) ?? id };
  });
  const known = new Set(units.map((u) => u.id));
  units.forEach((u, i) => {
    if (u.parent !== null && !known.has(u.parent)) throw new ScenarioFormatError(`${path}.units[${i}].parent`, `unknown unit "${u.parent}".`);
  });
  const grants: Record<string, RoleGrant[]> = {};
  list(root['actors'], `${path}.actors`).forEach((a, i) => {
    const p = `${path}.actors[${i}]`;
    const o = obj(a, p);
    const id = text(o['id'], `${p}.id`);
    grants[id] = list(o['roles'], `${p}.roles`).map((r, j) => {
      const rp = `${p}.roles[${j}]`;
      const ro = obj(r, rp);
      const unit = text(ro['unit'], `${rp}.unit`);
      if (!known.has(unit)) throw new ScenarioFormatError(`${rp}.unit`, `unknown unit "${unit}".`);
      return { role: text(ro['role'], `${rp}.role`), unit };
    });
  });
  const cal = root['calendar'] === undefined ? {} : obj(root['calendar'], `${path}.calendar`);
  const calendar = createCalendar({
    ...(cal['timeZone'] === undefined ? {} : { timeZone: text(cal['timeZone'], `${path}.calendar.timeZone`) }),
    holidays: list(cal['holidays'], `${path}.calendar.holidays`).map((d, i) => dateText(d, `${path}.calendar.holidays[${i}]`)),
    workdays: list(cal['workdays'], `${path}.calendar.workdays`).map((d, i) => dateText(d, `${path}.calendar.workdays[${i}]`)),
  });
  return { org: new MemoryOrg(units, grants), calendar };
}

export interface StepFailure {
  /** Always WF0701: a step did not go as the scenario says. */
  readonly code: 'WF0701';
  readonly step: number;
  readonly message: string;
}

export interface ScenarioResult {
  readonly name: string;
  readonly passed: boolean;
  readonly failures: readonly StepFailure[];
  /** The state the case ended in. */
  readonly finalState: string | null;
}

const REJECTIONS: Record<string, ErrorCode> = { not_allowed: 'NOT_ALLOWED', not_possible: 'NOT_POSSIBLE', invalid: 'VALIDATION_FAILED' };
const DURATION_FIELD: FieldType = { type: T.duration, optional: false, constraints: {} };

function durationMs(v: unknown, path: string, calendar: Calendar, fromMs: number): number {
  const { value, errors } = validateValue(DURATION_FIELD, v, path);
  if (errors.length > 0 || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ScenarioFormatError(path, `"${String(v)}" is not a duration; write e.g. 3 hours or 2 workdays.`);
  }
  const d = value as { ms: number; workdays: number };
  const base = d.workdays > 0 ? calendar.addWorkdays(fromMs, Math.floor(d.workdays)) : fromMs;
  return base + d.ms - fromMs;
}

const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** Partial deep equality: every key in `want` must match in `got`; datetimes compare as instants. */
function matches(want: unknown, got: unknown): boolean {
  if (want === null || typeof want !== 'object') {
    if (typeof want === 'number' && typeof got === 'number') return Math.abs(want - got) < 1e-9;
    if (typeof want === 'string' && typeof got === 'string' && DATETIME.test(want) && DATETIME.test(got)) {
      return Date.parse(want) === Date.parse(got);
    }
    return want === got;
  }
  if (want instanceof Date) return typeof got === 'string' && Date.parse(got) === want.getTime();
  if (Array.isArray(want)) return Array.isArray(got) && want.length === got.length && want.every((w, i) => matches(w, got[i]));
  if (typeof got !== 'object' || got === null) return false;
  return Object.entries(want).every(([k, w]) => matches(w, (got as Record<string, unknown>)[k]));
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/**
 * Runs one scenario against a compiled definition.
 * @example const r = runScenario(def, fixtures, scenario); if (!r.passed) console.log(r.failures);
 */
export function runScenario(def: CompiledDefinition, fixtures: Fixtures, raw: unknown, path = 'scenario'): ScenarioResult {
  const sc = obj(raw, path);
  const name = text(sc['name'], `${path}.name`);
  const start = obj(sc['start'], `${path}.start`);
  const engine = new MemoryEngine(fixtures.org, fixtures.calendar, instant(start['at'], `${path}.start.at`));
  const failures: StepFailure[] = [];
  let caseId: string | null = null;
  let effectsSeen = 0;

  const startReject = start['reject'];
  try {
    caseId = engine.start(def, {
      actor: optText(start['as'], `${path}.start.as`),
      unit: optText(start['unit'], `${path}.start.unit`),
      data: obj(start['data'] ?? {}, `${path}.start.data`) as Record<string, Value>,
    });
    if (startReject !== undefined) failures.push({ code: 'WF0701', step: 0, message: `expected the start to be refused (${String(startReject)}), but the case started.` });
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    const want = startReject === undefined ? undefined : REJECTIONS[String(startReject)];
    if (want !== e.code) failures.push({ code: 'WF0701', step: 0, message: `start refused: ${e.code}: ${e.message}` });
    return { name, passed: failures.length === 0, failures, finalState: null };
  }

  list(sc['steps'], `${path}.steps`).forEach((s, i) => {
    const p = `${path}.steps[${i}]`;
    const step = obj(s, p);
    const n = i + 1;
    const id = caseId as string;
    if (step['send'] !== undefined) {
      const reject = step['reject'];
      try {
        engine.send(id, {
          type: text(step['send'], `${p}.send`),
          actor: optText(step['as'], `${p}.as`),
          payload: obj(step['payload'] ?? {}, `${p}.payload`) as Record<string, Value>,
          ...(step['unit'] === undefined ? {} : { instance: text(step['unit'], `${p}.unit`) }),
        });
        if (reject !== undefined) failures.push({ code: 'WF0701', step: n, message: `expected "${String(step['send'])}" to be refused (${String(reject)}), but it was accepted.` });
      } catch (e) {
        if (!(e instanceof EngineError)) throw e;
        const want = reject === undefined ? undefined : REJECTIONS[String(reject)];
        if (reject !== undefined && want === undefined) throw new ScenarioFormatError(`${p}.reject`, `use one of ${Object.keys(REJECTIONS).join(', ')}.`);
        if (want !== e.code) failures.push({ code: 'WF0701', step: n, message: `"${String(step['send'])}" refused: ${e.code}: ${e.message}` });
      }
    } else if (step['wait'] !== undefined) {
      engine.advance(durationMs(step['wait'], `${p}.wait`, fixtures.calendar, engine.now()));
    } else if (step['until'] !== undefined) {
      engine.advanceTo(instant(step['until'], `${p}.until`));
    } else if (step['expect'] !== undefined) {
      const want = obj(step['expect'], `${p}.expect`);
      const c = engine.get(id);
      const ctx = c.snapshot.context;
      if (want['state'] !== undefined && want['state'] !== c.snapshot.state) {
        failures.push({ code: 'WF0701', step: n, message: `expected state ${String(want['state'])}, but the case is in ${c.snapshot.state}.` });
      }
      if (want['data'] !== undefined) {
        for (const [k, v] of Object.entries(obj(want['data'], `${p}.expect.data`))) {
          if (!matches(v, ctx.data[k])) failures.push({ code: 'WF0701', step: n, message: `expected case.${k} = ${show(v)}, but it is ${show(ctx.data[k] ?? null)}.` });
        }
      }
      if (want['unit'] !== undefined && want['unit'] !== ctx.unit) {
        failures.push({ code: 'WF0701', step: n, message: `expected the responsible unit ${String(want['unit'])}, but it is ${String(ctx.unit)}.` });
      }
      if (want['effects'] !== undefined) {
        // The kinds listed must each have been emitted since the previous check of effects; `[]` means none.
        const kinds = c.effects.slice(effectsSeen).map((e) => e.kind);
        const wanted = list(want['effects'], `${p}.expect.effects`).map((k) => text(k, `${p}.expect.effects`));
        if (wanted.length === 0 && kinds.length > 0) failures.push({ code: 'WF0701', step: n, message: `expected no effects; got ${kinds.join(', ')}.` });
        for (const k of wanted) {
          if (!kinds.includes(k as never)) failures.push({ code: 'WF0701', step: n, message: `expected a ${k} effect; got ${kinds.join(', ') || 'none'}.` });
        }
        effectsSeen = c.effects.length;
      }
      if (want['missed'] !== undefined) {
        const missed = ctx.multi?.missed ?? [];
        if (!matches([...list(want['missed'], `${p}.expect.missed`)].sort(), [...missed].sort())) {
          failures.push({ code: 'WF0701', step: n, message: `expected missed units ${show(want['missed'])}, but they are ${show(missed)}.` });
        }
      }
      if (want['status'] !== undefined && want['status'] !== c.snapshot.status) {
        failures.push({ code: 'WF0701', step: n, message: `expected status ${String(want['status'])}, but it is ${c.snapshot.status}.` });
      }
    } else {
      throw new ScenarioFormatError(p, 'a step is one of send, wait, until or expect.');
    }
  });
  return { name, passed: failures.length === 0, failures, finalState: caseId === null ? null : engine.get(caseId).snapshot.state };
}
