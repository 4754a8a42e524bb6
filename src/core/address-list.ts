// A list of IP addresses and CIDR ranges (TRUSTED_PROXIES), parsed once into Node's BlockList so a
// lookup on the request path is one call. IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match their IPv4.
import { BlockList, isIP } from 'node:net';

export interface AddressList {
  /** Whether the address is in the list. */
  has(address: string): boolean;
  readonly size: number;
}

/** Parses "127.0.0.1, 10.0.0.0/8, ::1"; throws a TypeError naming the first entry that is neither. */
export function parseAddressList(text: string): AddressList {
  const list = new BlockList();
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  for (const entry of entries) {
    const [addr = '', prefix, extra] = entry.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (prefix !== undefined && !/^\d{1,3}$/.test(prefix))) {
      throw new TypeError(`"${entry}" is not an IP address or a CIDR range`);
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(addr, type);
    else if (Number(prefix) > max) throw new TypeError(`"${entry}": the prefix must be at most ${max}`);
    else list.addSubnet(addr, Number(prefix), type);
  }
  return {
    size: entries.length,
    has(address: string): boolean {
      if (entries.length === 0 || address === '') return false;
      const plain = unmapped(address);
      return list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/** "::ffff:127.0.0.1" → "127.0.0.1"; any other address unchanged. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
