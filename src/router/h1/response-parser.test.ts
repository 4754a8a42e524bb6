import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ResponseHead, ResponseParser } from './response-parser.js';

interface Parsed {
  heads: ResponseHead[];
  body: string;
  ended: boolean;
  error?: string;
  trailing: boolean;
  keepAlive: boolean;
}

/** Feeds `parts` (then the connection's end, when `close`) and records what the parser said. */
function parse(parts: string[], opts: { head?: boolean; close?: boolean } = {}): Parsed {
  const out: Parsed = { heads: [], body: '', ended: false, trailing: false, keepAlive: false };
  const p = new ResponseParser({
    onHead: (h) => out.heads.push(h),
    onBody: (c) => {
      out.body += c.toString('latin1');
    },
    onEnd: () => {
      out.ended = true;
    },
  });
  p.reset(opts.head ?? false);
  try {
    for (const part of parts) p.execute(Buffer.from(part, 'latin1'));
    if (opts.close) p.close();
  } catch (err) {
    out.error = (err as { code: string }).code;
  }
  out.trailing = p.trailing;
  out.keepAlive = p.keepAlive;
  return out;
}

const OK = 'HTTP/1.1 200 OK\r\n';

describe('ResponseParser', () => {
  const table: Array<{
    name: string;
    parts: string[];
    head?: boolean;
    close?: boolean;
    want: {
      status?: number;
      body?: string;
      ended: boolean;
      error?: string;
      keepAlive?: boolean;
      trailing?: boolean;
    };
  }> = [
    {
      name: 'Content-Length body',
      parts: [`${OK}Content-Length: 5\r\n\r\nhello`],
      want: { status: 200, body: 'hello', ended: true, keepAlive: true },
    },
    {
      name: 'chunked body with an extension and trailers',
      parts: [`${OK}Transfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n`],
      want: { status: 200, body: 'hello world', ended: true, keepAlive: true },
    },
    {
      name: 'no length: the body runs to the connection end, never reused',
      parts: [`${OK}\r\nall of it`],
      close: true,
      want: { body: 'all of it', ended: true, keepAlive: false },
    },
    {
      name: 'HEAD: no body whatever the length says',
      parts: [`${OK}Content-Length: 100\r\n\r\n`],
      head: true,
      want: { body: '', ended: true, keepAlive: true },
    },
    { name: '204: no body', parts: ['HTTP/1.1 204 No Content\r\n\r\n'], want: { status: 204, ended: true } },
    {
      name: '304: no body',
      parts: ['HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n'],
      want: { status: 304, ended: true },
    },
    {
      name: '100 Continue and 103 Early Hints are skipped',
      parts: [
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n',
        `${OK}Content-Length: 2\r\n\r\nok`,
      ],
      want: { status: 200, body: 'ok', ended: true },
    },
    {
      name: 'Connection: close is not reused',
      parts: [`${OK}Connection: close\r\nContent-Length: 2\r\n\r\nok`],
      want: { body: 'ok', ended: true, keepAlive: false },
    },
    {
      name: 'HTTP/1.0 is not reused',
      parts: ['HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'],
      want: { ended: true, keepAlive: false },
    },
    {
      name: 'Transfer-Encoding beside Content-Length: chunked wins, not reused',
      parts: [`${OK}Content-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`],
      want: { body: 'ok', ended: true, keepAlive: false },
    },
    {
      name: 'bytes after the answer: trailing, not reused by the connection',
      parts: [`${OK}Content-Length: 2\r\n\r\nokEXTRA`],
      want: { body: 'ok', ended: true, trailing: true },
    },
    {
      name: 'the same Content-Length twice is one length',
      parts: [`${OK}Content-Length: 2\r\nContent-Length: 2\r\n\r\nok`],
      want: { body: 'ok', ended: true },
    },
    {
      name: 'conflicting Content-Length',
      parts: [`${OK}Content-Length: 2\r\nContent-Length: 3\r\n\r\nok`],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'a Content-Length that is not a number',
      parts: [`${OK}Content-Length: 2x\r\n\r\nok`],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'not HTTP',
      parts: ['SSH-2.0-OpenSSH\r\n\r\n'],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'a header line without a colon',
      parts: [`${OK}oops\r\n\r\n`],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'a bad chunk size',
      parts: [`${OK}Transfer-Encoding: chunked\r\n\r\nzz\r\n`],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'a chunk not followed by CRLF',
      parts: [`${OK}Transfer-Encoding: chunked\r\n\r\n2\r\nokX`],
      want: { body: 'ok', ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: '101 to a plain request',
      parts: ['HTTP/1.1 101 Switching Protocols\r\n\r\n'],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
    {
      name: 'closed before answering',
      parts: [],
      close: true,
      want: { ended: false, error: 'UPSTREAM_CLOSED' },
    },
    {
      name: 'closed mid-body',
      parts: [`${OK}Content-Length: 10\r\n\r\nhal`],
      close: true,
      want: { body: 'hal', ended: false, error: 'UPSTREAM_CLOSED' },
    },
    {
      name: 'a head past 16 KiB',
      parts: [`${OK}X-Big: ${'a'.repeat(17 * 1024)}`],
      want: { ended: false, error: 'UPSTREAM_BAD_RESPONSE' },
    },
  ];
  for (const t of table) {
    it(t.name, () => {
      const got = parse(t.parts, { head: t.head ?? false, close: t.close ?? false });
      if (t.want.status !== undefined) assert.equal(got.heads.at(-1)?.status, t.want.status);
      if (t.want.body !== undefined) assert.equal(got.body, t.want.body);
      assert.equal(got.ended, t.want.ended);
      assert.equal(got.error, t.want.error);
      if (t.want.keepAlive !== undefined) assert.equal(got.keepAlive, t.want.keepAlive);
      if (t.want.trailing !== undefined) assert.equal(got.trailing, t.want.trailing);
    });
  }

  it('gives lowercase names, repeated headers as arrays, and the Keep-Alive hint', () => {
    const got = parse([
      `${OK}Content-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n`,
    ]);
    const h = got.heads[0]!;
    assert.deepEqual(h.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(h.headers['content-type'], 'text/plain');
    assert.equal(h.keepAliveMs, 5000);
    assert.equal(h.keepAlive, true);
  });

  it('reads hop-by-hop headers and leaves them out of the answer, with the names Connection lists', () => {
    const got = parse([
      `${OK}Connection: keep-alive, X-Hop\r\nConnection: x-two\r\nKeep-Alive: timeout=3\r\nX-Hop: 1\r\nTE: x\r\nTrailer: y\r\nUpgrade: z\r\nProxy-Authenticate: Basic\r\nX-End: 1\r\nContent-Length: 0\r\n\r\n`,
    ]);
    const h = got.heads[0]!;
    assert.deepEqual(Object.keys(h.headers).sort(), ['content-length', 'x-end', 'x-hop']);
    assert.deepEqual(h.connectionNames, ['x-hop', 'x-two']);
    assert.equal(h.keepAliveMs, 3000);
    assert.equal(h.keepAlive, true);
    assert.deepEqual(
      parse([`${OK}Connection: close\r\nContent-Length: 0\r\n\r\n`]).heads[0]!.connectionNames,
      [],
    );
  });

  it('names in any case are one header; values lose only spaces and tabs around them', () => {
    // Twice: the second answer takes its names from the parser's cache of names already seen.
    for (let round = 0; round < 2; round++) {
      const got = parse([
        `${OK}X-Mixed: a\r\nx-MIXED:\t b \t\r\nX-Empty:\r\nX-Inner: c  d\r\nContent-Length: 0\r\n\r\n`,
      ]);
      const h = got.heads[0]!;
      assert.deepEqual(h.headers['x-mixed'], ['a', 'b']);
      assert.equal(h.headers['x-empty'], '');
      assert.equal(h.headers['x-inner'], 'c  d');
      assert.equal(got.ended, true);
    }
    for (const bad of ['Bad Name: x', ': x', 'NoColon', 'X(y): z']) {
      assert.equal(parse([`${OK}${bad}\r\nContent-Length: 0\r\n\r\n`]).error, 'UPSTREAM_BAD_RESPONSE', bad);
    }
  });

  it('reads the same answer however the bytes are split', () => {
    const answers = [
      `${OK}Content-Length: 11\r\nX-A: 1\r\n\r\nhello world`,
      `${OK}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;e=v\r\n \r\n5\r\nworld\r\n0\r\nT: x\r\n\r\n`,
      `HTTP/1.1 100 Continue\r\n\r\n${OK}Content-Length: 11\r\n\r\nhello world`,
    ];
    fc.assert(
      fc.property(fc.constantFrom(...answers), fc.array(fc.nat(), { maxLength: 8 }), (text, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const parts: string[] = [];
        let at = 0;
        for (const p of points) {
          parts.push(text.slice(at, p));
          at = p;
        }
        parts.push(text.slice(at));
        const got = parse(parts.filter((p) => p.length > 0));
        assert.equal(got.error, undefined);
        assert.equal(got.body, 'hello world');
        assert.equal(got.ended, true);
        assert.equal(got.heads.length, 1);
      }),
      { numRuns: 300 },
    );
  });
});
