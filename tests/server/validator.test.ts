/**
 * The app's schema validator (server/validator.ts): what matches as it came is passed on as it
 * came; path, query and header text that does not is converted (as @fastify/type-provider-typebox
 * would) and checked again; bodies are never converted.
 */
import type { FastifySchemaValidationError } from 'fastify';
import { Type, type TSchema } from 'typebox';
import { describe, expect, it } from 'vitest';
import { validatorCompiler } from '../../server/validator.ts';

const Query = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  state: Type.Optional(Type.String({ minLength: 1, pattern: '^[^\\u0000-\\u001f]+$' })),
  dryRun: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

function validate(schema: TSchema, httpPart: string, value: unknown): true | { value?: unknown; error?: FastifySchemaValidationError[] } {
  const fn = validatorCompiler({ schema, httpPart, method: 'GET', url: '/x' }) as (v: unknown) => unknown;
  return fn(value) as true | { value?: unknown; error?: FastifySchemaValidationError[] };
}

function refused(r: ReturnType<typeof validate>): FastifySchemaValidationError[] {
  if (r === true || r.error === undefined) throw new Error('accepted');
  return r.error;
}

describe('validatorCompiler', () => {
  // `true` tells Fastify to keep the part as it is (a `value` would be stored as a replacement).
  it('accepts a matching value as it came, without replacing it', () => {
    expect(validate(Type.Object({ id: Type.String() }), 'params', { id: 'c-1' })).toBe(true);
    const headers = { 'idempotency-key': 'k1', host: 'localhost', accept: '*/*' };
    expect(validate(Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }), 'headers', headers)).toBe(true);
    expect(validate(Query, 'body', { limit: 20 })).toBe(true);
  });

  it('converts query text that does not match as it came', () => {
    expect(validate(Query, 'querystring', { limit: '20', state: '待派单', dryRun: 'true' })).toEqual({ value: { limit: 20, state: '待派单', dryRun: true } });
  });

  it.each([
    ['a limit that is not a number', { limit: 'ten' }, '/limit'],
    ['a limit out of range', { limit: '501' }, '/limit'],
    ['a state with a NUL', { state: '待\u0000派单' }, '/state'],
    ['an unknown field', { sort: 'desc' }, '/sort'],
  ])('refuses %s, naming the path', (_name, query, path) => {
    const errors = refused(validate(Query, 'querystring', query));
    expect(errors.map((e) => e.instancePath)).toContain(path);
    expect(errors[0]).toMatchObject({ keyword: expect.any(String), instancePath: expect.any(String), message: expect.any(String) });
  });

  it('never converts a body: JSON already has its types', () => {
    expect(refused(validate(Query, 'body', { limit: '20' }))[0]?.instancePath).toBe('/limit');
  });
});
