// Session ids the router issues: a request with neither X-Session-Id nor the ygg_session cookie gets a
// cookie, so a browser-driven workflow stays on one instance.
import { randomUUID } from 'node:crypto';
import { SESSION_COOKIE } from '../core/session.js';

export const SESSION_MOVED_HEADER = 'x-yggdrasil-session-moved';

/**
 * A session id the router makes up for a request that had none. It names the instance (and run) that
 * served it, so the router needs no table entry until the client comes back with the cookie: clients
 * that never return (load generators, one-shot API calls) leave nothing behind.
 */
export function issueSessionId(up: { id: string; incarnation: string }): string {
  return `${up.id}.${up.incarnation.slice(0, 8)}.${randomUUID()}`;
}

/** The instance and run prefix an id from issueSessionId names, or undefined for any other id. */
export function issuedTarget(id: string): { instanceId: string; incarnationPrefix: string } | undefined {
  const m = /^([\w-]+)\.([0-9a-f]{8})\.[0-9a-f-]{36}$/.exec(id);
  return m ? { instanceId: m[1]!, incarnationPrefix: m[2]! } : undefined;
}

/** Characters encodeURIComponent leaves as they are, and a cookie value may hold. */
const COOKIE_SAFE = /^[\w.-]+$/;

export function sessionCookie(id: string): string {
  // An issued id is all cookie-safe characters already; any other is encoded.
  const value = COOKIE_SAFE.test(id) ? id : encodeURIComponent(id);
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax`;
}
