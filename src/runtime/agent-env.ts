// What an agent's environment holds: only what it is given, never the rest of the controller's
// (a DB password, a cloud token). A local process gets the basics a process needs (PATH, HOME, LANG,
// TZ) from the platform's environment; every agent gets the variables AGENT_ENV names and those of
// AGENT_ENV_FILE (src/core/env-file.ts reads both); the driver adds its own (PORT, AGENT_ID, …). Pure.

/** What a local process needs to run at all; a container has its image's instead. */
export const PROCESS_BASICS = ['PATH', 'HOME', 'LANG', 'TZ'] as const;

export interface AgentEnvInput {
  /** The platform's own environment (process.env). */
  parent: NodeJS.ProcessEnv;
  /** AGENT_ENV: names of the parent's variables to pass. */
  names: readonly string[];
  /** AGENT_ENV_FILE's variables. */
  file?: Record<string, string>;
  /** Local processes get PROCESS_BASICS from the parent; containers do not (their image has them). */
  basics: boolean;
}

/** The environment an agent is given (before the driver's own variables). */
export function agentEnvironment(i: AgentEnvInput): Record<string, string> {
  const out: Record<string, string> = {};
  const pass = (name: string) => {
    const v = i.parent[name];
    if (v !== undefined) out[name] = v;
  };
  if (i.basics) for (const n of PROCESS_BASICS) pass(n);
  for (const n of i.names) pass(n);
  return { ...out, ...i.file };
}
