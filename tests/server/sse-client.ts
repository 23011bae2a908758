// A small server-sent-events reader over fetch, for the stream tests: it parses the stream as the
// WHATWG EventSource does (fields id / event / data, comments, a blank line dispatches, the last
// event id kept across messages) and lets a test await the next message that matches.

/** One dispatched message, or a comment line (`event: 'comment'`). */
export interface SseMessage {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

export interface OpenedStream {
  readonly status: number;
  readonly headers: Headers;
  /** The problem body when the stream was refused. */
  readonly problem: Record<string, unknown> | undefined;
  readonly reader: SseReader | undefined;
}

/**
 * Opens `url` as an event stream; a non-2xx answer comes back with its problem body.
 * @example const { reader } = await openStream(`${base}/v1/inbox/stream`, auth);
 */
export async function openStream(url: string, headers: Record<string, string> = {}): Promise<OpenedStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  if (!res.ok || res.body === null) {
    const text = await res.text();
    return { status: res.status, headers: res.headers, problem: text === '' ? undefined : JSON.parse(text) as Record<string, unknown>, reader: undefined };
  }
  return { status: res.status, headers: res.headers, problem: undefined, reader: new SseReader(res.body, abort) };
}

export class SseReader {
  /** As EventSource's `lastEventId`: the last `id` field of a dispatched message. */
  lastEventId = '';
  /** Whether the server ended the stream. */
  ended = false;
  private readonly queue: SseMessage[] = [];
  private waiting: (() => void) | undefined;
  private buffer = '';
  private id: string | undefined;
  private event = '';
  private data: string[] = [];

  constructor(body: ReadableStream<Uint8Array>, private readonly abort: AbortController) {
    void this.pump(body);
  }

  /**
   * The next message for which `match` holds, skipping (and dropping) the others; rejects if
   * the stream ends first.
   */
  async next(match: (m: SseMessage) => boolean = (m) => m.event !== 'comment'): Promise<SseMessage> {
    for (;;) {
      const i = this.queue.findIndex(match);
      if (i >= 0) {
        const [m] = this.queue.splice(0, i + 1).slice(-1);
        if (m !== undefined) return m;
      }
      this.queue.length = 0;
      if (this.ended) throw new Error('the stream ended');
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
    }
  }

  /** Waits until the server ends the stream. */
  async end(): Promise<void> {
    while (!this.ended) {
      this.queue.length = 0;
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
    }
  }

  /** Messages received and not yet taken. */
  pending(): readonly SseMessage[] {
    return [...this.queue];
  }

  close(): void {
    this.abort.abort();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.buffer += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
          const line = this.buffer.slice(0, nl);
          this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
          this.line(line);
        }
        this.wake();
      }
    } catch {
      // aborted by close(), or the connection dropped: either way the stream has ended
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.id !== undefined) this.lastEventId = this.id;
      if (this.data.length > 0) this.queue.push({ id: this.id, event: this.event === '' ? 'message' : this.event, data: this.data.join('\n') });
      this.id = undefined;
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) {
      this.queue.push({ id: undefined, event: 'comment', data: line.slice(1).trim() });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') this.id = value;
    else if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}
