/**
 * `npm run bench:dsl [-- --json]`: how long the language tools take on each seed workflow and on a
 * generated 1,000-state workflow: parse + check + compile, and building the XState machine.
 * Touches no database. With --json the last line is one JSON object of the figures.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { fileLoader } from '../cli/main.ts';
import { checkSource } from '../dsl/check.ts';
import { compile } from '../dsl/compile.ts';
import { instantiate } from '../dsl/runtime.ts';

const json = process.argv.includes('--json');
/** The project root: the nearest folder above this file that has `workflows/` (this runs from dist/ too). */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'workflows')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}
const root = projectRoot();

/** A chain of `n` states, each with an event, a conditional target, a timer and a reminder. */
export function generateWorkflow(n: number): string {
  const lines = [
    'workflow 生成流程 "generated"',
    'roles 办理人, 督办人',
    'case { 计数: number = 0, 备注: text?, 单位: org? }',
    'start S0 by anyone',
  ];
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? `S${i + 1}` : '完成';
    lines.push(`state S${i} "第${i}步"`);
    lines.push(`  on 办理${i} by 办理人 with { 说明: text? } set case.计数 = case.计数 + 1 -> ${next} when case.计数 < ${n * 2} -> 完成 otherwise`);
    lines.push(`  on 退回${i} by 督办人 -> ${i > 0 ? `S${i - 1}` : 'S0'}`);
    lines.push(`  after ${1 + (i % 5)} workdays remind 督办人 at 80% "即将超时" escalate -> ${next}`);
  }
  lines.push('final 完成');
  return lines.join('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function measure(source: string, file: string, runs: number): { compileMs: number; machineMs: number; states: number } {
  const compileTimes: number[] = [];
  const machineTimes: number[] = [];
  let states = 0;
  for (let i = -2; i < runs; i++) {
    const t0 = performance.now();
    const r = checkSource(source, file, { load: fileLoader });
    if (r.model === undefined) throw new Error(`${file} does not compile: ${r.diagnostics.map((d) => `${d.span.start.line}:${d.span.start.col} ${d.code} ${d.message}`).join('; ')}`);
    const def = compile(r.model);
    const t1 = performance.now();
    instantiate(def);
    const t2 = performance.now();
    if (i < 0) continue; // warm-up runs, so the figures are of compiled code, not of the JIT starting
    compileTimes.push(t1 - t0);
    machineTimes.push(t2 - t1);
    states = Object.keys(def.states).length;
  }
  return { compileMs: median(compileTimes), machineMs: median(machineTimes), states };
}

const rows: { name: string; states: number; compileMs: number; machineMs: number }[] = [];
const dir = path.join(root, 'workflows');
for (const f of readdirSync(dir).filter((x) => x.endsWith('.wf')).sort()) {
  const file = path.join(dir, f);
  const m = measure(readFileSync(file, 'utf8'), file, 15);
  rows.push({ name: f, ...m });
}
const generated = generateWorkflow(1000);
const g = measure(generated, path.join(dir, 'generated-1000.wf'), 5);
rows.push({ name: 'generated 1,000 states', ...g });

for (const r of rows) {
  console.log(`${r.name.padEnd(24)} ${String(r.states).padStart(5)} states   compile ${r.compileMs.toFixed(1).padStart(8)} ms   machine ${r.machineMs.toFixed(1).padStart(7)} ms`);
}
console.log(`1,000-state workflow: ${(g.compileMs + g.machineMs).toFixed(0)} ms from text to machine (target < 1,000 ms)`);
if (json) {
  const seeds = Object.fromEntries(rows.slice(0, -1).map((r) => [r.name, r.compileMs]));
  console.log(JSON.stringify({ seedsCompileMs: seeds, generated1000CompileMs: g.compileMs, generated1000MachineMs: g.machineMs, generated1000TotalMs: g.compileMs + g.machineMs }));
}
