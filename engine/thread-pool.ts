/**
 * A pool of worker threads that stay up between jobs, so a thread's start-up (loading modules,
 * opening connections, the JIT's warm-up) is paid once and not per call. Tasks go to whichever
 * thread has room, `inFlight` at a time per thread, so a thread can read its next task's input
 * while it works on the current one. Knows nothing of what the tasks are; the worker side is
 * {@link serveTasks}.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, parentPort, type ResourceLimits } from 'node:worker_threads';

/** Why a pool refused or failed work; codes are stable and never reused. */
export type ThreadPoolErrorCode =
  /** The pool was closed: start a new one. */
  | 'POOL_CLOSED'
  /** A thread failed to start or stopped; its tasks failed, and it is not replaced. */
  | 'POOL_THREAD_STOPPED'
  /** A task failed in its thread; the message is the thread's. */
  | 'POOL_TASK_FAILED'
  /** The worker side was started outside a worker thread. */
  | 'POOL_NOT_IN_WORKER'
  /** The pool was given work for another database or schema than the one its threads read. */
  | 'POOL_STORE_MISMATCH';

/**
 * The error a {@link ThreadPool} (and the pools built on it) rejects with; `cause` is the thread's
 * own error where there is one.
 * @example if (e instanceof ThreadPoolError && e.code === 'POOL_CLOSED') pool = new ReplayPool(options);
 */
export class ThreadPoolError extends Error {
  override readonly name = 'ThreadPoolError';

  constructor(readonly code: ThreadPoolErrorCode, message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
  }
}

/** What the pool posts to a thread. */
export type ToWorker<T> =
  | { readonly kind: 'task'; readonly id: number; readonly task: T }
  | { readonly kind: 'close' };

/** What a thread posts back: one answer per task, and `closed` once it has let go of its resources. */
export type FromWorker<R> =
  | { readonly kind: 'done'; readonly id: number; readonly result: R }
  | { readonly kind: 'failed'; readonly id: number; readonly message: string }
  | { readonly kind: 'closed' };

export interface ThreadPoolOptions {
  /** The worker's module. From TypeScript sources (tests, the CLI through tsx) give the `.ts` file. */
  readonly script: URL;
  readonly threads: number;
  /** Handed to every thread as `workerData`. */
  readonly workerData: unknown;
  /** Tasks a thread holds at once (default 2: one worked on, the next one's input being read). */
  readonly inFlight?: number;
  readonly resourceLimits?: ResourceLimits;
}

interface Slot {
  readonly worker: Worker;
  busy: number;
  /** Set once the thread has stopped: it takes no more tasks. */
  gone?: ThreadPoolError;
}

interface Pending<R> {
  readonly slot: Slot;
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
}

/** tsx's ESM API (its `tsImport` loads TypeScript in a thread that has no loader hooks). */
function tsxApi(): string {
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  return pathToFileURL(cjs.replace(/\.cjs$/, '.mjs')).href;
}

/**
 * Worker threads running `script`, taking tasks of type `T` and answering `R`.
 * @example
 * const pool = new ThreadPool<string[], number>({ script: new URL('./w.js', import.meta.url), threads: 2, workerData: {} });
 * const counts = await pool.run([['a'], ['b', 'c']], (i, r) => console.log(i, r));
 * await pool.close();
 */
export class ThreadPool<T, R> {
  readonly threads: number;
  private readonly slots: Slot[];
  private readonly pending = new Map<number, Pending<R>>();
  private readonly inFlight: number;
  private nextId = 0;
  private closing: Promise<void> | undefined;

  constructor(options: ThreadPoolOptions) {
    this.threads = Math.max(1, Math.floor(options.threads));
    this.inFlight = Math.max(1, options.inFlight ?? 2);
    const fromSource = options.script.pathname.endsWith('.ts');
    this.slots = Array.from({ length: this.threads }, () => {
      const settings = { workerData: options.workerData, ...(options.resourceLimits === undefined ? {} : { resourceLimits: options.resourceLimits }) };
      const worker = fromSource
        // A worker does not inherit the parent's module hooks: register the TypeScript loader first.
        ? new Worker(`import(${JSON.stringify(tsxApi())}).then((tsx) => tsx.tsImport(${JSON.stringify(options.script.href)}, ${JSON.stringify(options.script.href)}));`, { eval: true, ...settings })
        : new Worker(options.script, settings);
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (m: FromWorker<R>) => this.answer(m));
      worker.once('error', (e: unknown) => this.lose(slot, new ThreadPoolError('POOL_THREAD_STOPPED',
        `A worker thread failed: ${e instanceof Error ? e.message : String(e)}. Its tasks failed; close this pool and start a new one.`, { cause: e })));
      worker.once('exit', (code) => this.lose(slot, new ThreadPoolError('POOL_THREAD_STOPPED',
        `A worker thread stopped (exit code ${code}). Its tasks failed; close this pool and start a new one.`)));
      return slot;
    });
  }

  /**
   * Runs every task, each on whichever thread has room, and resolves with the answers in the
   * tasks' order; `onResult` hears each answer as it comes. Rejects with the first task that
   * failed (the others still run to the end, their answers dropped).
   */
  async run(tasks: readonly T[], onResult?: (index: number, result: R) => void): Promise<R[]> {
    if (this.closing !== undefined) throw new ThreadPoolError('POOL_CLOSED', 'The thread pool is closed; start a new one.');
    const results = new Array<R>(tasks.length);
    let next = 0;
    let failure: Error | undefined;
    const feed = async (slot: Slot): Promise<void> => {
      while (next < tasks.length && failure === undefined) {
        const index = next++;
        try {
          const r = await this.send(slot, tasks[index] as T);
          results[index] = r;
          onResult?.(index, r);
        } catch (e) {
          failure ??= e instanceof Error ? e : new ThreadPoolError('POOL_TASK_FAILED', String(e));
        }
      }
    };
    // `inFlight` feeders per thread: each keeps one task outstanding.
    await Promise.all(this.slots.flatMap((slot) => Array.from({ length: this.inFlight }, () => feed(slot))));
    if (failure !== undefined) throw failure;
    return results;
  }

  /** Asks every thread to let go of its resources and stop; resolves when all have. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.slots.map((slot) => new Promise<void>((resolve) => {
      if (slot.gone !== undefined) return resolve();
      const timer = setTimeout(() => void slot.worker.terminate(), 10_000);
      slot.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      slot.worker.postMessage({ kind: 'close' } satisfies ToWorker<T>);
    }))).then(() => undefined);
    return this.closing;
  }

  private send(slot: Slot, task: T): Promise<R> {
    if (slot.gone !== undefined) return Promise.reject(slot.gone);
    const id = this.nextId++;
    slot.busy++;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { slot, resolve, reject });
      slot.worker.postMessage({ kind: 'task', id, task } satisfies ToWorker<T>);
    });
  }

  private answer(m: FromWorker<R>): void {
    if (m.kind === 'closed') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    p.slot.busy--;
    if (m.kind === 'done') p.resolve(m.result);
    else p.reject(new ThreadPoolError('POOL_TASK_FAILED', m.message));
  }

  /** A thread that failed or stopped: its tasks fail, and it gets no more. */
  private lose(slot: Slot, e: ThreadPoolError): void {
    slot.gone ??= e;
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(slot.gone);
    }
  }
}

/**
 * The worker side of {@link ThreadPool}: answers each task with `start(task)`, called as soon as
 * the task arrives (so it can begin reading while an earlier task is worked on; it orders its own
 * work), and on `close` calls `close` and lets the thread end.
 * @example serveTasks(async (ids: string[]) => ids.length, async () => store.close());
 */
export function serveTasks<T, R>(start: (task: T) => Promise<R>, close: () => Promise<void>): void {
  const port = parentPort;
  if (port === null) throw new ThreadPoolError('POOL_NOT_IN_WORKER', 'serveTasks runs in a worker thread: start this module with a ThreadPool, not on the main thread.');
  port.on('message', (m: ToWorker<T>) => {
    if (m.kind === 'close') {
      void close().finally(() => {
        port.postMessage({ kind: 'closed' } satisfies FromWorker<R>);
        port.close();
      });
      return;
    }
    start(m.task).then(
      (result) => port.postMessage({ kind: 'done', id: m.id, result } satisfies FromWorker<R>),
      (e: unknown) => port.postMessage({ kind: 'failed', id: m.id, message: e instanceof Error ? e.message : String(e) } satisfies FromWorker<R>),
    );
  });
}
