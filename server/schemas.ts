/**
 * TypeBox schemas shared by several routes: the problem body, a case, a diagnostic. Route files
 * declare their own request schemas next to their handlers (STYLE §11); what is here is what more
 * than one of them answers with.
 */
import { Type, type Static, type TSchema, type TString } from 'typebox';
import type { CaseView } from '../engine/engine.ts';
import type { AvailableAction } from '../engine/actions.ts';
import type { Diagnostic } from '../dsl/diagnostics.ts';
import { ERRORS } from './errors.ts';
import type { ShownData } from './privacy.ts';

/** A pattern for names, ids and cursors: no control characters (they would corrupt logs and lookups). */
export const NO_CONTROLS = '^[^\\u0000-\\u001f]+$';

/**
 * A name or id as routes take it: 1 to `maxLength` (default 200) characters, none of them a control character.
 * @example const Params = Type.Object({ workflow: NameString() }); NameString({ description: 'The responsible org unit.' })
 */
export function NameString(options: { readonly maxLength?: number; readonly description?: string } = {}): TString {
  const { maxLength = 200, description } = options;
  return Type.String({ minLength: 1, maxLength, pattern: NO_CONTROLS, ...(description === undefined ? {} : { description }) });
}

/** `T | null`. */
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** Any JSON object (free-form: case data, payloads, JSON Schemas of forms). */
export const JsonObject = Type.Record(Type.String(), Type.Unknown());

/** RFC 9457 problem details; the error's own details are spread alongside. */
export const Problem = Type.Object({
  type: Type.String({ description: 'A URN naming the code, e.g. urn:closed-loop:problem:NOT_ALLOWED.' }),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.Union(Object.keys(ERRORS).map((c) => Type.Literal(c)), { description: 'Stable code from the error table (docs/errors.md).' }),
  detail: Type.String({ description: 'What happened to this request.' }),
  instance: Type.String({ description: 'The request path.' }),
  hint: Type.String({ description: 'What to do about it.' }),
  requestId: Type.String(),
}, { additionalProperties: true, title: 'Problem', description: 'application/problem+json (RFC 9457) with the error\'s details alongside.' });

const problemContent = { 'application/problem+json': { schema: Problem } };

/** Error responses every route may give, as application/problem+json. */
export const problemResponses = {
  '4xx': { description: 'A problem (RFC 9457) with a code from docs/errors.md', content: problemContent },
  '5xx': { description: 'A problem (RFC 9457) with a code from docs/errors.md', content: problemContent },
} as const;

const Position = Type.Object({ line: Type.Integer(), col: Type.Integer(), offset: Type.Integer() });

/** The one diagnostic shape (dsl/diagnostics.ts). */
export const DiagnosticSchema = Type.Object({
  code: Type.String({ description: 'Stable code such as WF0201 (docs/diagnostics.md).' }),
  severity: Type.Union([Type.Literal('error'), Type.Literal('warning')]),
  message: Type.String(),
  hint: Type.Optional(Type.String()),
  file: Type.Optional(Type.String()),
  span: Type.Object({ start: Position, end: Position }),
}, { title: 'Diagnostic' });

export function diagnosticBody(d: Diagnostic): Static<typeof DiagnosticSchema> {
  return {
    code: d.code, severity: d.severity, message: d.message, span: d.span,
    ...(d.hint === undefined ? {} : { hint: d.hint }),
    ...(d.file === undefined ? {} : { file: d.file }),
  };
}

export const AvailableActionSchema = Type.Object({
  event: Type.String(),
  label: Type.Optional(Type.String()),
  who: Type.String({ description: 'Who may send it, as a person reads it.' }),
  as: Type.Object({
    role: Nullable(Type.String()),
    unit: Nullable(Type.String()),
    clause: Type.Union([Type.Literal('role'), Type.Literal('person'), Type.Literal('anyone')]),
  }),
  payloadSchema: Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'JSON Schema of the payload form.', additionalProperties: true }),
  units: Type.Optional(Type.Array(Type.String(), { description: 'Multi-unit step: the units the caller may act for (send one as `instance`).' })),
}, { title: 'AvailableAction' });

export function actionBody(a: AvailableAction): Static<typeof AvailableActionSchema> {
  return {
    event: a.event, who: a.who, as: { role: a.as.role, unit: a.as.unit, clause: a.as.clause },
    payloadSchema: a.payloadSchema as unknown as Record<string, unknown>,
    ...(a.label === undefined ? {} : { label: a.label }),
    ...(a.units === undefined ? {} : { units: [...a.units] }),
  };
}

const MultiProgressSchema = Type.Object({
  state: Type.String(),
  items: Type.Array(Type.String()),
  done: Type.Record(Type.String(), Type.Object({ actor: Nullable(Type.String()), at: Type.String() })),
  missed: Type.Array(Type.String()),
});

export const CaseSchema = Type.Object({
  id: Type.String(),
  workflow: Type.String(),
  definitionVersion: Type.Integer(),
  definitionId: Type.String(),
  state: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('done'), Type.Literal('suspended')]),
  data: JsonObject,
  unit: Nullable(Type.String({ description: 'The responsible org unit.' })),
  submitter: Nullable(Type.String()),
  version: Type.Integer({ description: 'Number of events in its history.' }),
  headHash: Nullable(Type.String()),
  due: Type.Record(Type.String(), Type.String(), { description: 'Due times of the current state\'s deadlines and reminders, by timer key.' }),
  multi: Nullable(MultiProgressSchema),
  allowedActions: Type.Optional(Type.Array(AvailableActionSchema, { description: 'What the caller may send now.' })),
  masked: Type.Optional(Type.Array(Type.String(), { description: 'Fields of `data` shown masked (a resident\'s name or phone number the caller has no need to see in full).' })),
}, { title: 'Case' });

export type CaseBody = Static<typeof CaseSchema>;

/**
 * The API form of a case: a plain copy, so engine-internal readonly structures never leak into
 * the wire type. Pass `shown` (from server/privacy.ts) for the data the caller may see; without
 * it the data goes out as stored.
 * @example return caseBody(view, actions, await privacy.forRead(request, view));
 */
export function caseBody(v: CaseView, actions?: readonly AvailableAction[], shown?: ShownData): CaseBody {
  const m = v.multi;
  return {
    id: v.id, workflow: v.workflow, definitionVersion: v.definitionVersion, definitionId: v.definitionId, state: v.state, status: v.status,
    data: { ...(shown?.data ?? v.data) }, unit: v.unit, submitter: v.submitter, version: v.version, headHash: v.headHash, due: { ...v.due },
    multi: m === null ? null : { state: m.state, items: [...m.items], done: { ...m.done }, missed: [...m.missed] },
    ...(actions === undefined ? {} : { allowedActions: actions.map(actionBody) }),
    ...(shown === undefined || shown.masked.length === 0 ? {} : { masked: [...shown.masked] }),
  };
}

/**
 * Headers with an optional `Idempotency-Key`: a client-chosen key of visible ASCII, `minLength`
 * (default 1) to 200 characters, that makes a retry return the first answer.
 * @example const Headers = idempotencyHeaders({ minLength: 22, description: 'Made once per form.' });
 */
export function idempotencyHeaders(options: { readonly minLength?: number; readonly description: string }) {
  return Type.Object({
    'idempotency-key': Type.Optional(Type.String({ minLength: options.minLength ?? 1, maxLength: 200, pattern: '^[\\x21-\\x7E]+$', description: options.description })),
  });
}

/** `Idempotency-Key` as the case routes take it. */
export const IdempotencyHeaders = idempotencyHeaders({ description: 'Retries with the same key get the first answer.' });
