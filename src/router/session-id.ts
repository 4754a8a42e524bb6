// Names the session of a request: the X-Session-Id header, else the ygg_session cookie. A request with
// neither gets a fresh id, sent back as a cookie, so a browser-driven workflow stays on one instance.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SESSION_COOKIE, sessionIdOf } from '../core/session.js';

export const SESSION_MOVED_HEADER = 'x-yggdrasil-session-moved';

export interface RequestSession {
  id: string;
  /** True when the router made the id up (the response must set the cookie). */
  fresh: boolean;
}

export function sessionOf(req: IncomingMessage): RequestSession {
  const id = sessionIdOf(req);
  return id === undefined ? { id: randomUUID(), fresh: true } : { id, fresh: false };
}

export function sessionCookie(id: string): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(id)}; Path=/; HttpOnly; SameSite=Lax`;
}
