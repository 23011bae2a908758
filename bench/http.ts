/**
 * `npm run bench:http [-- --json]`: events per second through `POST /v1/cases/{id}/events` on a
 * real Postgres, driven by autocannon over keep-alive connections, against the raw `pg` rate (see
 * bench/common.ts) measured in the same run on the same database with the same pool size and
 * concurrency (one connection per raw worker). The two are measured alternately, several rounds,
 * and the median ratio is reported, because this machine's speed wanders by ±10%.
 *
 * The load generator runs in a child process of its own, so its CPU is measured apart from the
 * server's; on this 2-core machine it competes with the server and Postgres, so both shares are
 * printed. Every request goes to a case no other request in flight is using, as a router would
 * arrange, so the figure is the service's rate and not lock contention on one case. Any answer
 * other than 2xx fails the run.
 *
 * Needs DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test). Works in its own schema,
 * dropped at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { buildApp, SERVICE_ENGINE_OPTIONS } from '../server/app.ts';
import { signToken } from '../server/auth.ts';
import { ACTOR, cpuMeter, log, median, openBench, rawTransaction, seedBench, settings, timed } from './common.ts';

const LOAD_GENERATOR = '--load-generator';
const { json, pool: POOL, concurrency: CONCURRENCY, rounds: ROUNDS, roundMs: ROUND_MS, warmupMs: WARMUP_MS, cases: CASES } = settings;

/** What the parent asks the load generator to do: one timed autocannon run. */
interface RunRequest {
  readonly url: string;
  readonly token: string;
  readonly caseIds: readonly string[];
  readonly connections: number;
  readonly seconds: number;
}

/** One run's figures, as the load generator reports them. */
interface RunResult {
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Readonly<Record<string, number>>;
  /** The first non-2xx answer's status and body, to say why the run failed. */
  readonly firstRefusal: string | null;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The load generator's CPU time over the run's wall time (1 = one core). */
  readonly cpuShare: number;
}


/** The child's side: runs autocannon when asked and sends back the figures. */
function loadGenerator(): void {
  process.on('message', (message: RunRequest) => {
    void runLoad(message).then((r) => process.send?.(r), (e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  });
  process.on('disconnect', () => process.exit(0));
}

async function runLoad(req: RunRequest): Promise<RunResult> {
  // Cases with a request in flight; a request's context lives from setupRequest to its onResponse.
  const busy = new Set<number>();
  let next = 0;
  let firstRefusal: string | null = null;
  const body = JSON.stringify({ type: '推进', payload: { 说明: 'x'.repeat(60) } });
  const cpu = cpuMeter();
  const result = await autocannon({
    url: req.url,
    connections: req.connections,
    duration: req.seconds,
    pipelining: 1,
    headers: { authorization: `Bearer ${req.token}`, 'content-type': 'application/json' },
    requests: [{
      method: 'POST',
      body,
      setupRequest: (request, context) => {
        while (busy.has(next % req.caseIds.length)) next++;
        const i = next++ % req.caseIds.length;
        busy.add(i);
        (context as { case?: number }).case = i;
        return { ...request, path: `/v1/cases/${encodeURIComponent(req.caseIds[i]!)}/events` };
      },
      onResponse: (status, responseBody, context) => {
        const i = (context as { case?: number }).case;
        if (i !== undefined) busy.delete(i);
        if ((status < 200 || status > 299) && firstRefusal === null) firstRefusal = `${status} ${responseBody.slice(0, 500)}`;
      },
    }],
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = s.count ?? 0;
  return {
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    firstRefusal,
    seconds: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    cpuShare: cpu(),
  };
}

/** The parent's handle on the load generator: one run at a time. */
function askLoad(child: ChildProcess, req: RunRequest): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`the load generator exited (code ${code})`));
    child.once('exit', onExit);
    child.once('message', (m: RunResult) => {
      child.off('exit', onExit);
      resolve(m);
    });
    child.send(req);
  });
}

/** Starts a measurement; the function it returns gives the busy share of the whole machine (0–1) since then, from the kernel's counters. */
function machineBusy(): () => number {
  const sum = (): { busy: number; total: number } => {
    let busy = 0;
    let total = 0;
    for (const c of os.cpus()) {
      const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
      total += t;
      busy += t - c.times.idle;
    }
    return { busy, total };
  };
  const a = sum();
  return () => {
    const b = sum();
    return b.total === a.total ? Number.NaN : (b.busy - a.busy) / (b.total - a.total);
  };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

async function main(): Promise<void> {
  const db = await openBench(`${CONCURRENCY} in flight (HTTP connections)`);
  const { store, rawPool, synchronousCommit: sc } = db;
  // Without --cpu-prof: profiling the bench profiles the server, not the load generator.
  const child = fork(fileURLToPath(import.meta.url), [LOAD_GENERATOR], { execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')) });
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  try {
    const { engine, caseIds } = await seedBench(store, CASES, SERVICE_ENGINE_OPTIONS);

    const jwtSecret = randomBytes(32).toString('hex');
    app = await buildApp({ engine, jwtSecret, rateLimit: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const token = await signToken(jwtSecret, ACTOR);

    const raw = await rawTransaction(rawPool, { cases: CASES, concurrency: CONCURRENCY });

    const viaHttp = async (ms: number): Promise<{ rate: number; run: RunResult; serverCpu: number; machine: number }> => {
      const cpu = cpuMeter();
      const busy = machineBusy();
      const run = await askLoad(child, { url, token, caseIds, connections: CONCURRENCY, seconds: Math.max(1, Math.round(ms / 1000)) });
      const serverCpu = cpu();
      const machine = busy();
      if (run.non2xx > 0 || run.errors > 0 || run.timeouts > 0) {
        throw new Error(`HTTP run got ${run.non2xx} non-2xx answers, ${run.errors} connection errors and ${run.timeouts} timeouts (status codes ${JSON.stringify(run.statusCodes)}); first refusal: ${run.firstRefusal ?? 'none'}`);
      }
      if (run.ok === 0) throw new Error('HTTP run completed no request');
      return { rate: run.ok / run.seconds, run, serverCpu, machine };
    };

    // Warm both paths (JIT, prepared statements, caches, keep-alive), then alternate.
    await timed(WARMUP_MS, CONCURRENCY, raw);
    await viaHttp(WARMUP_MS);
    const rawRates: number[] = [];
    const httpRates: number[] = [];
    const ratios: number[] = [];
    const p50s: number[] = [];
    const p99s: number[] = [];
    const loadCpu: number[] = [];
    const serverCpu: number[] = [];
    const machineCpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await timed(ROUND_MS, CONCURRENCY, raw);
      const b = await viaHttp(ROUND_MS);
      rawRates.push(a);
      httpRates.push(b.rate);
      ratios.push(b.rate / a);
      p50s.push(b.run.p50Ms);
      p99s.push(b.run.p99Ms);
      loadCpu.push(b.run.cpuShare);
      serverCpu.push(b.serverCpu);
      machineCpu.push(b.machine);
      log(`round ${r + 1}: raw pg ${a.toFixed(0)}/s, HTTP ${b.rate.toFixed(0)} events/s (p50 ${b.run.p50Ms} ms, p99 ${b.run.p99Ms} ms), ratio ${(b.rate / a).toFixed(2)}; CPU: server ${pct(b.serverCpu)}, load generator ${pct(b.run.cpuShare)} of a core, machine ${pct(b.machine)} busy`);
    }
    const eventsPerSec = median(httpRates);
    const rawPgPerSec = median(rawRates);
    const ratio = median(ratios);
    const p50Ms = median(p50s);
    const p99Ms = median(p99s);
    const loadGenCpuShare = median(loadCpu);
    const serverCpuShare = median(serverCpu);
    const machineCpuShare = median(machineCpu);
    // CPU time the server spends per event: steadier than the rate when others share the machine.
    const serverCpuUsPerEvent = median(serverCpu.map((c, i) => (c * 1e6) / httpRates[i]!));
    log(`POST /v1/cases/{id}/events: ${eventsPerSec.toFixed(0)} events/s, p50 ${p50Ms} ms, p99 ${p99Ms} ms; raw pg transaction: ${rawPgPerSec.toFixed(0)}/s; ratio ${ratio.toFixed(2)} (target ≥ 0.7)`);
    log(`CPU during the HTTP rounds (share of one core; the machine has ${os.cpus().length}): server process ${pct(serverCpuShare)} (${serverCpuUsPerEvent.toFixed(0)} µs per event), load generator ${pct(loadGenCpuShare)}; whole machine ${pct(machineCpuShare)} busy`);

    if (json) console.log(JSON.stringify({ eventsPerSec, rawPgPerSec, ratio, p50Ms, p99Ms, loadGenCpuShare, serverCpuShare, serverCpuUsPerEvent, machineCpuShare, synchronousCommit: sc, pool: POOL, concurrency: CONCURRENCY, rounds: ROUNDS }));
  } finally {
    if (child.connected) child.disconnect();
    await app?.close();
    await db.close();
  }
}

if (process.argv.includes(LOAD_GENERATOR)) loadGenerator();
else await main();
