// The case engine: the pure step over XState, the in-memory engine for scenarios, and the engine on
// Postgres/PGlite with timers, outbox, audit, KPIs and case operations. Storage is in store/.
export { Engine, systemClock } from './engine.ts';
export type { CaseState, CaseView, Clock, DeployResult, EngineOptions, SendInput, StartInput } from './engine.ts';
export { EngineError, ERRORS } from './errors.ts';
export type { ErrorCode } from './errors.ts';
export { applyEvent, startCase, acceptedEvents, replayEvent, isTimerEvent } from './step.ts';
export type { CaseSnapshot, StepOutcome, TimerRequest } from './step.ts';
export { authorize } from './authorize.ts';
export { MemoryEngine } from './memory.ts';
export { MemoryOrg, liveOracle, replayOracle, lineage } from './org.ts';
export type { OrgUnit, OrgView, RoleGrant } from './org.ts';
export { createCalendar } from './calendar.ts';
export type { Calendar, CalendarOptions } from './calendar.ts';
export { canonicalJson, chainHash } from './hash.ts';
export { loadFixtures, runScenario } from './scenario.ts';
export { runDueTimers, TimerPoller } from './timers.ts';
export { OutboxWorker, pointsBalance } from './outbox.ts';
export { verify, replay, replayCases, auditCases, stateAt, systemEventReplayers, ReplayPool } from './audit.ts';
export { ThreadPoolError } from './thread-pool.ts';
export type { ThreadPoolErrorCode } from './thread-pool.ts';
export { actionsInState, availableActions, inbox } from './actions.ts';
export { linkCases, migrateCases, reassignCase, resumeCase, suspendCase } from './admin.ts';
export { kpis } from './kpis.ts';
export { ChangeFeed, watchCase, watchInbox } from './changes.ts';
export type { ChangeFeedOptions, EventChange, InboxChange, InboxMessage } from './changes.ts';
