import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSameHost } from './origin.js';

describe('isSameHost', () => {
  const table: Array<{ name: string; origin: string | undefined; host: string | undefined; want: boolean }> =
    [
      { name: 'no Origin (CLI, scripts)', origin: undefined, host: '127.0.0.1:8080', want: true },
      { name: 'the page of this port', origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080', want: true },
      {
        name: 'another port of this host is another origin',
        origin: 'http://127.0.0.1:9999',
        host: '127.0.0.1:8080',
        want: false,
      },
      {
        name: 'a proxy that drops the port is refused (keep it: Host $http_host)',
        origin: 'http://ygg.example:8081',
        host: 'ygg.example',
        want: false,
      },
      {
        name: 'the default port written or not',
        origin: 'http://ygg.example',
        host: 'ygg.example:80',
        want: true,
      },
      { name: 'https default port', origin: 'https://ygg.example', host: 'ygg.example', want: true },
      { name: 'another site', origin: 'https://evil.example', host: '127.0.0.1:8080', want: false },
      {
        name: 'localhost vs 127.0.0.1 are different sites',
        origin: 'http://localhost:8080',
        host: '127.0.0.1:8080',
        want: false,
      },
      { name: 'an opaque origin (sandboxed frame)', origin: 'null', host: '127.0.0.1:8080', want: false },
      { name: 'an Origin but no Host', origin: 'http://127.0.0.1:8080', host: undefined, want: false },
      { name: 'IPv6', origin: 'http://[::1]:8080', host: '[::1]:8080', want: true },
    ];
  for (const row of table) it(row.name, () => assert.equal(isSameHost(row.origin, row.host), row.want));
});
