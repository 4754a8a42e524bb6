import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CompressionAsk,
  compressibleType,
  encodedHeaders,
  encodingFor,
  negotiateEncoding,
} from './compression.js';

describe('negotiateEncoding', () => {
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, deflate, br, zstd', 'br'],
    ['gzip;q=1.0, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['gzip;q=0, br;q=0', undefined],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['gzip;q=0, *', 'br'],
    ['br;q=0, *;q=0.5', 'gzip'],
    ['deflate', undefined],
    ['GZIP ; Q=0.8 , BR ; q=0.9', 'br'],
    ['gzip;q=2', 'gzip'],
  ];
  for (const [accept, want] of cases) {
    it(`${JSON.stringify(accept)} → ${want ?? 'none'}`, () => assert.equal(negotiateEncoding(accept), want));
  }
});

describe('compressibleType', () => {
  const cases: Array<[string | undefined, boolean]> = [
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['application/problem+json', true],
    ['text/html; charset=utf-8', true],
    ['TEXT/PLAIN', true],
    ['application/javascript', true],
    ['image/svg+xml', true],
    ['application/xml', true],
    ['text/event-stream', false],
    ['text/event-stream; charset=utf-8', false],
    ['image/png', false],
    ['application/octet-stream', false],
    ['application/jsonx', false],
    [undefined, false],
  ];
  for (const [type, want] of cases) {
    it(`${type} → ${want}`, () => assert.equal(compressibleType(type), want));
  }
});

describe('encodingFor', () => {
  const ask = (over: Partial<CompressionAsk> = {}, headers: Record<string, string> = {}): CompressionAsk => ({
    method: 'GET',
    status: 200,
    accept: 'gzip, br',
    minBytes: 1024,
    ...over,
    headers: { 'content-type': 'application/json', 'content-length': '4096', ...headers },
  });
  const cases: Array<{ name: string; ask: CompressionAsk; want: string | undefined }> = [
    { name: 'a big JSON answer to a client that takes br', ask: ask(), want: 'br' },
    { name: 'gzip only', ask: ask({ accept: 'gzip' }), want: 'gzip' },
    { name: 'a client that takes neither', ask: ask({ accept: undefined }), want: undefined },
    { name: 'below the minimum', ask: ask({}, { 'content-length': '1023' }), want: undefined },
    { name: 'at the minimum', ask: ask({}, { 'content-length': '1024' }), want: 'br' },
    { name: 'no Content-Length (a stream)', ask: ask({}, { 'content-length': '' }), want: undefined },
    { name: 'server-sent events', ask: ask({}, { 'content-type': 'text/event-stream' }), want: undefined },
    { name: 'already encoded', ask: ask({}, { 'content-encoding': 'gzip' }), want: undefined },
    { name: 'identity coding counts as none', ask: ask({}, { 'content-encoding': 'identity' }), want: 'br' },
    { name: 'no-transform', ask: ask({}, { 'cache-control': 'public, no-transform' }), want: undefined },
    { name: 'a HEAD', ask: ask({ method: 'HEAD' }), want: undefined },
    { name: 'a 204', ask: ask({ status: 204 }), want: undefined },
    { name: 'a 206', ask: ask({ status: 206 }), want: undefined },
    { name: 'a 304', ask: ask({ status: 304 }), want: undefined },
    { name: 'an error answer is compressed too', ask: ask({ status: 500 }), want: 'br' },
    { name: 'an image', ask: ask({}, { 'content-type': 'image/png' }), want: undefined },
  ];
  for (const c of cases) it(c.name, () => assert.equal(encodingFor(c.ask), c.want));
});

describe('encodedHeaders', () => {
  it('drops the length, names the coding, adds Vary and weakens the ETag', () => {
    assert.deepEqual(
      encodedHeaders({ 'content-length': '10', etag: '"abc"', 'content-type': 'text/plain' }, 'gzip'),
      { 'content-type': 'text/plain', 'content-encoding': 'gzip', vary: 'accept-encoding', etag: 'W/"abc"' },
    );
  });
  it('appends to a Vary, once, and keeps a weak ETag as it is', () => {
    assert.equal(encodedHeaders({ vary: 'Origin' }, 'br').vary, 'Origin, accept-encoding');
    assert.equal(encodedHeaders({ vary: 'Accept-Encoding' }, 'br').vary, 'Accept-Encoding');
    assert.equal(encodedHeaders({ vary: '*' }, 'br').vary, '*');
    assert.equal(encodedHeaders({ etag: 'W/"x"' }, 'br').etag, 'W/"x"');
  });
});
