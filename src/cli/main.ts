#!/usr/bin/env node
// The `yggdrasil` command: `start` runs the whole platform; `health`, `status`, `events` ask a running one.
import { Command } from 'commander';
import { authFilePath, loadPlatformConfig, type PlatformConfig } from '../core/config.js';
import { isYggError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { EXPORT_TARGETS, type ExportTarget, exportManifests } from '../export/manifests.js';
import { renderYaml } from '../export/render.js';
import { createDriver, startPlatform } from '../platform.js';
import type { DockerDriver } from '../runtime/docker-driver.js';
import { type AddAuthOptions, addAuthCommand, drainCommand, scaleCommand } from './admin.js';
import { eventsCommand } from './events.js';
import { healthCommand, statusCommand } from './health.js';
import { loadTestCommand } from './load-test.js';

/** Loads the configuration or stops with exit code 2 and one line naming what is wrong. */
function loadConfigOrExit(path: string | undefined): PlatformConfig {
  try {
    return loadPlatformConfig(process.env, path);
  } catch (err) {
    if (isYggError(err)) {
      process.stderr.write(`yggdrasil: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** SIGINT/SIGTERM stop gracefully; a second one forces. */
function stopOnSignals(
  logger: Logger,
  how: { stopping: string; stopped: string; stop: () => Promise<void>; force: () => Promise<void> },
): void {
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal: stopping now without draining');
      void how.force().finally(() => process.exit(130));
      return;
    }
    logger.info({ signal }, how.stopping);
    how.stop().then(
      () => {
        logger.info(how.stopped);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/** `yggdrasil router` and `yggdrasil controller`: one role of the platform, sharing state in Redis. */
async function runRole(role: 'router' | 'controller', opts: { config?: string }): Promise<void> {
  const cfg = loadConfigOrExit(opts.config ?? process.env.YGG_CONFIG);
  if (cfg.REDIS_URL === '') {
    process.stderr.write(
      `yggdrasil ${role}: configuration error: REDIS_URL is empty: a ${role} running on its own shares the pool through Redis; set REDIS_URL (e.g. redis://127.0.0.1:6379), or run \`yggdrasil start\` for everything in one process\n`,
    );
    process.exit(2);
  }
  const logger = createLogger(cfg.LOG_LEVEL, `yggdrasil-${role}`, cfg.LOG_FORMAT);
  // Loaded only here: ioredis would weigh on the heap of `yggdrasil start`, which never needs it.
  const { redactUrl } = await import('../shared/redis.js');
  const started =
    role === 'router'
      ? await (await import('../roles/router-role.js')).startRouterRole(cfg, { logger })
      : await (await import('../roles/controller-role.js')).startControllerRole(cfg, {
          logger,
          forwardOutput: true,
        });
  stopOnSignals(logger, {
    stopping: `stopping the ${role}`,
    stopped: `${role} stopped`,
    stop: () => started.stop(),
    force: async () => {},
  });
  const url = 'lbUrl' in started ? started.lbUrl : started.controllerUrl;
  if (cfg.LOG_LEVEL !== 'silent') {
    process.stderr.write(
      `\nYggdrasil ${role} ${started.id} is up at ${url} (shared state: ${redactUrl(cfg.REDIS_URL)})\n\n`,
    );
  }
}

async function start(opts: { config?: string }): Promise<void> {
  const cfg = loadConfigOrExit(opts.config ?? process.env.YGG_CONFIG);
  const logger = createLogger(cfg.LOG_LEVEL, 'yggdrasil', cfg.LOG_FORMAT);
  const platform = await startPlatform(cfg, { logger, forwardOutput: true }).catch((err: unknown) => {
    if (isYggError(err) && err.code === 'YGG_ERR_CONFIG') {
      process.stderr.write(`yggdrasil: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  });
  stopOnSignals(logger, {
    stopping: 'stopping: draining instances (press Ctrl-C again to force)',
    stopped: 'stopped: every instance is gone',
    stop: () => platform.stop(),
    force: () => platform.driver.close(),
  });

  const wanted = cfg.MIN_INSTANCES;
  try {
    await platform.controller.waitForReady(wanted, cfg.STARTUP_TIMEOUT_MS);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'the pool is not at MIN_INSTANCES yet; see /status');
  }
  logger.info(
    { lbUrl: platform.lbUrl, controllerUrl: platform.controllerUrl, ready: platform.controller.readyCount() },
    'yggdrasil is up',
  );
  if (cfg.LOG_LEVEL !== 'silent') {
    process.stderr.write(
      `\nYggdrasil is up: ${platform.controller.readyCount()} instance(s) ready\n` +
        `  load balancer  ${platform.lbUrl}   (try: curl ${platform.lbUrl}/health)\n` +
        `  controller     ${platform.controllerUrl}/status\n` +
        `  Ctrl-C drains and stops every instance.\n\n`,
    );
  }
}

const program = new Command()
  .name('yggdrasil')
  .description(
    'Run AI-agent instances behind a concurrency-aware router, Cloud Run style, on your own machine.',
  );

program
  .command('start', { isDefault: true })
  .description('start the controller, the router and the agent pool (configured by environment variables)')
  .option('-c, --config <file>', 'JSON file of options (same names as the environment variables)')
  .action(start);

program
  .command('router')
  .description('run the router (data plane) alone; it finds the pool through Redis (REDIS_URL)')
  .option('-c, --config <file>', 'JSON file of options (same names as the environment variables)')
  .action((o: { config?: string }) => runRole('router', o));

program
  .command('controller')
  .description(
    'run the controller (pool, health, autoscaler, admin API) alone; with REDIS_URL, one of several leads',
  )
  .option('-c, --config <file>', 'JSON file of options (same names as the environment variables)')
  .action((o: { config?: string }) => runRole('controller', o));

program
  .command('export')
  .description(
    'print this configuration as manifests of another platform: knative, cloudrun, kubernetes or compose',
  )
  .argument('<target>', EXPORT_TARGETS.join(' | '))
  .option('-n, --name <name>', 'name of the service in the manifests', 'yggdrasil-agent')
  .action(async (target: string, o: { name: string }) => {
    if (!(EXPORT_TARGETS as readonly string[]).includes(target)) {
      process.stderr.write(
        `yggdrasil export: unknown target "${target}": expected one of ${EXPORT_TARGETS.join(', ')}\n`,
      );
      process.exit(2);
    }
    if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(o.name)) {
      process.stderr.write(
        `yggdrasil export: --name=${o.name} is not allowed: lower-case letters, digits and -, starting with a letter (a DNS label)\n`,
      );
      process.exit(2);
    }
    const cfg = loadConfigOrExit(process.env.YGG_CONFIG);
    const e = exportManifests(target as ExportTarget, cfg, o.name);
    process.stdout.write(renderYaml(e, `yggdrasil export ${target}: from this machine's configuration`));
  });

program
  .command('down')
  .description(
    'remove what this installation owns: containers and network (docker), the service (swarm), the Deployment and Service (kubernetes)',
  )
  .action(async () => {
    const cfg = loadConfigOrExit(process.env.YGG_CONFIG);
    if (cfg.DRIVER === 'swarm' || cfg.DRIVER === 'kubernetes') {
      const driver = await createDriver(cfg, { logger: createLogger('silent') });
      if (driver.mode !== 'replicas' || !driver.down)
        throw new Error(`DRIVER=${cfg.DRIVER} cannot remove its pool`);
      const removed = await driver.down();
      await driver.close();
      process.stdout.write(`${removed ? 'removed' : 'found no'} ${driver.target}\n`);
      return;
    }
    if (cfg.DRIVER !== 'docker') {
      process.stdout.write(
        `DRIVER=${cfg.DRIVER}: instances are child processes and stop with \`npm start\`; nothing to remove\n`,
      );
      return;
    }
    const driver = (await createDriver(cfg, { logger: createLogger('silent') })) as DockerDriver;
    const { containers, network } = await driver.down();
    process.stdout.write(
      `removed ${containers} container(s) owned by ${cfg.DOCKER_OWNER}${network ? ` and network ${cfg.DOCKER_NETWORK}` : ''}\n`,
    );
  });

program
  .command('load-test')
  .description('load the load balancer with autocannon and check the SLOs (exit 1 on a miss)')
  .argument('[url]', 'target URL', `http://127.0.0.1:${process.env.LB_PORT ?? 8080}/api/test`)
  .option('-c, --connections <n>', 'concurrent connections', '10')
  .option('-d, --duration <seconds>', 'how long to run', '10')
  .option('-n, --amount <requests>', 'stop after this many requests (instead of --duration)')
  .option('-m, --method <method>', 'HTTP method', 'GET')
  .option('-b, --body <text>', 'request body (JSON gets content-type application/json)')
  .option('-H, --header <header...>', 'extra header "name: value" (repeatable)', [])
  .option('-s, --session-share <0..1>', 'share of requests carrying an X-Session-Id (100 sessions)', '0')
  .option('--slo-p95-ms <ms>', 'p95 latency must stay below', '200')
  .option('--slo-rps <n>', 'throughput must exceed', '1000')
  .option('--slo-error-rate <share>', 'error rate must stay below', '0.01')
  .option('--json', 'print the summary as JSON (no progress bar)')
  .action(loadTestCommand);

program
  .command('add-auth')
  .description('make an API key (shown once), list the keys, or revoke one (npm run add:auth -- …)')
  .option('-n, --name <name>', 'who the key is for')
  .option(
    '-r, --role <role>',
    'admin (everything), read (status, metrics, the page) or client (proxied traffic)',
    'read',
  )
  .option('-l, --list', 'list the keys (names, roles, dates; never a key)')
  .option('--revoke <name>', 'revoke the key of <name>')
  .action(async (o: AddAuthOptions) => {
    const cfg = loadConfigOrExit(process.env.YGG_CONFIG);
    await addAuthCommand(authFilePath(cfg), o);
  });

const controllerUrl = () => process.env.CONTROLLER_URL ?? 'http://127.0.0.1:3000';

program
  .command('scale')
  .description('set MIN_INSTANCES / MAX_INSTANCES of a running controller (YGG_TOKEN: an admin key)')
  .option('--min <n>', 'new MIN_INSTANCES')
  .option('--max <n>', 'new MAX_INSTANCES')
  .option('-u, --url <url>', 'controller URL', controllerUrl())
  .action(scaleCommand);

program
  .command('drain')
  .description(
    'drain an instance: no new requests, in-flight ones finish, then it stops (YGG_TOKEN: an admin key)',
  )
  .argument('<id>', 'instance id, e.g. agent-2')
  .option('-u, --url <url>', 'controller URL', controllerUrl())
  .action((id: string, o: { url: string }) => drainCommand(id, o, false));

program
  .command('restart')
  .description('restart an instance gracefully: drain it, then start it again (YGG_TOKEN: an admin key)')
  .argument('<id>', 'instance id, e.g. agent-2')
  .option('-u, --url <url>', 'controller URL', controllerUrl())
  .action((id: string, o: { url: string }) => drainCommand(id, o, true));

program
  .command('health')
  .description('print every instance with its health; exit 1 when the pool is unhealthy')
  .option('-u, --url <url>', 'controller URL', process.env.CONTROLLER_URL ?? 'http://127.0.0.1:3000')
  .option('--json', 'print JSON instead of a table')
  .action(healthCommand);

program
  .command('status')
  .description("print the controller's status as JSON")
  .option('-u, --url <url>', 'controller URL', process.env.CONTROLLER_URL ?? 'http://127.0.0.1:3000')
  .action(statusCommand);

program
  .command('events')
  .description('print the live feed of pool events (instances, scaling, breakers); --follow keeps printing')
  .option('-u, --url <url>', 'controller URL', process.env.CONTROLLER_URL ?? 'http://127.0.0.1:3000')
  .option('-f, --follow', 'keep printing new events until Ctrl-C')
  .option('--stats', 'also print the stats snapshot every second')
  .option('--json', 'print one JSON object a line')
  .action(eventsCommand);

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`yggdrasil: ${(err as Error).message}\n`);
  process.exit(1);
});
