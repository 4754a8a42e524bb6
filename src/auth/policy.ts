// Who may use a route. Pure: the route's need, AUTH_REQUIRED, whether keys exist and what the request
// presented go in; a verdict comes out. Admin routes always need an admin key (and with none
// configured, say how to make one); read routes need a read or admin key when AUTH_REQUIRED says so
// (`auto`: once any key exists); open routes (/health) never do.
import { YggError } from '../core/errors.js';
import type { Principal } from './keys.js';

export type Need = 'open' | 'read' | 'admin';
export type AuthMode = 'auto' | 'always' | 'never';

export interface AccessQuestion {
  need: Need;
  mode: AuthMode;
  /** Keys exist in AUTH_FILE (any role) / an admin key exists. */
  anyKey: boolean;
  adminKey: boolean;
  /** What the request presented: nothing, a key that is no one's, or a principal. */
  presented: 'none' | 'invalid' | Principal;
}

export type AccessVerdict = { ok: true; principal?: Principal } | { ok: false; error: YggError };

const unauthorized = (message: string): AccessVerdict => ({
  ok: false,
  error: new YggError('YGG_ERR_UNAUTHORIZED', message),
});

export function decideAccess(q: AccessQuestion): AccessVerdict {
  if (q.need === 'open') return { ok: true };
  const required = q.need === 'admin' || q.mode === 'always' || (q.mode === 'auto' && q.anyKey);
  if (!required) return typeof q.presented === 'object' ? { ok: true, principal: q.presented } : { ok: true };
  if (q.need === 'admin' && !q.adminKey) {
    return {
      ok: false,
      error: new YggError(
        'YGG_ERR_AUTH_NOT_CONFIGURED',
        'admin routes need an admin key and none exists: run `npm run add:auth -- --name NAME --role admin`',
      ),
    };
  }
  if (q.presented === 'none')
    return unauthorized('this route needs an API key: send Authorization: Bearer <key>');
  if (q.presented === 'invalid')
    return unauthorized('the API key is not valid (revoked, mistyped or of another installation)');
  const role = q.presented.role;
  const allowed = q.need === 'admin' ? role === 'admin' : role === 'admin' || role === 'read';
  if (!allowed) {
    return {
      ok: false,
      error: new YggError(
        'YGG_ERR_FORBIDDEN',
        `the ${role} key ${q.presented.name} may not use ${q.need} routes`,
      ),
    };
  }
  return { ok: true, principal: q.presented };
}

/** The key of `Authorization: Bearer <key>`, or undefined. Only the header: never a cookie or a query. */
export function bearerOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
