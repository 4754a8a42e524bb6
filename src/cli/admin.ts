// The admin side of the `yggdrasil` command: API keys (`add-auth`, which `npm run add:auth` runs) and
// the admin API of a running controller (`scale`, `drain`, `restart`, with YGG_TOKEN an admin key).
import { addKey, ROLES, type Role, readKeys, revokeKey } from '../auth/keys.js';
import { callController } from './client.js';

export interface AddAuthOptions {
  name?: string;
  role: string;
  list?: boolean;
  revoke?: string;
}

/**
 * Makes a key (printed once, alone on the last line of stdout, so `KEY=$(…)` takes it), lists the
 * keys (names, roles, dates: never a key), or revokes one. Messages go to stderr. Exit 2 on bad input.
 */
export async function addAuthCommand(file: string, o: AddAuthOptions): Promise<void> {
  const fail = (message: string) => {
    process.stderr.write(`yggdrasil add-auth: ${message}\n`);
    process.exitCode = 2;
  };
  try {
    if (o.list) {
      const keys = readKeys(file);
      if (keys.length === 0) process.stdout.write(`no keys in ${file}\n`);
      for (const k of keys) process.stdout.write(`${k.name}\t${k.role}\t${k.createdAt}\n`);
      return;
    }
    if (o.revoke !== undefined) {
      if (!revokeKey(file, o.revoke)) return fail(`no key named ${o.revoke} in ${file} (see --list)`);
      process.stderr.write(`revoked ${o.revoke}: it stops working within a second\n`);
      return;
    }
    if (!o.name) return fail('give --name NAME (and --role admin|read|client), or --list, or --revoke NAME');
    if (!(ROLES as readonly string[]).includes(o.role)) {
      return fail(`--role ${JSON.stringify(o.role)} is not allowed: expected one of ${ROLES.join(', ')}`);
    }
    const key = await addKey(file, o.name, o.role as Role);
    process.stderr.write(
      `made a ${o.role} key for ${o.name}, stored as a hash in ${file}. It is shown once, here; send it as\n` +
        '`Authorization: Bearer <key>` (the CLI reads YGG_TOKEN):\n',
    );
    process.stdout.write(`${key}\n`);
  } catch (err) {
    fail(`${file}: ${(err as Error).message}`);
  }
}

export async function scaleCommand(o: { url: string; min?: string; max?: string }): Promise<void> {
  const body: Record<string, number> = {};
  for (const [field, v] of [
    ['minInstances', o.min],
    ['maxInstances', o.max],
  ] as const) {
    if (v === undefined) continue;
    if (!/^\d+$/.test(v)) {
      process.stderr.write(
        `yggdrasil scale: --${field === 'minInstances' ? 'min' : 'max'} ${v}: give a whole number\n`,
      );
      process.exitCode = 2;
      return;
    }
    body[field] = Number(v);
  }
  const r = await callController<{ minInstances: number; maxInstances: number; desiredInstances: number }>(
    o.url,
    '/scaling',
    { method: 'PUT', body },
  );
  process.stdout.write(
    `scaling limits now ${r.body.minInstances}..${r.body.maxInstances}; desired ${r.body.desiredInstances}\n`,
  );
}

export async function drainCommand(id: string, o: { url: string }, restart: boolean): Promise<void> {
  const action = restart ? 'restart' : 'drain';
  await callController(o.url, `/instances/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
  process.stdout.write(
    restart
      ? `${id} is draining; it starts again once its requests are done\n`
      : `${id} is draining; it stops once its requests are done and the pool refills\n`,
  );
}
