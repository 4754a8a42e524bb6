// Configuration of the reference agent: what each instance is told by its runtime (Cloud Run style).
import { hostname } from 'node:os';
import { int, oneOf, resolveOptions, text, type ValuesOf } from '../core/options.js';

export const AGENT_OPTIONS = {
  AGENT_ID: text('agent-1', 'Name of the instance in the pool (agent-<n>), given by the controller.'),
  INSTANCE_ID: text('', 'Unique id of this run of the agent; empty = <hostname>-<pid>.'),
  PORT: int(0, 65535, 8080, 'Port the agent listens on, given by the runtime.'),
  AGENT_HOST: text('127.0.0.1', 'Address the agent listens on (0.0.0.0 inside a container).'),
  MAX_BODY_BYTES: int(1, 1024 * 1024 * 1024, 10 * 1024 * 1024, 'Largest request body the agent reads.'),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info', 'Log level.'),
  LOG_FORMAT: oneOf(
    ['auto', 'pretty', 'json'],
    'auto',
    'JSON lines, or readable ones (`auto`: readable on a terminal).',
  ),
} as const;

export type AgentConfig = ValuesOf<typeof AGENT_OPTIONS>;

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const cfg = resolveOptions(AGENT_OPTIONS, env);
  if (!cfg.INSTANCE_ID) cfg.INSTANCE_ID = `${hostname()}-${process.pid}`;
  return cfg;
}
