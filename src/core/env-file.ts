// Reading the agents' environment settings: AGENT_ENV (a comma list of variable names) and
// AGENT_ENV_FILE (KEY=VALUE lines, as `docker --env-file` reads them). Parsing only; which variables an
// agent gets is decided in src/runtime/agent-env.ts.
import { readFileSync } from 'node:fs';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The names of AGENT_ENV ("A, B_2"); throws a TypeError naming the first that is not a variable name. */
export function parseEnvNames(list: string): string[] {
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  for (const n of names) if (!NAME.test(n)) throw new TypeError(`"${n}" is not a variable name`);
  return names;
}

/**
 * An env file as docker and dotenv read it: KEY=VALUE lines, `#` comments and blank lines skipped,
 * `export ` allowed, a value in single or double quotes taken as is. Throws naming the bad line.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const body = line.startsWith('export ') ? line.slice(7).trimStart() : line;
    const eq = body.indexOf('=');
    const key = eq === -1 ? body : body.slice(0, eq).trim();
    if (eq === -1 || !NAME.test(key)) {
      throw new TypeError(`line ${i + 1} is not KEY=VALUE: ${JSON.stringify(raw.slice(0, 80))}`);
    }
    let value = body.slice(eq + 1).trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    out[key] = value;
  });
  return out;
}

/** Reads AGENT_ENV_FILE; throws a TypeError saying why it cannot be used. */
export function readEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TypeError(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseEnvFile(text);
}
