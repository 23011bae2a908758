/**
 * The shape of events that are not machine transitions (`case.suspended`, `case.migrated`, …):
 * how replay recomputes the snapshot after one. The module that writes such events (admin.ts)
 * exports its replayers; audit.ts collects them. This module holds only the shared types, so
 * neither of those two imports the other's internals in a cycle.
 */
import type { Runtime } from '../dsl/runtime.ts';
import type { CaseSnapshot } from './step.ts';
import type { ReplayRow } from './store/audit.ts';

/** A stored event as replay sees it: every column but the decision trace and the hashes; a system event's facts whole, a machine event's only `{ oracle, authorization: { instance }, definitionId }`. */
export type AuditEvent = ReplayRow;

/**
 * Recomputes the snapshot after a system event (`case.*`) from the one before it and the record.
 * `runtimeOf` gives the running machine of any definition the case's log names (e.g. a migration's
 * target, `record.facts.definitionId`). Throw to report the event as not replayable.
 * @example const replayer: SystemEventReplayer = (s, e) => ({ ...s, context: { ...s.context, unit: (e.payload as { to: string }).to } });
 */
export type SystemEventReplayer = (snapshot: CaseSnapshot, record: AuditEvent, runtimeOf: (definitionId: string) => Runtime) => CaseSnapshot;
