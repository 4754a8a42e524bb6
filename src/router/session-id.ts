// Names the session of a request: the X-Session-Id header, else the ygg_session cookie. A request with
// neither gets a fresh id, sent back as a cookie, so a browser-driven workflow stays on one instance.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { readCookie } from '../core/http.js';

export const SESSION_HEADER = 'x-session-id';
export const SESSION_COOKIE = 'ygg_session';
export const SESSION_MOVED_HEADER = 'x-yggdrasil-session-moved';
const MAX_ID_LENGTH = 256;

export interface RequestSession {
  id: string;
  /** True when the router made the id up (the response must set the cookie). */
  fresh: boolean;
}

export function sessionOf(req: IncomingMessage): RequestSession {
  const header = req.headers[SESSION_HEADER];
  if (typeof header === 'string' && header !== '' && header.length <= MAX_ID_LENGTH)
    return { id: header, fresh: false };
  const cookie = req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
  if (cookie && cookie.length <= MAX_ID_LENGTH) return { id: cookie, fresh: false };
  return { id: randomUUID(), fresh: true };
}

export function sessionCookie(id: string): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(id)}; Path=/; HttpOnly; SameSite=Lax`;
}
