// ALLOWED_HOSTS: the names this installation answers to on its own routes (the status page, its feed,
// the admin API). A request whose Host is another name is refused, so a web page of another site that
// points its name at 127.0.0.1 (DNS rebinding) cannot read the pool through the visitor's browser.
// Entries are names (`ygg.example`), suffixes (`*.example`), addresses and CIDR ranges; `*` allows all.
import { isIP } from 'node:net';
import { parseAddressList } from './address-list.js';
import { YggError } from './errors.js';

export interface AllowedHosts {
  /** Whether a request with this Host header (port included or not) is for this installation. */
  allows(host: string | undefined): boolean;
  readonly entries: readonly string[];
}

/** The default: localhost names, loopback addresses, and the address it is bound to. */
export function defaultHosts(bindHost: string): string[] {
  const out = ['localhost', '*.localhost', '127.0.0.0/8', '::1'];
  if (bindHost !== '0.0.0.0' && bindHost !== '::' && !out.includes(bindHost)) out.push(bindHost);
  return out;
}

/** The hostname of a Host header: no port, no IPv6 brackets, lower case. */
export function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  // One colon: name:port; more: a bare IPv6 address.
  return colon !== -1 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** Parses ALLOWED_HOSTS (empty: defaultHosts); throws a TypeError naming a bad entry. */
export function parseAllowedHosts(list: string, bindHost: string): AllowedHosts {
  const entries =
    list.trim() === ''
      ? defaultHosts(bindHost)
      : list
          .split(',')
          .map((e) => e.trim())
          .filter(Boolean);
  if (entries.includes('*')) return { entries, allows: () => true };
  const names = new Set<string>();
  const suffixes: string[] = [];
  const addresses: string[] = [];
  for (const e of entries) {
    const lower = e.toLowerCase();
    if (lower.startsWith('*.') && /^[a-z0-9.-]+$/.test(lower.slice(2))) suffixes.push(lower.slice(1));
    else if (isIP(lower.split('/')[0] ?? '') !== 0) addresses.push(lower);
    else if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(lower))
      names.add(lower);
    else throw new TypeError(`"${e}" is not a host name, *.suffix, address or CIDR range`);
  }
  const ips = parseAddressList(addresses.join(','));
  return {
    entries,
    allows(host) {
      if (!host) return false;
      const name = hostnameOf(host);
      if (names.has(name) || suffixes.some((s) => name.endsWith(s))) return true;
      return isIP(name) !== 0 && ips.has(name);
    },
  };
}

/** YGG_ERR_HOST_NOT_ALLOWED for a Host that is not this installation's. */
export function hostRefused(host: string | undefined): YggError {
  return new YggError(
    'YGG_ERR_HOST_NOT_ALLOWED',
    `Host ${JSON.stringify(host ?? '')} is not in ALLOWED_HOSTS: add the name this installation is reached by`,
  );
}
