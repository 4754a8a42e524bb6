import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostnameOf, parseAllowedHosts } from './allowed-hosts.js';

describe('parseAllowedHosts', () => {
  const defaults = parseAllowedHosts('', '127.0.0.1');
  const table: Array<{
    name: string;
    list?: string;
    bind?: string;
    host: string | undefined;
    want: boolean;
  }> = [
    { name: 'localhost with a port', host: 'localhost:3000', want: true },
    { name: 'a .localhost name', host: 'ygg.localhost:3000', want: true },
    { name: 'loopback', host: '127.0.0.1:3000', want: true },
    { name: 'another loopback address', host: '127.1.2.3', want: true },
    { name: 'IPv6 loopback', host: '[::1]:3000', want: true },
    { name: 'a rebinding name', host: 'evil.example:3000', want: false },
    { name: 'no Host', host: undefined, want: false },
    { name: 'the bind host is allowed', bind: '10.1.2.3', host: '10.1.2.3:3000', want: true },
    { name: 'a listed name, any case', list: 'Ygg.Example', host: 'ygg.example:8080', want: true },
    { name: 'a listed suffix', list: '*.corp.example', host: 'a.b.corp.example', want: true },
    { name: 'the suffix is not the bare domain', list: '*.corp.example', host: 'corp.example', want: false },
    { name: 'a listed range', list: '10.0.0.0/8', host: '10.9.9.9:3000', want: true },
    { name: 'a list replaces the defaults', list: 'ygg.example', host: 'localhost', want: false },
    { name: '* allows all', list: '*', host: 'anything.example', want: true },
  ];
  for (const r of table) {
    it(r.name, () => {
      const h =
        r.list === undefined && r.bind === undefined
          ? defaults
          : parseAllowedHosts(r.list ?? '', r.bind ?? '127.0.0.1');
      assert.equal(h.allows(r.host), r.want);
    });
  }
  for (const bad of ['bad_name', 'a..b', '*.', 'http://x']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(() => parseAllowedHosts(bad, '127.0.0.1'), /is not a host name/));
  }
  it('hostnameOf strips ports and brackets', () => {
    assert.deepEqual(['a.example:80', '[::1]:3000', '::1', 'A.EXAMPLE'].map(hostnameOf), [
      'a.example',
      '::1',
      '::1',
      'a.example',
    ]);
  });
});
