// The access check every HTTP adapter asks: reads the key from the Authorization header only (so a
// browser never sends it on its own: no CSRF), verifies it against the key ring, and applies the
// policy. Keeps the ring fresh (AUTH_FILE is reread within a second of `add:auth` or `--revoke`).
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { YggError } from '../core/errors.js';
import { sendError } from '../core/http.js';
import type { KeyRing } from './keys.js';
import { type AccessVerdict, type AuthMode, bearerOf, decideAccess, type Need } from './policy.js';

export class AuthGate {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ring: KeyRing,
    readonly mode: AuthMode,
  ) {}

  /** Rereads AUTH_FILE every second while the platform runs. */
  start(): void {
    this.timer ??= setInterval(() => this.ring.refresh(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether a read route needs a key now (for the status page: ask for one). */
  get readNeedsKey(): boolean {
    return this.mode === 'always' || (this.mode === 'auto' && this.ring.size > 0);
  }

  /**
   * Whether the request carries a valid read or admin key, whatever AUTH_REQUIRED says: what the
   * load-balancer port asks before it shows more than its public summary.
   */
  async isReader(key: string | undefined): Promise<boolean> {
    if (key === undefined) return false;
    const p = await this.ring.verify(key);
    return p?.role === 'admin' || p?.role === 'read';
  }

  async check(headers: IncomingHttpHeaders, need: Need): Promise<AccessVerdict> {
    return this.checkKey(bearerOf(headers.authorization), need);
  }

  /** The same for a key given another way (Socket.IO's auth payload). */
  async checkKey(key: string | undefined, need: Need): Promise<AccessVerdict> {
    const presented = key === undefined ? 'none' : ((await this.ring.verify(key)) ?? 'invalid');
    return decideAccess({
      need,
      mode: this.mode,
      anyKey: this.ring.size > 0,
      adminKey: this.ring.hasRole('admin'),
      presented,
    });
  }
}

/** Answers a refused request: 401 with WWW-Authenticate (RFC 6750), 403 without. */
export function refuseAccess(res: ServerResponse, err: YggError): void {
  sendError(res, err, err.status === 401 ? { 'www-authenticate': 'Bearer realm="yggdrasil"' } : {});
}
