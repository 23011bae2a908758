/**
 * Live updates: server-sent events of one case or of the caller's inbox, a long-poll form of
 * each for clients without `EventSource` (WeChat mini-programs), and the tickets a browser puts in
 * a stream's URL because `EventSource` cannot send an `Authorization` header.
 *
 * - `GET /v1/cases/{id}/stream`: an `event: case` message per event after the client's position,
 *   with `id:` the event's seq. Without a position it starts with the case's latest event, so the
 *   client learns the current state and a position at once. When the case leaves the caller's
 *   reach (reassigned, returned, no longer naming them), `event: gone` and the stream ends.
 * - `GET /v1/inbox/stream`: an `event: inbox` message per changed case the caller can act on now,
 *   or could and no longer can (with `canAct: false`), each with the actions; `id:` is an opaque
 *   global cursor. `event: seen` moves the cursor past changes that concern the caller not;
 *   `event: reset` says the stream was too far behind: reload `GET /v1/inbox` and follow on.
 * - Resume with the `Last-Event-ID` header (EventSource sends it when it reconnects), or `?after=`.
 * - A `: heartbeat` comment every 15 s keeps proxies from closing an idle stream.
 * - `GET /v1/cases/{id}/changes` and `GET /v1/inbox/changes`: `{ items, next }` at once when
 *   something follows `after`, else when something arrives or `waitMs` (≤ 30 s) runs out.
 *
 * Who may: a stream or long-poll is opened with a bearer header or, for the two streams, a ticket
 * (`?ticket=`) from `POST /v1/stream-tickets`; a bearer token in a URL is refused. A case's
 * stream needs the right to read the case, judged by the same rule as `GET /v1/cases/{id}`
 * (server/privacy.ts) when the ticket is issued and again when the stream opens; the inbox stream
 * tells only of cases the caller may see. Changes come from the database, so a stream sees what
 * any server process writes (engine/changes.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import {
  decodePosition, encodePosition, watchCase, watchInbox,
  type ChangeFeed, type ChangePosition, type EventChange, type InboxChange, type InboxMessage, type Watch,
} from '../../engine/changes.ts';
import type { CaseView } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { verifyToken, type Principal } from '../auth.ts';
import { principalOf, type RouteContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { canSee } from '../privacy.ts';
import { actionBody, AvailableActionSchema, JsonObject, Nullable, problemResponses } from '../schemas.ts';
import { DEFAULT_TICKET_TTL_SECONDS, signTicket, verifyTicket, type Ticket as StreamTicket, type TicketScope } from '../tickets.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Also accepts a stream ticket (`?ticket=`) in place of a bearer header. */
    streamTicket?: boolean;
  }
}

/** Settings of the live-update routes (all optional). */
export interface StreamOptions {
  /** The process's change feed; without one the app makes its own, which polls and does not LISTEN. */
  readonly changes?: ChangeFeed;
  /** How often the app's own feed polls while someone watches (default 1,000 ms); ignored with `changes`. */
  readonly pollMs?: number;
  /** How often an idle stream sends a heartbeat comment (default 15,000 ms). */
  readonly heartbeatMs?: number;
  /** How long a stream ticket opens streams (default 60 s). */
  readonly ticketTtlSeconds?: number;
  /** The reconnect delay advised to `EventSource` (`retry:`, default 3,000 ms). */
  readonly retryMs?: number;
}

/** What the stream routes need besides the common route context. */
export interface StreamContext extends RouteContext {
  /** Checks bearer tokens (to refuse one in a URL) and derives the ticket key. */
  readonly jwtSecret: string;
  readonly changes: ChangeFeed;
  readonly heartbeatMs?: number;
  readonly ticketTtlSeconds?: number;
  readonly retryMs?: number;
}

/** The longest a long-poll waits. */
export const MAX_WAIT_MS = 30_000;
/** A client that lets this much go unread is dropped (it reconnects and resumes). */
const MAX_UNREAD_BYTES = 1024 * 1024;
/** Query parameters that would carry a long-lived token in a URL. */
const URL_TOKEN_PARAMS = ['access_token', 'token', 'jwt', 'bearer', 'authorization'] as const;

/** Thrown by a stream's formatter to send `text` as the stream's last message and end it. */
class StreamEnd extends Error {
  constructor(readonly text: string) {
    super('stream ended');
  }
}

const Id = Type.String({ minLength: 1, maxLength: 200 });
const CaseParams = Type.Object({ id: Id });
const Ticket = Type.String({ minLength: 1, maxLength: 4096, description: 'A stream ticket from POST /v1/stream-tickets (needed only without an Authorization header).' });
const Cursor = Type.String({ minLength: 1, maxLength: 1000, description: 'An `id` (or `next`) the inbox stream sent.' });
const WaitMs = Type.Integer({ minimum: 0, maximum: MAX_WAIT_MS, description: `How long to wait for a change (default and most ${MAX_WAIT_MS} ms).` });
const Status = Type.Union([Type.Literal('active'), Type.Literal('done'), Type.Literal('suspended')]);
const LastEventIdHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ maxLength: 1000, description: 'The last `id` received; EventSource sends it when it reconnects. Takes precedence over `after`.' })),
});

const CaseChangeSchema = Type.Object({
  caseId: Type.String(),
  seq: Type.Integer({ description: 'The event\'s number in the case history; the message `id`.' }),
  type: Type.String({ description: 'The event, e.g. 派单, or xstate.after.… for a deadline.' }),
  state: Type.String({ description: 'The state after the event.' }),
  status: Status,
  version: Type.Integer({ description: 'Events in the history after this one (= seq).' }),
  actor: Nullable(Type.String()),
  at: Type.String({ format: 'date-time', description: 'When the event was recorded.' }),
}, { title: 'CaseChange' });

const InboxChangeSchema = Type.Object({
  cursor: Type.String({ description: 'Resume after this change (the message `id`).' }),
  caseId: Type.String(),
  seq: Type.Integer({ description: 'The case\'s latest event read.' }),
  type: Type.String(),
  at: Type.String({ format: 'date-time' }),
  workflow: Type.String(),
  definitionVersion: Type.Integer(),
  state: Type.String(),
  stateLabel: Type.Optional(Type.String()),
  status: Status,
  unit: Nullable(Type.String()),
  submitter: Nullable(Type.String()),
  version: Type.Integer(),
  data: JsonObject,
  due: Type.Record(Type.String(), Type.String()),
  canAct: Type.Boolean({ description: 'false: drop the case from the inbox.' }),
  actions: Type.Array(AvailableActionSchema),
}, { title: 'InboxChange' });

const InboxGoneSchema = Type.Object({
  cursor: Type.String(),
  caseId: Type.String(),
  seq: Type.Integer(),
  canAct: Type.Literal(false),
  gone: Type.Literal(true, { description: 'The case left the caller\'s reach (returned, reassigned): drop it.' }),
}, { title: 'InboxGone' });

const TicketBody = Type.Object({
  case: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The case whose stream the ticket opens; omit for the inbox stream.' })),
}, { additionalProperties: false });

const TicketAnswer = Type.Object({
  ticket: Type.String(),
  expiresAt: Type.String({ format: 'date-time', description: 'Open the stream before this; it stays open after.' }),
  url: Type.String({ description: 'The stream to open, ticket included.' }),
}, { title: 'StreamTicket' });

const sseResponse = {
  200: { description: 'text/event-stream (server-sent events)', content: { 'text/event-stream': { schema: Type.String() } } },
  ...problemResponses,
} as const;

interface SseMessage {
  readonly id?: string;
  readonly event?: string;
  readonly data?: unknown;
}

/** One SSE message; JSON data has no raw newline, so one `data:` line each. */
function sse(m: SseMessage): string {
  return `${m.id === undefined ? '' : `id: ${m.id}\n`}${m.event === undefined ? '' : `event: ${m.event}\n`}data: ${JSON.stringify(m.data ?? {})}\n\n`;
}

function caseMessage(e: EventChange): Static<typeof CaseChangeSchema> {
  return { caseId: e.caseId, seq: e.seq, type: e.type, state: e.state, status: e.status, version: e.seq, actor: e.actor, at: e.at };
}

function seqOf(text: string, where: string): number {
  if (!/^[0-9]{1,9}$/.test(text)) {
    throw new EngineError('VALIDATION_FAILED', `${where} must be an event seq this stream sent (a whole number).`, {
      fields: [{ path: where, code: 'type', message: 'Pass back an `id` this stream sent, unchanged.' }],
    });
  }
  return Number(text);
}

/** Waits for `p`, or until `signal` aborts. */
function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return Promise.race([p, new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))]);
}

function tokenInUrl(): ApiError {
  return new ApiError('UNAUTHORIZED', 'A bearer token is not accepted in a URL (it would be kept in logs and histories): send it in the Authorization header, or trade it for a short-lived ticket with POST /v1/stream-tickets.', { reason: 'token_in_url' });
}

/**
 * The stream routes, the long-polls and the ticket route.
 * @example await app.register(streamRoutes, { ...ctx, jwtSecret, changes: new ChangeFeed(store) });
 */
export const streamRoutes: FastifyPluginAsyncTypebox<StreamContext> = async (app, ctx) => {
  const { engine, metrics, privacy, changes, jwtSecret } = ctx;
  const heartbeatMs = ctx.heartbeatMs ?? 15_000;
  const ticketTtl = ctx.ticketTtlSeconds ?? DEFAULT_TICKET_TTL_SECONDS;
  const retryMs = ctx.retryMs ?? 3_000;
  /** Ends every open stream and waiting long-poll; run when the server closes. */
  const closers = new Set<() => void>();

  // A client that loses a stream reconnects at once and may open a connection without sending a
  // request on it yet (HTTP clients and browsers also open them ahead of need). Node's
  // server.close() waits for such a connection until it times out, so one of them would hold a
  // shutdown for a minute; nothing is in flight on it, so it is closed with the streams.
  const unused = new Set<Socket>();
  const onConnection = (socket: Socket): void => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  };
  const onRawRequest = (req: IncomingMessage): void => {
    unused.delete(req.socket);
  };
  app.server.on('connection', onConnection);
  app.server.on('request', onRawRequest);

  app.addHook('preClose', async () => {
    for (const close of [...closers]) close();
    for (const socket of unused) socket.destroy();
  });
  app.addHook('onClose', async () => {
    app.server.off('connection', onConnection);
    app.server.off('request', onRawRequest);
  });

  // Stream routes may be opened with a ticket instead of a bearer header; the app's hook has
  // already checked a bearer header if there was one.
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.streamTicket !== true) return;
    const query = (request.query ?? {}) as Record<string, unknown>;
    if (URL_TOKEN_PARAMS.some((name) => query[name] !== undefined)) throw tokenInUrl();
    if (request.principal !== null) return;
    const ticket = query['ticket'];
    if (typeof ticket !== 'string' || ticket.length === 0) {
      throw new ApiError('UNAUTHORIZED', 'Send Authorization: Bearer <token>, or open the stream with ?ticket= from POST /v1/stream-tickets.', { reason: 'no_credentials' });
    }
    let t: StreamTicket;
    try {
      t = await verifyTicket(jwtSecret, ticket, engine.clock.now());
    } catch (e) {
      if (await verifyToken(jwtSecret, ticket).then(() => true, () => false)) throw tokenInUrl();
      throw e;
    }
    const params = (request.params ?? {}) as Record<string, unknown>;
    const wanted: TicketScope = typeof params['id'] === 'string' ? { kind: 'case', caseId: params['id'] } : { kind: 'inbox' };
    if (t.scope.kind !== wanted.kind || (t.scope.kind === 'case' && wanted.kind === 'case' && t.scope.caseId !== wanted.caseId)) {
      const opens = t.scope.kind === 'case' ? `the stream of case ${t.scope.caseId}` : 'the inbox stream';
      throw new ApiError('NOT_ALLOWED', `This ticket opens ${opens} only; ask POST /v1/stream-tickets for one for this stream.`, { actor: t.actor, allowed: [] });
    }
    const roles = t.caseScoped ? [] : (await engine.org()).rolesOf(t.actor);
    const principal: Principal = { actor: t.actor, roles, ...(t.caseScoped && t.scope.kind === 'case' ? { caseScope: t.scope.caseId } : {}) };
    request.principal = principal;
    request.log = request.log.child({ actor: t.actor, ticket: true });
  });

  /**
   * Sends `watch` as server-sent events until the client leaves, the server closes, or `format`
   * throws a {@link StreamEnd}. `idle` gives what a heartbeat carries besides the comment (the
   * inbox's latest cursor).
   */
  function stream<T>(request: FastifyRequest, reply: FastifyReply, kind: 'case' | 'inbox', watch: Watch<T>, format: (items: readonly T[]) => Promise<string>, idle: () => string = () => ''): FastifyReply {
    const out = new PassThrough();
    const stop = new AbortController();
    const close = (): void => {
      out.end();
    };
    const finish = (): void => {
      if (stop.signal.aborted) return;
      stop.abort();
      clearInterval(heartbeat);
      watch.close();
      closers.delete(close);
      metrics.streamsOpen.dec({ kind });
    };
    closers.add(close);
    metrics.streamsOpen.inc({ kind });
    out.on('close', finish);
    const write = (text: string): void => {
      if (out.writableEnded) return;
      out.write(text);
      if (out.writableLength > MAX_UNREAD_BYTES) {
        request.log.warn({ unread: out.writableLength }, 'stream client is not reading; closing the stream');
        out.end();
      }
    };
    // The first bytes send the headers, so the client knows at once that the stream is open.
    write(`retry: ${retryMs}\n: ${kind} stream\n\n`);
    const heartbeat = setInterval(() => write(`${idle()}: heartbeat\n\n`), heartbeatMs);
    heartbeat.unref();
    void (async () => {
      try {
        while (!stop.signal.aborted && !watch.closed) {
          const items = await watch.next(stop.signal);
          const text = items.length === 0 ? '' : await format(items);
          if (text !== '') write(text);
        }
      } catch (error) {
        if (error instanceof StreamEnd) {
          write(error.text);
          out.end();
          return;
        }
        request.log.error({ err: error }, 'stream failed');
        write(sse({ event: 'error', data: { code: 'UNAVAILABLE', detail: 'The stream failed; reconnect to resume.' } }));
        out.end();
      }
    })();
    return reply.code(200)
      .type('text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      // nginx would otherwise buffer the stream.
      .header('x-accel-buffering', 'no')
      // The connection ends with the stream, so a server closing down is not kept waiting on an
      // idle keep-alive socket once it has ended its streams.
      .header('connection', 'close')
      .send(out);
  }

  /**
   * Aborts when the client leaves or the server closes, and, once `wait` is called, when
   * `waitMs` runs out (the catch-up from `after` comes first, however short the wait).
   */
  function waitSignal(reply: FastifyReply, waitMs: number): { signal: AbortSignal; wait: () => void; done: () => void } {
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    const shutdown = (): void => {
      // Answered while the server closes: do not keep the connection for another request.
      reply.header('connection', 'close');
      abort();
    };
    let timer: NodeJS.Timeout | undefined;
    // The response's close, not the request's: a request emits 'close' as soon as its body is read.
    reply.raw.once('close', abort);
    closers.add(shutdown);
    metrics.streamsOpen.inc({ kind: 'long-poll' });
    return {
      signal: ac.signal,
      wait: () => {
        timer ??= setTimeout(abort, waitMs);
      },
      done: () => {
        clearTimeout(timer);
        reply.raw.off('close', abort);
        closers.delete(shutdown);
        metrics.streamsOpen.dec({ kind: 'long-poll' });
      },
    };
  }

  async function inboxBody(position: ChangePosition, change: InboxChange): Promise<Static<typeof InboxChangeSchema>> {
    // As in GET /v1/inbox: a list, so residents' names and phone numbers are masked for everyone.
    const shown = await privacy.forList(change.definitionId, change.data);
    return {
      cursor: encodePosition(position), caseId: change.caseId, seq: change.seq, type: change.type, at: change.at,
      workflow: change.workflow, definitionVersion: change.definitionVersion, state: change.state,
      ...(change.stateLabel === undefined ? {} : { stateLabel: change.stateLabel }),
      status: change.status, unit: change.unit, submitter: change.submitter, version: change.version,
      data: shown.data, due: { ...change.due }, canAct: change.canAct, actions: change.actions.map(actionBody),
    };
  }

  function goneBody(m: Extract<InboxMessage, { kind: 'gone' }>): Static<typeof InboxGoneSchema> {
    return { cursor: encodePosition(m.position), caseId: m.caseId, seq: m.seq, canAct: false, gone: true };
  }

  function inboxWatch(request: FastifyRequest, after: ChangePosition | null): Watch<InboxMessage> {
    const p = principalOf(request);
    if (p.caseScope !== undefined) {
      throw new ApiError('NOT_ALLOWED', 'A case token follows its one case, not an inbox.', { actor: p.actor, caseScope: p.caseScope, allowed: [] });
    }
    return watchInbox(engine, changes, p.actor, after, { relevant: (org, c) => canSee(org, p, c) });
  }

  /**
   * Judges again, before each batch of a case's events is sent, whether the caller may read the
   * case, with their roles as they are now: a case reassigned, returned, or no longer naming the
   * caller ends the stream with `event: gone` instead of the events that moved it away.
   */
  async function requireStillReadable(request: FastifyRequest, caseId: string): Promise<void> {
    try {
      await privacy.readableCase(request, caseId);
    } catch (e) {
      // Out of reach now, or archived away.
      if (!(e instanceof EngineError && e.code === 'CASE_NOT_FOUND')) throw e;
      request.log.info({ caseId }, 'case left the caller\'s reach; stream ended');
      throw new StreamEnd(sse({ event: 'gone', data: { caseId } }));
    }
  }

  /** Where a case stream starts without a position: before the latest event, so that is sent first. */
  function defaultAfter(view: CaseView): number {
    return Math.max(0, view.version - 1);
  }

  app.post('/v1/stream-tickets', {
    schema: {
      tags: ['cases'], summary: 'A short-lived ticket that opens one stream (for EventSource, which cannot send an Authorization header)',
      description: `Body \`{ "case": id }\` for that case's stream (404 CASE_NOT_FOUND for a case the caller may not read), \`{}\` for the caller's inbox stream. The ticket opens streams for ${DEFAULT_TICKET_TTL_SECONDS} s by default; an open stream stays open after it expires. It does nothing else.`,
      body: TicketBody, response: { 201: TicketAnswer, ...problemResponses },
    },
  }, async (request, reply) => {
    const p = principalOf(request);
    const caseId = request.body.case;
    let scope: TicketScope;
    let url: string;
    if (caseId === undefined) {
      if (p.caseScope !== undefined) throw new ApiError('NOT_ALLOWED', 'A case token follows its one case, not an inbox: ask for a ticket with { "case": id }.', { actor: p.actor, caseScope: p.caseScope, allowed: [] });
      scope = { kind: 'inbox' };
      url = '/v1/inbox/stream';
    } else {
      const view = await privacy.readableCase(request, caseId);
      scope = { kind: 'case', caseId: view.id };
      url = `/v1/cases/${encodeURIComponent(view.id)}/stream`;
    }
    const { ticket, expiresAt } = await signTicket(jwtSecret, { actor: p.actor, scope, caseScoped: p.caseScope !== undefined }, engine.clock.now(), ticketTtl);
    return reply.code(201).send({ ticket, expiresAt: new Date(expiresAt).toISOString(), url: `${url}?ticket=${encodeURIComponent(ticket)}` });
  });

  app.get('/v1/cases/:id/stream', {
    config: { streamTicket: true },
    // A HEAD would open a stream whose body is never read, and so never closed.
    exposeHeadRoute: false,
    schema: {
      tags: ['cases'], summary: 'Server-sent events: one `case` message per event of the case (resumable with Last-Event-ID)',
      description: 'Each message: `id:` the event seq, `event: case`, `data:` { caseId, seq, type, state, status, version, actor, at }. Without Last-Event-ID or `after` it starts with the latest event. When the case leaves the caller\'s reach (reassigned, returned, no longer naming them) the stream sends `event: gone` with `data:` { caseId } instead of the events that moved it, and ends. Authenticate with a bearer header or `?ticket=` (POST /v1/stream-tickets); a bearer token in the URL is refused (401). 404 CASE_NOT_FOUND for a case the caller may not read.',
      params: CaseParams, headers: LastEventIdHeaders,
      querystring: Type.Object({ ticket: Type.Optional(Ticket), after: Type.Optional(Type.Integer({ minimum: 0, description: 'Start after this seq.' })) }, { additionalProperties: false }),
      response: sseResponse,
    },
  }, async (request, reply) => {
    const view = await privacy.readableCase(request, request.params.id);
    const header = request.headers['last-event-id'];
    const after = header !== undefined && header !== '' ? seqOf(header, 'Last-Event-ID') : request.query.after ?? defaultAfter(view);
    const watch = watchCase(changes, view.id, after);
    return stream(request, reply, 'case', watch, async (items) => {
      await requireStillReadable(request, view.id);
      return items.map((e) => sse({ id: String(e.seq), event: 'case', data: caseMessage(e) })).join('');
    });
  });

  app.get('/v1/inbox/stream', {
    config: { streamTicket: true },
    // A HEAD would open a stream whose body is never read, and so never closed.
    exposeHeadRoute: false,
    schema: {
      tags: ['cases'], summary: 'Server-sent events: the caller\'s inbox as it changes (resumable with Last-Event-ID)',
      description: '`event: inbox` with `data:` an InboxChange (`canAct: false` means: drop the case); `event: seen` moves the cursor on; `event: reset` means reload GET /v1/inbox and follow on from its `id`. The `id:` of each message is an opaque cursor. Authenticate with a bearer header or `?ticket=`.',
      headers: LastEventIdHeaders,
      querystring: Type.Object({ ticket: Type.Optional(Ticket), after: Type.Optional(Cursor) }, { additionalProperties: false }),
      response: sseResponse,
    },
  }, async (request, reply) => {
    const header = request.headers['last-event-id'];
    const cursor = header !== undefined && header !== '' ? header : request.query.after;
    const watch = inboxWatch(request, cursor === undefined ? null : decodePosition(cursor));
    // A cursor moved past changes of no concern is sent with the next heartbeat (or message), not
    // after every batch the feed reads; the very first one goes at once, so the client has a
    // position to resume from.
    let unsent: string | undefined;
    let first = true;
    const seen = (): string => {
      const id = unsent;
      unsent = undefined;
      return id === undefined ? '' : sse({ id, event: 'seen', data: { cursor: id } });
    };
    return stream(request, reply, 'inbox', watch, async (items) => {
      const parts: string[] = [];
      for (const m of items) {
        const id = encodePosition(m.position);
        if (m.kind === 'seen') {
          unsent = id;
          continue;
        }
        unsent = undefined;
        if (m.kind === 'change') parts.push(sse({ id, event: 'inbox', data: await inboxBody(m.position, m.change) }));
        else if (m.kind === 'gone') parts.push(sse({ id, event: 'inbox', data: goneBody(m) }));
        else parts.push(sse({ id, event: 'reset', data: { cursor: id, detail: 'Too many changes to replay: reload GET /v1/inbox, then follow on from here.' } }));
      }
      if (first) {
        first = false;
        parts.push(seen());
      }
      return parts.join('');
    }, seen);
  });

  app.get('/v1/cases/:id/changes', {
    exposeHeadRoute: false,
    schema: {
      tags: ['cases'], summary: 'Long-poll: the case\'s events after `after`, at once if there are any, else when one comes or `waitMs` runs out',
      description: 'For clients without EventSource (WeChat mini-programs). Without `after`, answers with the latest event. Pass `next` back as `after`. 404 CASE_NOT_FOUND for a case the caller may not read, also when the events that came are the ones that took it out of their reach.',
      params: CaseParams,
      querystring: Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0 })), waitMs: Type.Optional(WaitMs) }, { additionalProperties: false }),
      response: { 200: Type.Object({ caseId: Type.String(), items: Type.Array(CaseChangeSchema), next: Type.Integer({ description: 'The seq to pass as `after` next time.' }) }), ...problemResponses },
    },
  }, async (request, reply) => {
    const view = await privacy.readableCase(request, request.params.id);
    const after = request.query.after ?? defaultAfter(view);
    const wait = waitSignal(reply, request.query.waitMs ?? MAX_WAIT_MS);
    const watch = watchCase(changes, view.id, after);
    try {
      await untilAborted(watch.ready, wait.signal);
      wait.wait();
      let items = watch.take();
      if (items.length === 0) items = await watch.next(wait.signal);
      // Judged again before answering: the events may be the ones that took the case out of reach.
      if (items.length > 0) await privacy.readableCase(request, view.id);
      const last = items[items.length - 1];
      return { caseId: view.id, items: items.map(caseMessage), next: last === undefined ? after : last.seq };
    } finally {
      watch.close();
      wait.done();
    }
  });

  app.get('/v1/inbox/changes', {
    exposeHeadRoute: false,
    schema: {
      tags: ['cases'], summary: 'Long-poll: the caller\'s inbox changes after `after`, at once if there are any, else when one comes or `waitMs` runs out',
      description: 'For clients without EventSource. Without `after`, follows from now. Pass `next` back as `after`; `reset: true` means reload GET /v1/inbox first. 422 VALIDATION_FAILED for a cursor this API did not hand out.',
      querystring: Type.Object({ after: Type.Optional(Cursor), waitMs: Type.Optional(WaitMs) }, { additionalProperties: false }),
      response: { 200: Type.Object({ items: Type.Array(Type.Union([InboxChangeSchema, InboxGoneSchema])), next: Type.String(), reset: Type.Boolean() }), ...problemResponses },
    },
  }, async (request, reply) => {
    const start = request.query.after === undefined ? null : decodePosition(request.query.after);
    const wait = waitSignal(reply, request.query.waitMs ?? MAX_WAIT_MS);
    const watch = inboxWatch(request, start);
    try {
      await untilAborted(watch.ready, wait.signal);
      wait.wait();
      let next = start;
      const items: (Static<typeof InboxChangeSchema> | Static<typeof InboxGoneSchema>)[] = [];
      let reset = false;
      let batch = watch.take();
      for (;;) {
        for (const m of batch) {
          next = m.position;
          if (m.kind === 'change') items.push(await inboxBody(m.position, m.change));
          if (m.kind === 'gone') items.push(goneBody(m));
          if (m.kind === 'reset') {
            reset = true;
            items.length = 0;
          }
        }
        if (items.length > 0 || reset || wait.signal.aborted) break;
        batch = await watch.next(wait.signal);
        if (batch.length === 0) break;
      }
      return { items, next: encodePosition(next ?? (await changes.head())), reset };
    } finally {
      watch.close();
      wait.done();
    }
  });
};
