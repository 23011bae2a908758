/**
 * Who may send an event (属地): a role held in the unit a `by` clause names — the case's
 * responsible unit by default — or in any ancestor of it; a person named in case data; or anyone.
 * Pure: the org view is passed in, and the decision is returned for the history.
 */
import type { WhoSpec } from '../dsl/compile.ts';
import type { CaseContext, CaseEvent, Runtime } from '../dsl/runtime.ts';
import { EngineError } from './errors.ts';
import { lineage, type OrgView } from './org.ts';

/** Why the actor may act: recorded with the event. */
export interface Authorization {
  /** The role that allowed it, or null for a person clause or `anyone`. */
  readonly role: string | null;
  /** The unit the role was required in (not the ancestor where it is held). */
  readonly unit: string | null;
  /** For a multi-unit step: the unit the actor acts for. */
  readonly instance: string | null;
  readonly clause: 'role' | 'person' | 'anyone';
}

/** One way the event could be sent, for the 403 body ("who may act instead"). */
export interface AllowedSender {
  readonly role?: string;
  readonly unit?: string | null;
  readonly person?: string | null;
  readonly anyone?: true;
}

function describe(a: AllowedSender): string {
  if (a.anyone) return 'anyone';
  if (a.role !== undefined) return a.unit === null || a.unit === undefined ? a.role : `${a.role} of ${a.unit}`;
  return a.person ?? 'nobody (the person field is empty)';
}

/**
 * Checks the actor against the `by` clauses of an event (or of the start), in order; the first
 * that admits the actor wins. Throws NOT_ALLOWED naming who may act instead.
 * @example const auth = authorize(rt, '待派单', spec.who, ctx, event, org);
 */
export function authorize(
  rt: Runtime,
  state: string | null,
  who: readonly WhoSpec[],
  ctx: CaseContext,
  event: CaseEvent,
  org: OrgView,
  multi?: { readonly pending: readonly string[]; readonly variable: string; readonly done?: readonly string[] },
): Authorization {
  const actor = event.actor ?? null;
  const allowed: AllowedSender[] = [];
  const grants = actor === null ? [] : org.rolesOf(actor);
  const holdsIn = (role: string, unit: string | null): boolean =>
    unit !== null && grants.some((g) => g.role === role && lineage(org, unit).includes(g.unit));

  for (const w of who) {
    switch (w.kind) {
      case 'anyone':
        return { role: null, unit: null, instance: multi === undefined ? null : pick(multi.pending, event.instance ?? null), clause: 'anyone' };
      case 'person': {
        const person = rt.evalWho(w, state, ctx, event);
        if (actor !== null && person === actor) return { role: null, unit: null, instance: null, clause: 'person' };
        allowed.push({ person: typeof person === 'string' ? person : null });
        break;
      }
      case 'role': {
        if (multi !== undefined && w.of !== undefined) {
          // The unit is the step's variable: try the pending units the actor serves, the asked-for one first.
          const candidates = event.instance !== undefined && event.instance !== null
            ? multi.pending.filter((u) => u === event.instance) : multi.pending;
          for (const u of candidates) {
            const unit = rt.evalWho(w, state, ctx, { ...event, instance: u });
            if (typeof unit === 'string' && holdsIn(w.role, unit)) return { role: w.role, unit, instance: u, clause: 'role' };
          }
          // Acting again for a unit that has already acted is a state problem, not a permissions one.
          for (const u of multi.done ?? []) {
            const unit = rt.evalWho(w, state, ctx, { ...event, instance: u });
            if (typeof unit === 'string' && holdsIn(w.role, unit) && (event.instance === undefined || event.instance === null || event.instance === u)) {
              throw new EngineError('NOT_POSSIBLE', `${u} has already sent "${event.type}" in this step.`, { event: event.type, unit: u, pending: multi.pending });
            }
          }
          for (const u of multi.pending) {
            const unit = rt.evalWho(w, state, ctx, { ...event, instance: u });
            allowed.push({ role: w.role, unit: typeof unit === 'string' ? unit : null });
          }
          break;
        }
        const unitValue = rt.evalWho(w, state, ctx, event);
        const unit = typeof unitValue === 'string' ? unitValue : null;
        if (holdsIn(w.role, unit)) {
          return { role: w.role, unit, instance: multi === undefined ? null : pick(multi.pending, event.instance ?? null), clause: 'role' };
        }
        allowed.push({ role: w.role, unit });
        break;
      }
    }
  }
  const names = allowed.map(describe);
  throw new EngineError('NOT_ALLOWED',
    `${actor ?? 'An anonymous sender'} may not send "${event.type}". Allowed: ${names.length > 0 ? names.join('; ') : 'nobody'}.`,
    { event: event.type, actor, allowed });
}

function pick(pending: readonly string[], wanted: string | null): string | null {
  if (wanted !== null) return pending.includes(wanted) ? wanted : null;
  return pending[0] ?? null;
}
