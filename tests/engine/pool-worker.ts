// A worker for the thread pool's tests: answers `{ n }` with n * 2 and its thread id; `fail`
// rejects the task, `exit` ends the thread mid-task; `startFail` in workerData throws at start-up.
import { threadId, workerData } from 'node:worker_threads';
import { serveTasks } from '../../engine/thread-pool.ts';

interface Task {
  readonly n: number;
  readonly fail?: boolean;
  readonly exit?: boolean;
}

const settings = workerData as { startFail?: boolean; closed?: SharedArrayBuffer };
if (settings.startFail === true) throw new Error('this worker cannot start: no such database');

serveTasks<Task, { doubled: number; thread: number }>(async (task) => {
  if (task.exit === true) process.exit(3);
  if (task.fail === true) throw new Error(`task ${task.n} failed`);
  return { doubled: task.n * 2, thread: threadId };
}, async () => {
  // Counts the threads that let go of their resources, for the test to see.
  if (settings.closed !== undefined) Atomics.add(new Int32Array(settings.closed), 0, 1);
});
