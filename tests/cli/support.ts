/** What the `wf` command's tests share: an `Io` that keeps what was printed, and a small workflow. */
import type { Io } from '../../cli/main.ts';

/** An `Io` for `main` whose output lines are kept in `stdout` and `stderr`. */
export function capture(cwd: string = process.cwd()): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { out: (s) => stdout.push(s), err: (s) => stderr.push(s), cwd, color: false, stdout, stderr };
}

/** A workflow that checks clean: one step by 书记, with a working-day escalation. */
export const GOOD = `workflow 小流程 "a small one"
roles 书记
case { 说明: text? }
start 待办 by anyone
state 待办
  on 办理 by 书记 -> 办结
  after 2 workdays escalate -> 待办
final 办结
`;
