import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { parseAddressList } from '../core/address-list.js';
import { downstreamHeaders, upstreamHeaders } from './headers.js';

const req = (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
  ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

const none = parseAddressList('');
const local = parseAddressList('127.0.0.0/8');

describe('upstreamHeaders', () => {
  const spoof = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-host': 'evil.example',
    'x-forwarded-proto': 'https',
    forwarded: 'for=6.6.6.6',
  };
  const cases: Array<{
    name: string;
    headers: Record<string, string>;
    peer?: string;
    trusted?: typeof none;
    sessionId?: string;
    want: Record<string, string | undefined>;
  }> = [
    {
      name: 'keeps Host, sets the forwarding headers from the peer',
      headers: { host: 'public.example:8443', accept: '*/*' },
      want: {
        host: 'public.example:8443',
        accept: '*/*',
        'x-forwarded-for': '127.0.0.1',
        'x-forwarded-host': 'public.example:8443',
        'x-forwarded-proto': 'http',
        forwarded: 'for=127.0.0.1;host="public.example:8443";proto=http',
      },
    },
    {
      name: 'replaces what an untrusted client claims',
      headers: { host: 'lb', ...spoof },
      want: {
        'x-forwarded-for': '127.0.0.1',
        'x-forwarded-host': 'lb',
        'x-forwarded-proto': 'http',
        forwarded: 'for=127.0.0.1;host=lb;proto=http',
      },
    },
    {
      name: 'keeps and extends what a trusted proxy says',
      headers: { host: 'lb', ...spoof },
      trusted: local,
      want: {
        'x-forwarded-for': '6.6.6.6, 127.0.0.1',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
        forwarded: 'for=6.6.6.6, for=127.0.0.1;host=lb;proto=https',
      },
    },
    {
      name: 'a trusted list that does not hold the peer trusts nothing',
      headers: { host: 'lb', ...spoof },
      peer: '192.168.1.9',
      trusted: local,
      want: { 'x-forwarded-for': '192.168.1.9', 'x-forwarded-proto': 'http' },
    },
    {
      name: 'IPv6 peers are bracketed and quoted in Forwarded; mapped IPv4 is unmapped',
      headers: { host: 'lb' },
      peer: '::1',
      want: { forwarded: 'for="[::1]";host=lb;proto=http', 'x-forwarded-for': '::1' },
    },
    {
      name: 'an IPv4-mapped peer reads as IPv4',
      headers: { host: 'lb' },
      peer: '::ffff:10.1.2.3',
      want: { 'x-forwarded-for': '10.1.2.3' },
    },
    {
      name: 'drops hop-by-hop headers, those Connection names, and Expect',
      headers: {
        host: 'lb',
        connection: 'keep-alive, x-private',
        'x-private': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'transfer-encoding': 'chunked',
        expect: '100-continue',
        upgrade: 'websocket',
        'x-kept': 'yes',
      },
      want: {
        connection: undefined,
        'x-private': undefined,
        'keep-alive': undefined,
        te: undefined,
        'transfer-encoding': undefined,
        expect: undefined,
        upgrade: undefined,
        'x-kept': 'yes',
      },
    },
    {
      name: 'passes the session the router chose as X-Session-Id',
      headers: { host: 'lb', 'x-session-id': 'old' },
      sessionId: 'agent-1.abcd1234.x',
      want: { 'x-session-id': 'agent-1.abcd1234.x' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = upstreamHeaders(req(c.headers, c.peer), {
        trustedProxies: c.trusted ?? none,
        sessionId: c.sessionId,
      });
      for (const [k, v] of Object.entries(c.want)) assert.equal(out[k], v, k);
    });
  }
});

describe('downstreamHeaders', () => {
  it('drops hop-by-hop headers of the answer and keeps the rest', () => {
    const out = downstreamHeaders({
      connection: 'close',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'content-type': 'text/plain',
      'set-cookie': ['a=1', 'b=2'],
    });
    assert.deepEqual(out, { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
  });
});
