// A session id is what lets a client reach its instance (SESSION_MODE=dedicated: its instance only),
// so it is a secret of that client's. What a read-only key sees (/status, events, the live feed)
// names a session by its tag instead: an HMAC under a key made at start, so a tag can be matched
// against the admin's GET /sessions (which lists both) but never turned back into the id, even for
// guessable ids ("user-42"). Tags change when the process restarts.
import { createHmac, randomBytes } from 'node:crypto';

const KEY = randomBytes(32);

/** `s_` and 16 hex digits of HMAC-SHA256(id): stable for this process, not reversible. */
export function sessionTag(id: string): string {
  return `s_${createHmac('sha256', KEY).update(id).digest('hex').slice(0, 16)}`;
}

/** The tag of an instance's owner; null for none (a warm or shared instance). */
export function ownerTag(owner: string | undefined): string | null {
  return owner === undefined ? null : sessionTag(owner);
}
