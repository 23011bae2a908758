/**
 * What every route plugin is given, and the request decorations the app adds (the caller).
 */
import type { FastifyRequest } from 'fastify';
import type { SourceLoader } from '../dsl/check.ts';
import type { Engine } from '../engine/engine.ts';
import type { Principal } from './auth.ts';
import { ApiError } from './errors.ts';
import type { Metrics } from './metrics.ts';
import type { PersonalData } from './privacy.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null on public routes. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** No token needed (health, metrics, the API document). */
    public?: boolean;
  }
}

/** Options of each route plugin. */
export interface RouteContext {
  readonly engine: Engine;
  readonly metrics: Metrics;
  /** Reads `import`ed files of sources sent to check and deploy; without one, imports are not found. */
  readonly loader?: SourceLoader;
  /** Jurisdiction and personal-data masking of case reads, and the log of unmasked reads. */
  readonly privacy: PersonalData;
}

/**
 * The caller of an authenticated route. The auth hook has run before any handler, so a missing
 * principal is a wiring bug, reported as such.
 * @example const { actor } = principalOf(request);
 */
export function principalOf(request: FastifyRequest): Principal {
  const p = request.principal;
  if (p === null) throw new ApiError('UNAUTHORIZED', 'This route needs a bearer token.');
  return p;
}
