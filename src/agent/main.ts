#!/usr/bin/env node
// Entry point of the reference agent (one instance). Reads AGENT_ID and PORT, serves until SIGTERM,
// then drains: stops accepting, finishes in-flight requests, exits 0.
import { isYggError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { loadAgentConfig } from './config.js';
import { createAgent } from './server.js';

async function main(): Promise<void> {
  let cfg: ReturnType<typeof loadAgentConfig>;
  try {
    cfg = loadAgentConfig();
  } catch (err) {
    if (isYggError(err)) {
      process.stderr.write(`agent config error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(cfg.LOG_LEVEL, 'agent', cfg.LOG_FORMAT).child({ agentId: cfg.AGENT_ID });
  const agent = createAgent({
    agentId: cfg.AGENT_ID,
    instanceId: cfg.INSTANCE_ID,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    logger,
  });
  const port = await agent.listen(cfg.PORT, cfg.AGENT_HOST);
  logger.info({ port, instanceId: cfg.INSTANCE_ID }, 'agent listening');

  const stop = (why: string) => {
    logger.info({ why, inflight: agent.inflight }, 'agent draining');
    agent.shutdown().then(() => {
      logger.info('agent stopped');
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A platform that died closes our stdout: the log must not take the agent down (nor hang it); the
  // process driver's watchdog ends the agent then.
  process.stdout.on('error', () => {});
}

main().catch((err) => {
  process.stderr.write(`agent failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
