/** The `wf` command: exit codes, output formats, and the real bin on the seed workflows. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { capture, GOOD } from './support.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');


const BAD = `workflow 坏流程
roles 书记
start 待办 by anyone
state 待办
  on 办理 by 秘书 -> 办完
final 办结
`;

function workspace(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'wf-cli-'));
  writeFileSync(path.join(dir, 'good.wf'), GOOD);
  writeFileSync(path.join(dir, 'bad.wf'), BAD);
  writeFileSync(path.join(dir, 'org.yaml'), 'units:\n  - { id: 社区, level: community }\nactors:\n  - { id: 书记张, roles: [{ role: 书记, unit: 社区 }] }\n');
  writeFileSync(path.join(dir, 'good.test.yaml'), [
    'workflow: good.wf',
    'fixtures: org.yaml',
    'scenarios:',
    '  - name: 办结',
    '    start: { as: 王, unit: 社区, at: 2026-03-02T09:00:00+08:00, data: {} }',
    '    steps:',
    '      - send: 办理',
    '        as: 书记张',
    '      - expect: { state: 办结 }',
    '  - name: wrong expectation',
    '    start: { as: 王, unit: 社区, at: 2026-03-02T09:00:00+08:00, data: {} }',
    '    steps:',
    '      - send: 办理',
    '        as: 王',
    '        reject: not_allowed',
    '      - expect: { state: 办结 }',
  ].join('\n'));
  return dir;
}

describe('wf check', () => {
  it('exits 0 on a good file and 1 on a bad one, with file:line:col, a caret and a hint', async () => {
    const dir = workspace();
    const ok = capture(dir);
    expect(await main(['check', 'good.wf'], ok)).toBe(0);
    expect(ok.stdout.at(-1)).toBe('1 file(s) checked: 0 error(s), 0 warning(s).');
    const bad = capture(dir);
    expect(await main(['check', 'good.wf', 'bad.wf'], bad)).toBe(1);
    const text = bad.stdout.join('\n');
    expect(text).toContain('bad.wf:5:12: error WF0203: Unknown role "秘书".');
    expect(text).toContain('bad.wf:5:18: error WF0201: Unknown state "办完".');
    expect(text).toMatch(/\n {2}5 \| {3}on 办理 by 秘书 -> 办完\n {4}\| {14}\^{4}\n/);
    expect(text).toContain('hint:');
    // One mistake is reported once: the unknown target does not also make 待办 a trap or 办结 unreachable.
    expect(text).not.toContain('WF0402');
    expect(text).not.toContain('WF0401');
  });

  it('--json prints the diagnostics in the one diagnostic shape', async () => {
    const io = capture(workspace());
    expect(await main(['check', 'bad.wf', '--json'], io)).toBe(1);
    const ds = JSON.parse(io.stdout.join('\n')) as { code: string; severity: string; file: string; span: { start: { line: number; col: number } } }[];
    expect(ds.map((d) => d.code)).toEqual(expect.arrayContaining(['WF0203', 'WF0201']));
    expect(ds.find((d) => d.code === 'WF0203')).toMatchObject({ severity: 'error', file: 'bad.wf', span: { start: { line: 5, col: 12 } } });
  });

  it('checks the .wf files of a folder and passes over other files', async () => {
    const io = capture(workspace());
    expect(await main(['check', 'good.wf', 'org.yaml'], io)).toBe(0);
    expect(io.stderr.join('\n')).toContain('skipped org.yaml');
  });

  it('a missing file is an error, not a crash', async () => {
    const io = capture(workspace());
    expect(await main(['check', 'nope.wf'], io)).toBe(1);
    expect(io.stderr.join('\n')).toContain('cannot read nope.wf');
  });
});

describe('wf compile and graph', () => {
  it('compile prints the definition with the XState config', async () => {
    const io = capture(workspace());
    expect(await main(['compile', 'good.wf'], io)).toBe(0);
    const def = JSON.parse(io.stdout.join('\n')) as { machine: { id: string; initial: string; states: Record<string, unknown> } };
    expect(def.machine).toMatchObject({ id: '小流程', initial: '待办' });
    expect(Object.keys(def.machine.states)).toEqual(['待办', '办结']);
  });

  it('compile of a bad file prints diagnostics and exits 1', async () => {
    const io = capture(workspace());
    expect(await main(['compile', 'bad.wf'], io)).toBe(1);
    expect(io.stderr.join('\n')).toContain('WF0203');
  });

  it('graph prints Mermaid by default and SVG on request', async () => {
    const io = capture(workspace());
    expect(await main(['graph', 'good.wf'], io)).toBe(0);
    expect(io.stdout.join('\n')).toContain('stateDiagram-v2');
    const svg = capture(workspace());
    expect(await main(['graph', 'good.wf', '--format', 'svg'], svg)).toBe(0);
    expect(svg.stdout.join('\n')).toContain('<svg');
    expect(svg.stdout.join('\n')).toContain('待办');
  });
});

describe('wf test', () => {
  it('runs scenarios and reports each, closing with passed and failed counts', async () => {
    const io = capture(workspace());
    expect(await main(['test', 'good.test.yaml'], io)).toBe(1);
    const text = io.stdout.join('\n');
    expect(text).toContain('✓ 办结');
    expect(text).toContain('✗ wrong expectation');
    expect(text).toContain('WF0701 step 2: expected state 办结, but the case is in 待办.');
    expect(io.stdout.at(-1)).toBe('1 passed, 1 failed');
  });
});

describe('usage', () => {
  it.each([[['frobnicate']], [['check']], [['graph', 'good.wf', '--format', 'png']], [['check', '--bogus', 'x.wf']]])('%j is a usage error (exit 2)', async (argv) => {
    const io = capture(workspace());
    expect(await main(argv, io)).toBe(2);
    expect(io.stderr.join('\n')).toContain('Usage:');
  });
});

describe('the bin on the seed workflows', () => {
  it('npx wf check workflows/* exits 0', () => {
    const r = spawnSync('sh', ['-c', 'node bin/wf.js check workflows/*'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('0 error(s)');
    expect(r.status).toBe(0);
  });

  it('npx wf test passes on the seed scenarios', () => {
    const out = execFileSync('node', ['bin/wf.js', 'test'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(/\n\d+ passed, 0 failed\n?$/);
  });
});
