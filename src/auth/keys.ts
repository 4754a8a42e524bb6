// API keys: made by `npm run add:auth`, kept in AUTH_FILE as scrypt hashes only (mode 0600), checked
// on every route that needs one. A key is `ygg_<id>_<secret>`: the id finds its record without trying
// every hash, the secret (32 random bytes) is compared in constant time. A key verified once is
// remembered by its SHA-256 for the life of the process, so only a key's first use pays for scrypt.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

const scrypt = promisify(scryptCb) as (secret: string, salt: string, keylen: number) => Promise<Buffer>;

export const ROLES = ['admin', 'read', 'client'] as const;
export type Role = (typeof ROLES)[number];

const NAME = /^[A-Za-z0-9][\w.@-]{0,63}$/;

const RecordSchema = z.object({
  name: z.string().regex(NAME),
  role: z.enum(ROLES),
  id: z.string().regex(/^[0-9a-f]{12}$/),
  salt: z.string().min(16),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
});
const FileSchema = z.object({ version: z.literal(1), keys: z.array(RecordSchema) });

export type KeyRecord = z.infer<typeof RecordSchema>;

/** Who a verified key belongs to. */
export interface Principal {
  name: string;
  role: Role;
}

/** `ygg_<id>_<secret>` → its parts, or undefined for anything else. */
export function parseKey(key: string): { id: string; secret: string } | undefined {
  const m = /^ygg_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

async function hashSecret(secret: string, salt: string): Promise<string> {
  return (await scrypt(secret, salt, 32)).toString('hex');
}

/** Reads an auth file; a missing one is an empty list. Throws a TypeError saying what is wrong. */
export function readKeys(path: string): KeyRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TypeError(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TypeError('it is not JSON (it is written by `npm run add:auth`: do not edit it by hand)');
  }
  const r = FileSchema.safeParse(parsed);
  if (!r.success) throw new TypeError(`it is not an auth file: ${r.error.issues[0]?.message ?? 'bad shape'}`);
  return r.data.keys;
}

/** Writes the list atomically (temp file, then rename), readable by its owner only. */
function writeKeys(path: string, keys: KeyRecord[]): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Makes a key for `name` with `role`, stores its hash, and returns the key (shown once, never stored). */
export async function addKey(path: string, name: string, role: Role, now = new Date()): Promise<string> {
  if (!NAME.test(name)) {
    throw new TypeError(
      `--name ${JSON.stringify(name)}: use letters, digits, . _ @ - (at most 64, starting with a letter or digit)`,
    );
  }
  const keys = readKeys(path);
  if (keys.some((k) => k.name === name)) {
    throw new TypeError(
      `a key named ${name} exists: revoke it first (--revoke ${name}) or choose another name`,
    );
  }
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const salt = randomBytes(16).toString('hex');
  keys.push({ name, role, id, salt, hash: await hashSecret(secret, salt), createdAt: now.toISOString() });
  writeKeys(path, keys);
  return `ygg_${id}_${secret}`;
}

/** Removes the key named `name`; false when there was none. */
export function revokeKey(path: string, name: string): boolean {
  const keys = readKeys(path);
  const left = keys.filter((k) => k.name !== name);
  if (left.length === keys.length) return false;
  writeKeys(path, left);
  return true;
}

/**
 * The running platform's view of AUTH_FILE: reloaded when the file changes (checked every second by
 * `refresh()`), so `add:auth` and `--revoke` take effect without a restart.
 */
export class KeyRing {
  private keys: KeyRecord[] = [];
  private mtimeMs = -1;
  /** SHA-256 of a key verified before → its record id. */
  private readonly verified = new Map<string, string>();

  constructor(readonly path: string) {
    this.refresh();
  }

  /** Keys there are now. */
  get size(): number {
    return this.keys.length;
  }

  hasRole(role: Role): boolean {
    return this.keys.some((k) => k.role === role);
  }

  /** Rereads the file if it changed; a file that became unreadable keeps the keys as they were. */
  refresh(): void {
    let mtime: number;
    try {
      mtime = statSync(this.path).mtimeMs;
    } catch {
      mtime = 0; // no file: no keys
    }
    if (mtime === this.mtimeMs) return;
    this.mtimeMs = mtime;
    try {
      this.keys = mtime === 0 ? [] : readKeys(this.path);
    } catch {
      return;
    }
    this.verified.clear(); // a revoked key must not stay verified
  }

  /** Whose key it is, or undefined. Fast (no scrypt) for a key verified before. */
  async verify(key: string): Promise<Principal | undefined> {
    const digest = createHash('sha256').update(key).digest('hex');
    const known = this.verified.get(digest);
    if (known !== undefined) return this.principal(known);
    const parts = parseKey(key);
    const rec = parts && this.keys.find((k) => k.id === parts.id);
    if (!parts || !rec) return undefined;
    const hash = Buffer.from(await hashSecret(parts.secret, rec.salt), 'hex');
    if (!timingSafeEqual(hash, Buffer.from(rec.hash, 'hex'))) return undefined;
    this.verified.set(digest, rec.id);
    return { name: rec.name, role: rec.role };
  }

  private principal(id: string): Principal | undefined {
    const rec = this.keys.find((k) => k.id === id);
    return rec ? { name: rec.name, role: rec.role } : undefined;
  }
}
