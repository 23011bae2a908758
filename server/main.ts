/**
 * `npm start`: runs the HTTP service.
 *
 * With no configuration: embedded PGlite in ./data (DATA_DIR), migrations applied, the seed
 * workflows deployed, the demo jurisdiction loaded, a JWT secret generated and kept in the data
 * directory, and the URLs and one token per demo role printed. With DATABASE_URL: the same engine
 * on that Postgres, connected as the append-only application role; demo data only with --demo;
 * JWT_SECRET required.
 *
 * Pino JSON logs go to stdout; the human banner (URLs, demo tokens) goes to stderr.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ChangeFeed } from '../engine/changes.ts';
import { Engine } from '../engine/engine.ts';
import { OutboxWorker } from '../engine/outbox.ts';
import { openAppDatabase, openDatabase, type OpenedDatabase } from '../engine/store/index.ts';
import { findActor } from '../engine/store/registry.ts';
import type { TimerPoller } from '../engine/timers.ts';
import { buildApp, SERVICE_ENGINE_OPTIONS } from './app.ts';
import { MIN_SECRET_LENGTH, signToken } from './auth.ts';
import { DEMO_LOGINS, deployWorkflows, loadDemoData, orgIsEmpty, readFixture } from './demo.ts';
import { folderLoader } from './loader.ts';
import { MeteredTimerPoller } from './metrics.ts';
import { ensureSecretFile } from './secret.ts';

/** Everything main reads from the environment and the command line. */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly databaseSchema: string | undefined;
  readonly appRole: string | undefined;
  readonly appPassword: string | undefined;
  readonly jwtSecret: string | undefined;
  readonly logLevel: string;
  readonly demo: boolean;
}

class ConfigError extends Error {}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * Reads the configuration; throws a ConfigError naming the variable that is wrong.
 * @example const config = readConfig(process.env, process.argv.slice(2));
 */
export function readConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): ServerConfig {
  const unknown = argv.filter((a) => a !== '--demo');
  if (unknown.length > 0) throw new ConfigError(`Unknown argument ${unknown[0]}; the only option is --demo.`);
  const portText = env['PORT'] ?? '3000';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65_535) throw new ConfigError(`PORT must be a number from 0 to 65535, got ${JSON.stringify(portText)}.`);
  const logLevel = env['LOG_LEVEL'] ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got ${JSON.stringify(logLevel)}.`);
  const databaseUrl = nonEmpty(env['DATABASE_URL']);
  const jwtSecret = nonEmpty(env['JWT_SECRET']);
  if (databaseUrl !== undefined && jwtSecret === undefined) {
    throw new ConfigError('JWT_SECRET is required with DATABASE_URL: every server process must sign and check tokens with the same secret. Generate one with `openssl rand -base64 48`.');
  }
  if (jwtSecret !== undefined && jwtSecret.length < MIN_SECRET_LENGTH) throw new ConfigError(`JWT_SECRET must be at least ${MIN_SECRET_LENGTH} characters.`);
  return {
    port,
    host: nonEmpty(env['HOST']) ?? '127.0.0.1',
    dataDir: path.resolve(nonEmpty(env['DATA_DIR']) ?? 'data'),
    databaseUrl,
    databaseSchema: nonEmpty(env['DATABASE_SCHEMA']),
    appRole: nonEmpty(env['DATABASE_APP_ROLE']),
    appPassword: env['DATABASE_APP_PASSWORD'],
    jwtSecret,
    logLevel,
    demo: databaseUrl === undefined || argv.includes('--demo'),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** The project folder (holding workflows/), from server/main.ts or dist/server/main.js alike. */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'workflows'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** A running server and how to stop it. */
export interface Running {
  readonly url: string;
  stop(reason: string): Promise<void>;
}

/**
 * Opens the database, prepares it, and starts listening.
 * @example const running = await start(readConfig(process.env, []));
 */
export async function start(config: ServerConfig, banner: (text: string) => void = (t) => process.stderr.write(`${t}\n`)): Promise<Running> {
  const logger = pino({ level: config.logLevel });
  const root = projectRoot();
  const workflowsDir = path.join(root, 'workflows');
  const fixture = path.join(workflowsDir, 'fixtures/org.yaml');
  const calendar = existsSync(fixture) ? readFixture(fixture).calendar : undefined;

  const jwtSecret = config.jwtSecret ?? ensureSecretFile(config.dataDir);
  let store: OpenedDatabase;
  if (config.databaseUrl !== undefined) {
    store = await openAppDatabase({
      databaseUrl: config.databaseUrl, logger,
      ...(config.databaseSchema === undefined ? {} : { schema: config.databaseSchema }),
      ...(config.appRole === undefined ? {} : { appRole: config.appRole }),
      ...(config.appPassword === undefined ? {} : { appPassword: config.appPassword }),
    });
  } else {
    store = await openDatabase({ dataDir: path.join(config.dataDir, 'pglite'), logger });
  }

  let poller: TimerPoller | undefined;
  let outbox: OutboxWorker | undefined;
  // One change feed for every live stream of this process; on Postgres it LISTENs on one
  // connection of its own (as the application's role, like the store's), so changes written by
  // other processes reach these streams at once.
  const listenUrl = store.connectionString ?? config.databaseUrl;
  const changes = new ChangeFeed(store, { logger, ...(listenUrl === undefined ? {} : { listen: { databaseUrl: listenUrl } }) });
  try {
    const engine = new Engine({ store, logger, ...SERVICE_ENGINE_OPTIONS, ...(calendar === undefined ? {} : { calendar }) });
    if (config.demo) {
      const deployed = await deployWorkflows(engine, workflowsDir, { onlyNew: true });
      for (const d of deployed) logger.info({ workflow: d.name, version: d.version }, 'seed workflow deployed');
      if (await orgIsEmpty(engine)) {
        const loaded = await loadDemoData(store, fixture);
        logger.info(loaded, 'demo org tree and people loaded');
      } else {
        logger.info('org tree present; demo data not loaded again');
      }
    }
    const app = await buildApp({ engine, jwtSecret, logger, loader: folderLoader(workflowsDir), processMetrics: true, streams: { changes } });
    poller = new MeteredTimerPoller(engine, app.metrics, { logger });
    outbox = new OutboxWorker({ store, clock: engine.clock, logger });
    // Demo tokens are made before listening, so the banner is printed whole, in one write.
    const logins: string[] = [];
    if (config.demo) {
      for (const l of DEMO_LOGINS) {
        if ((await findActor(store, l.actor)) === undefined) continue;
        logins.push(`  ${l.actor}  ${l.as}`, `    ${await signToken(jwtSecret, l.actor)}`);
      }
    }
    const address = await app.listen({ port: config.port, host: config.host });
    poller.start(1_000);
    outbox.start(1_000);
    const url = address.replace('://[::1]', '://localhost');
    logger.info({ url, database: store.kind, nodeId: engine.nodeId }, 'listening');

    const lines = [
      `Listening on ${url}`,
      `  API docs    ${url}/docs`,
      `  OpenAPI     ${url}/openapi.json`,
      `  health      ${url}/healthz   ready: ${url}/readyz   metrics: ${url}/metrics`,
      config.databaseUrl === undefined
        ? `  database    PGlite in ${path.join(config.dataDir, 'pglite')} (embedded; it does not fsync, so it is for one box and for trying things out)`
        : `  database    Postgres${config.databaseSchema === undefined ? '' : `, schema ${config.databaseSchema}`}`,
      ...(logins.length === 0 ? [] : ['Demo tokens (12 hours; `npx wf token --actor ID` makes more):', ...logins]),
      'Stop with Ctrl+C (SIGINT) or SIGTERM.',
    ];
    banner(lines.join('\n'));

    let stopping: Promise<void> | undefined;
    const stop = (reason: string): Promise<void> => (stopping ??= (async () => {
      logger.info({ reason }, 'shutting down: no new requests, finishing those in flight');
      // Stop taking requests, end the open streams and let in-flight requests finish, then the
      // background work, then the pool.
      await app.close();
      await changes.close();
      await poller?.stop();
      await outbox?.stop();
      await store.close();
      logger.info('stopped');
      logger.flush();
    })());
    return { url, stop };
  } catch (e) {
    await changes.close();
    await poller?.stop();
    await outbox?.stop();
    await store.close();
    throw e;
  }
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = readConfig(process.env, process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`closed-loop: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  // Signals are handled from the start: one that arrives while starting stops the server as soon as it is up.
  let signalled: NodeJS.Signals | undefined;
  let running: Running | undefined;
  const shutdown = (signal: NodeJS.Signals): void => {
    const force = setTimeout(() => {
      process.stderr.write('closed-loop: still stopping after 15 s; exiting\n');
      process.exit(1);
    }, 15_000);
    force.unref();
    running?.stop(signal).then(() => {
      process.exitCode = 0;
    }, (e: unknown) => {
      process.stderr.write(`closed-loop: error while stopping: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal while stopping means "now".
    if (signalled !== undefined) {
      process.stderr.write(`closed-loop: ${signal} again; exiting without waiting\n`);
      process.exit(130);
    }
    signalled = signal;
    if (running !== undefined) shutdown(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    running = await start(config);
  } catch (e) {
    process.stderr.write(`closed-loop: could not start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    return;
  }
  if (signalled !== undefined) shutdown(signalled);
}

// Run only as the entry point, so tests can import readConfig and start.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
