/**
 * Path coverage of every seed workflow: xstate's graph utilities enumerate every simple path
 * through the compiled machine (events with sample payloads, and timers); each path is then driven
 * through the in-memory engine — with real authorization, validation and timers — and must land
 * in the same states. Every state a path ends in must be final or still able to reach a final
 * state (a loop such as 退单 is fine, a trap is not).
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import { transition, type AnyMachineSnapshot } from 'xstate';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { fileLoader } from '../../cli/main.ts';
import { checkSource } from '../../dsl/check.ts';
import { compile, type CompiledDefinition, type EventSpec } from '../../dsl/compile.ts';
import { instantiate, type CaseContext, type CaseEvent, type StartInput } from '../../dsl/runtime.ts';
import type { FieldType, Value } from '../../dsl/types.ts';
import { validateRecord } from '../../dsl/values.ts';
import { authorize } from '../../engine/authorize.ts';
import { MemoryEngine } from '../../engine/memory.ts';
import { liveOracle, type MemoryOrg } from '../../engine/org.ts';
import { loadFixtures } from '../../engine/scenario.ts';
import { isTimerEvent } from '../../engine/step.ts';

const DIR = path.resolve(import.meta.dirname, '../../workflows');
const seeds = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith('.wf')).sort() : [];

interface Scenario {
  readonly start: { readonly as?: string; readonly unit?: string; readonly at: string | Date; readonly data: Record<string, Value> };
  readonly steps?: readonly { readonly send?: string; readonly payload?: Record<string, Value> }[];
}

function load(file: string) {
  const full = path.join(DIR, file);
  const r = checkSource(readFileSync(full, 'utf8'), full, { load: fileLoader });
  if (r.model === undefined) throw new Error(`${file}: ${r.diagnostics.map((d) => `${d.span.start.line}:${d.span.start.col} ${d.code} ${d.message}`).join('\n')}`);
  const def = compile(r.model);
  const testFile = full.replace(/\.wf$/, '.test.yaml');
  const doc = YAML.parse(readFileSync(testFile, 'utf8')) as { fixtures: string; scenarios: Scenario[] };
  const fixtures = loadFixtures(YAML.parse(readFileSync(path.resolve(path.dirname(testFile), doc.fixtures), 'utf8')));
  return { def, fixtures, scenarios: doc.scenarios };
}

/**
 * Values that can steer a branch: every enum member and boolean, and the ends of a number's range.
 * Units, people and texts come from the scenarios, whose fixtures have people in those units.
 */
function samples(f: FieldType): Value[] {
  const t = f.type;
  switch (t.kind) {
    case 'enum': return [...t.members];
    case 'boolean': return [true, false];
    case 'number': return [typeof f.constraints.min === 'number' ? f.constraints.min : 1, typeof f.constraints.max === 'number' ? f.constraints.max : 5];
    default: return [];
  }
}

function payloadSamples(spec: EventSpec, seen: readonly Record<string, Value>[]): Record<string, Value>[] {
  const out: Record<string, Value>[] = seen.length > 0 ? [...seen] : [{}];
  // Vary one field at a time from the first seen payload (or an empty one), so every branch a payload decides is tried.
  const base = seen[0] ?? {};
  for (const [name, f] of Object.entries(spec.payload)) {
    for (const v of samples(f)) out.push({ ...base, [name]: v });
  }
  const valid = out.filter((p) => validateRecord(spec.payload, p, {}).errors.length === 0);
  const unique = new Map(valid.map((p) => [JSON.stringify(p), p]));
  return [...unique.values()];
}

describe.each(seeds)('%s', (file) => {
  it('every simple path runs in the engine and can still reach a final state', () => {
    const { def, fixtures, scenarios } = load(file);
    const rt = instantiate(def);
    const org = fixtures.org as MemoryOrg;
    const first = scenarios[0];
    if (first === undefined) throw new Error(`${file}: no scenario to take start data from`);
    const startAt = first.start.at instanceof Date ? first.start.at.getTime() : Date.parse(first.start.at);
    const now = new Date(startAt).toISOString();
    const oracle = liveOracle(org, fixtures.calendar);
    const seenPayloads = new Map<string, Record<string, Value>[]>();
    for (const s of scenarios) for (const st of s.steps ?? []) {
      if (st.send !== undefined && st.payload !== undefined) seenPayloads.set(st.send, [...(seenPayloads.get(st.send) ?? []), st.payload]);
    }
    const data = validateRecord(def.caseFields, first.start.data, {}).value;
    const input: StartInput = { data, actor: first.start.as ?? null, unit: first.start.unit ?? null, now, oracle };

    const serializeState = (s: { value: unknown; context: CaseContext }): string =>
      `${String(s.value)}|${s.context.multi?.state === String(s.value) ? Object.keys(s.context.multi.done).sort().join(',') : ''}`;
    const events = (snap: AnyMachineSnapshot): CaseEvent[] => {
      const state = String(snap.value);
      const spec = def.states[state];
      if (spec === undefined || spec.final) return [];
      const candidates: CaseEvent[] = [];
      const ctx = snap.context as CaseContext;
      for (const [type, ev] of Object.entries(spec.events)) {
        const pending = spec.multi?.event === type ? (ctx.multi?.items ?? []).filter((u) => ctx.multi?.done[u] === undefined) : [null];
        for (const instance of pending) {
          for (const payload of payloadSamples(ev, seenPayloads.get(type) ?? [])) candidates.push({ type, payload, actor: null, instance, now, oracle });
        }
      }
      for (const t of spec.timers) candidates.push({ type: `xstate.after.${t.delay}.${def.machine.id}.${state}`, now, oracle });
      // Keep one event per distinct outcome: payloads that lead to the same place add paths, not coverage.
      const byOutcome = new Map<string, CaseEvent>();
      for (const e of candidates) {
        const [next] = transition(rt.machine, snap, e);
        const key = serializeState(next as unknown as { value: unknown; context: CaseContext });
        if (key !== serializeState(snap as unknown as { value: unknown; context: CaseContext }) && !byOutcome.has(key)) byOutcome.set(key, e);
      }
      return [...byOutcome.values()];
    };
    const options = { input, events, serializeState, serializeEvent: (e: CaseEvent) => JSON.stringify([e.type, e.payload ?? {}, e.instance ?? null]) };
    const paths = getSimplePaths(rt.machine, options as never) as unknown as { state: { value: unknown; context: CaseContext; status: string }; steps: { event: CaseEvent; state: { value: unknown } }[] }[];
    // The samples reach every state of the workflow.
    expect(new Set(paths.map((p) => String(p.state.value)))).toEqual(new Set(Object.keys(def.states)));

    const finals = new Set(Object.entries(def.states).filter(([, s]) => s.final).map(([n]) => n));
    const canFinish = new Map<string, boolean>();
    let driven = 0;
    for (const p of paths) {
      const end = String(p.state.value);
      if (!canFinish.has(end)) {
        const toFinal = getShortestPaths(rt.machine, { ...options, fromState: p.state, toState: (s: { value: unknown }) => finals.has(String(s.value)) } as never);
        canFinish.set(end, finals.has(end) || toFinal.length > 0);
      }
      expect(canFinish.get(end), `${file}: no way from "${end}" to a final state`).toBe(true);

      // Drive the same path through the engine, choosing for each event a sender the rules admit.
      const engine = new MemoryEngine(org, fixtures.calendar, startAt);
      const id = engine.start(def, { actor: input.actor, unit: input.unit, data });
      for (const step of p.steps.slice(1)) {
        const e = step.event;
        if (isTimerEvent(e.type)) {
          const due = engine.pendingTimers(id).find((t) => t.eventType === e.type);
          expect(due, `${file}: timer ${e.type} is not pending`).toBeDefined();
          engine.advanceTo(Date.parse(due?.dueAt ?? ''));
        } else {
          const c = engine.get(id);
          const spec = def.states[c.snapshot.state]?.events[e.type];
          if (spec === undefined) throw new Error(`${file}: ${e.type} not in ${c.snapshot.state}`);
          const m = c.snapshot.context.multi;
          const multi = spec.instanceVariable !== undefined && m !== null ? { pending: m.items.filter((u) => m.done[u] === undefined), variable: spec.instanceVariable } : undefined;
          const candidates = [c.snapshot.context.submitter, ...org.allActors(), 'anyone-else'];
          const sender = candidates.find((a) => {
            try {
              authorize(rt, c.snapshot.state, spec.who, c.snapshot.context, { ...e, actor: a, instance: e.instance ?? null }, org, multi);
              return true;
            } catch {
              return false;
            }
          });
          expect(sender, `${file}: nobody in the fixtures may send ${e.type} in ${c.snapshot.state}`).toBeDefined();
          engine.send(id, { type: e.type, actor: sender ?? null, payload: e.payload ?? {}, instance: e.instance ?? null });
        }
        expect(engine.get(id).snapshot.state).toBe(String(step.state.value));
      }
      driven++;
    }
    expect(driven).toBe(paths.length);
    console.info(`${file}: ${paths.length} simple paths, ${paths.reduce((n, p) => n + p.steps.length - 1, 0)} steps driven through the engine`);
  });
});
