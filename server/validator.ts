/**
 * The schema validator the app gives Fastify: TypeBox's compiled checks, as
 * @fastify/type-provider-typebox's `TypeBoxValidatorCompiler`, except that a path, query string
 * or header object is first checked as it came. Those arrive as text and almost always match
 * already (an id, a name, an optional header), while converting them walks the whole schema on
 * every request; only what fails as it came (`"20"` for an integer `limit`) is converted and
 * checked again, and only then is the request's part replaced. Bodies are JSON and are never converted. The errors are TypeBox's, in the form
 * the app's error handler reads (`instancePath`, `keyword`, `params`, `message`).
 */
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import { Compile } from 'typebox/compile';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';

/**
 * Compiles one route part's schema into Fastify's validator.
 * @example app.setValidatorCompiler(validatorCompiler);
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  // TypeBox's errors carry what Fastify's type names (keyword, instancePath, schemaPath, params).
  const errors = (v: unknown): FastifySchemaValidationError[] => check.Errors(v) as FastifySchemaValidationError[];
  return (value: unknown) => {
    // `true` leaves the request's part as it is; handing back a value makes Fastify store it as a
    // copy, and for headers every later `request.headers` read would then merge two objects.
    if (check.Check(value)) return true;
    if (httpPart === 'body') return { error: errors(value) };
    const converted = Value.Convert(schema, value);
    return check.Check(converted) ? { value: converted } : { error: errors(converted) };
  };
};
