// The workflow language: text → diagnostics, a checked model, a compiled definition (JSON) and a
// running XState machine. No I/O: imports are read through the loader the caller passes in.
export { parse, parseExpression } from './parse.ts';
export type { ParseResult } from './parse.ts';
export { check, checkSource, assignable } from './check.ts';
export type { CheckOptions, CheckResult, Model, SourceLoader } from './check.ts';
export { compile, COMPILER_VERSION } from './compile.ts';
export type { CompiledDefinition, EventSpec, StateSpec, TimerSpec, WhoSpec } from './compile.ts';
export { instantiate } from './runtime.ts';
export type { CaseContext, CaseEvent, Effect, Runtime, StartInput, TraceEntry } from './runtime.ts';
export { toDot, toMermaid, toSvg } from './graph.ts';
export { printExpr } from './print.ts';
export { CODES } from './codes.ts';
export type { Code } from './codes.ts';
export { diag, hasErrors, sortDiagnostics } from './diagnostics.ts';
export type { Diagnostic, Severity } from './diagnostics.ts';
export { validateRecord, validateValue } from './values.ts';
export type { FieldError } from './values.ts';
export type { DurationValue, FieldType, Type, Value } from './types.ts';
