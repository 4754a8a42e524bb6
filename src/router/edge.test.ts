import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRequest, type RequestHead } from './edge.js';

const head = (over: Partial<RequestHead>): RequestHead => ({
  method: 'GET',
  url: '/',
  httpVersion: '1.1',
  rawHeaders: ['Host', 'lb.example'],
  ...over,
});

describe('checkRequest', () => {
  const cases: Array<{ name: string; head: RequestHead; want: string }> = [
    { name: 'origin form passes', head: head({ url: '/a?b=1' }), want: 'pass /a?b=1' },
    {
      name: 'OPTIONS * is for the server',
      head: head({ method: 'OPTIONS', url: '*' }),
      want: 'server-options',
    },
    { name: 'GET * is refused', head: head({ url: '*' }), want: 'refuse asterisk' },
    {
      name: 'absolute form naming the Host becomes origin form',
      head: head({ url: 'http://LB.example/x?y' }),
      want: 'pass /x?y',
    },
    { name: 'absolute form without a path', head: head({ url: 'http://lb.example' }), want: 'pass /' },
    {
      name: 'absolute form naming another authority is refused',
      head: head({ url: 'http://evil.example/x' }),
      want: 'refuse evil.example',
    },
    {
      name: 'CONNECT is refused',
      head: head({ method: 'CONNECT', url: 'evil.example:443' }),
      want: 'refuse CONNECT',
    },
    { name: 'authority form without CONNECT', head: head({ url: 'lb.example:80' }), want: 'refuse path' },
    {
      name: 'two Host headers',
      head: head({ rawHeaders: ['Host', 'a', 'host', 'b'] }),
      want: 'refuse more than one Host',
    },
    { name: 'HTTP/1.1 without Host', head: head({ rawHeaders: [] }), want: 'refuse needs a Host' },
    {
      name: 'HTTP/1.0 without Host passes',
      head: head({ httpVersion: '1.0', rawHeaders: [] }),
      want: 'pass /',
    },
    {
      name: 'HTTP/1.0 with chunked',
      head: head({ httpVersion: '1.0', rawHeaders: ['Host', 'x', 'Transfer-Encoding', 'chunked'] }),
      want: 'refuse chunked',
    },
    {
      name: 'HTTP/1.1 with chunked passes',
      head: head({ rawHeaders: ['Host', 'x', 'transfer-encoding', 'gzip, chunked'] }),
      want: 'pass /',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = checkRequest(c.head);
      const [kind, detail = ''] = c.want.split(/ (.*)/);
      assert.equal(v.kind, kind);
      if (v.kind === 'pass') assert.equal(v.target, detail);
      if (v.kind === 'refuse') {
        assert.equal(v.error.code, 'YGG_ERR_BAD_REQUEST');
        assert.equal(v.error.status, 400);
        assert.ok(v.error.message.includes(detail), `"${v.error.message}" should mention "${detail}"`);
      }
    });
  }
});
