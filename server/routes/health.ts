/**
 * Operations: liveness, readiness (the database answers) and Prometheus metrics. Public: probes
 * and scrapers carry no token.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { databaseReady } from '../../engine/queries.ts';
import type { RouteContext } from '../context.ts';

/** How long readiness waits for the database before calling it not ready. */
const READY_TIMEOUT_MS = 2_000;

const Health = Type.Object({ status: Type.Literal('ok') });
const Ready = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  database: Type.Object({ ok: Type.Boolean(), kind: Type.String(), error: Type.Optional(Type.String()) }),
});

/**
 * Liveness, readiness and metrics.
 * @example await app.register(healthRoutes, { engine, metrics });
 */
export const healthRoutes: FastifyPluginAsyncTypebox<RouteContext> = async (app, { engine, metrics }) => {
  const open = { public: true, rateLimit: false } as const;

  app.get('/healthz', {
    config: open,
    schema: { tags: ['ops'], summary: 'Liveness: the process answers', security: [], response: { 200: Health } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: open,
    schema: { tags: ['ops'], summary: 'Readiness: the database answers a query', security: [], response: { 200: Ready, 503: Ready } },
  }, async (request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<{ ok: boolean; error?: string }>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${READY_TIMEOUT_MS} ms` }), READY_TIMEOUT_MS);
    });
    const db = await Promise.race([databaseReady(engine), timeout]).finally(() => clearTimeout(timer));
    if (!db.ok) request.log.warn({ error: db.error }, 'not ready: database');
    const database = { ok: db.ok, kind: engine.store.kind, ...(db.error === undefined ? {} : { error: db.error }) };
    return reply.code(db.ok ? 200 : 503).send({ status: db.ok ? 'ready' as const : 'unavailable' as const, database });
  });

  app.get('/metrics', {
    config: open,
    schema: {
      tags: ['ops'], summary: 'Prometheus metrics (text exposition format)', security: [],
      response: { 200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: Type.String() } } } },
    },
  }, async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
};
