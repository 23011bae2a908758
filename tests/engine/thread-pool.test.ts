/**
 * The pool of worker threads under replay (engine/thread-pool.ts): threads that stay up between
 * calls, answers in the tasks' order, and failures that say what failed instead of hanging.
 * No database: runs the same on both backends.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ThreadPool } from '../../engine/thread-pool.ts';

interface Task { readonly n: number; readonly fail?: boolean; readonly exit?: boolean }
interface Answer { readonly doubled: number; readonly thread: number }

const script = new URL('./pool-worker.ts', import.meta.url);
const pools: ThreadPool<Task, Answer>[] = [];
function pool(workerData: unknown = {}, threads = 2): ThreadPool<Task, Answer> {
  const p = new ThreadPool<Task, Answer>({ script, threads, workerData });
  pools.push(p);
  return p;
}

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('ThreadPool', () => {
  it('answers every task once, in the tasks\' order, on every thread, and again on the same threads', async () => {
    const p = pool();
    const tasks = Array.from({ length: 20 }, (_, n) => ({ n }));
    const heard: number[] = [];
    const first = await p.run(tasks, (index, r) => {
      expect(r.doubled).toBe(index * 2);
      heard.push(index);
    });
    expect(first.map((r) => r.doubled)).toEqual(tasks.map((t) => t.n * 2));
    expect(heard.sort((a, b) => a - b)).toEqual(tasks.map((t) => t.n));
    // Two tasks in flight per thread: the first four go two to each thread.
    const threads = new Set(first.map((r) => r.thread));
    expect(threads.size).toBe(2);
    const second = await p.run(tasks.slice(0, 6));
    expect(second.map((r) => r.doubled)).toEqual([0, 2, 4, 6, 8, 10]);
    for (const r of second) expect(threads.has(r.thread)).toBe(true);
    expect(await p.run([])).toEqual([]);
  });

  it('rejects with the message of a task that failed, and goes on serving afterwards', async () => {
    const p = pool();
    await expect(p.run([{ n: 1 }, { n: 2, fail: true }, { n: 3 }])).rejects.toThrow('task 2 failed');
    await expect(p.run([{ n: 2, fail: true }])).rejects.toMatchObject({ name: 'ThreadPoolError', code: 'POOL_TASK_FAILED' });
    expect((await p.run([{ n: 4 }])).map((r) => r.doubled)).toEqual([8]);
  });

  it('rejects, instead of waiting forever, when a thread stops in the middle of a task or cannot start', async () => {
    const p = pool();
    const stopped = p.run([{ n: 1, exit: true }, { n: 2 }, { n: 3 }]);
    await expect(stopped).rejects.toThrow(/stopped \(exit code 3\)/);
    await expect(stopped).rejects.toMatchObject({ name: 'ThreadPoolError', code: 'POOL_THREAD_STOPPED' });
    const broken = pool({ startFail: true }, 1);
    const failed = broken.run([{ n: 1 }]);
    await expect(failed).rejects.toThrow('this worker cannot start: no such database');
    await expect(failed).rejects.toMatchObject({ code: 'POOL_THREAD_STOPPED', cause: expect.objectContaining({ message: expect.stringContaining('no such database') }) });
  });

  it('lets every thread close what it holds on close, once however often it is called, and refuses work after', async () => {
    const closed = new SharedArrayBuffer(4);
    const p = pool({ closed }, 3);
    await p.run([{ n: 1 }]);
    await Promise.all([p.close(), p.close()]);
    expect(Atomics.load(new Int32Array(closed), 0)).toBe(3);
    await expect(p.run([{ n: 1 }])).rejects.toThrow('The thread pool is closed; start a new one.');
    await expect(p.run([{ n: 1 }])).rejects.toMatchObject({ name: 'ThreadPoolError', code: 'POOL_CLOSED' });
  });
});
