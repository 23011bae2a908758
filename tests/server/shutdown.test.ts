/**
 * Shutting down on a real port: a request already in flight when the server starts closing is
 * answered in full, with `Connection: close`, so its kept-alive connection does not hold the
 * close for the keep-alive timeout (72 s in Fastify) after the answer.
 */
import http from 'node:http';
import type { OrgView } from '../../engine/org.ts';
import { describe, expect, it } from 'vitest';
import { openHarness } from './support.ts';

interface Answer {
  readonly status: number;
  readonly connection: string | undefined;
  readonly socketClosed: Promise<void>;
}

function get(agent: http.Agent, url: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      const socketClosed = new Promise<void>((done) => res.socket.once('close', () => done()));
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, socketClosed }));
    });
    req.once('error', reject);
  });
}

describe('shutdown', () => {
  it('answers a request in flight with Connection: close, and the close does not wait for its kept-alive connection', async () => {
    const h = await openHarness();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = await h.app.listen({ port: 0, host: '127.0.0.1' });
      const auth = await h.auth('督查员周');
      // An ordinary answer keeps the connection.
      expect(await get(agent, `${base}/v1/cases`, auth)).toMatchObject({ status: 200, connection: 'keep-alive' });

      // The next request, on the same connection, waits inside its authentication until released.
      let reached!: () => void;
      const inFlight = new Promise<void>((r) => { reached = r; });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      const org = h.engine.org.bind(h.engine);
      h.engine.org = async (): Promise<OrgView> => {
        reached();
        await gate;
        return org();
      };
      const answer = get(agent, `${base}/v1/cases`, auth);
      await inFlight;

      const closed = h.app.close();
      // Release it once the close is under way: the server has stopped listening for new connections.
      while (h.app.server.listening) await new Promise((r) => setImmediate(r));
      release();
      const a = await answer;
      expect(a).toMatchObject({ status: 200, connection: 'close' });
      await a.socketClosed;
      // Without the header this waits out the keep-alive timeout, far past the test's own.
      await closed;
    } finally {
      agent.destroy();
      await h.store.close();
    }
  });
});
