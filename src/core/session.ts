// How a request names its session, shared by the router (affinity) and the reference agent (counts):
// the X-Session-Id header, else the ygg_session cookie.
import type { IncomingMessage } from 'node:http';
import { readCookie } from './http.js';

export const SESSION_HEADER = 'x-session-id';
export const SESSION_COOKIE = 'ygg_session';
/** Longer ids are ignored (not a session name a client would choose; a cap on the table's keys). */
const MAX_ID_LENGTH = 256;

/** The session id the request carries, or undefined. */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const header = req.headers[SESSION_HEADER];
  if (typeof header === 'string' && header !== '' && header.length <= MAX_ID_LENGTH) return header;
  const cookie = req.headers.cookie ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
  return cookie && cookie.length <= MAX_ID_LENGTH ? cookie : undefined;
}
