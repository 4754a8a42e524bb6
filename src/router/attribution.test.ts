import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { YggError } from '../core/errors.js';
import { classify, errorFor, type ForwardOutcome, mayRetry, verdictOf } from './attribution.js';

const err = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('classify', () => {
  const tooLarge = new YggError('YGG_ERR_BODY_TOO_LARGE', 'too large');
  const table: Array<{
    name: string;
    error: Error;
    headersSent?: boolean;
    bodyError?: Error;
    want: string;
  }> = [
    { name: 'connection refused: unreached', error: err('ECONNREFUSED'), want: 'unreached' },
    { name: 'connect timeout: unreached', error: err('UPSTREAM_CONNECT_TIMEOUT'), want: 'unreached' },
    {
      name: 'the instance left the pool first: unreached',
      error: err('UPSTREAM_POOL_CLOSED'),
      want: 'unreached',
    },
    { name: 'reset after connecting: the instance', error: err('ECONNRESET'), want: 'failed instance' },
    { name: 'other side closed: the instance', error: err('UPSTREAM_CLOSED'), want: 'failed instance' },
    {
      name: 'a malformed answer: the instance',
      error: err('UPSTREAM_BAD_RESPONSE'),
      want: 'failed instance',
    },
    { name: 'headers timeout', error: err('UPSTREAM_HEADERS_TIMEOUT'), want: 'failed instance timeout' },
    { name: 'body timeout', error: err('UPSTREAM_BODY_TIMEOUT'), want: 'failed instance timeout' },
    {
      name: 'a router error: the router',
      error: new YggError('YGG_ERR_INTERNAL', 'bug'),
      want: 'failed router',
    },
    { name: 'an unsafe header: the router', error: err('UPSTREAM_INVALID_HEADER'), want: 'failed router' },
    {
      name: 'short client body: the client',
      error: err('UPSTREAM_CONTENT_LENGTH_MISMATCH'),
      want: 'failed client',
    },
    {
      name: 'our body stream failed: the client, with its error',
      error: err('UPSTREAM_ABORTED'),
      bodyError: tooLarge,
      want: 'failed client',
    },
    {
      name: 'refused after headers cannot be "unreached"',
      error: err('ECONNREFUSED'),
      headersSent: true,
      want: 'failed instance',
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const o = classify(row.error, { headersSent: row.headersSent ?? false, bodyError: row.bodyError });
      const shown = o.kind === 'failed' ? `failed ${o.by}${o.timeout ? ' timeout' : ''}` : o.kind;
      assert.equal(shown, row.want);
      if (row.bodyError && o.kind === 'failed') assert.equal(o.error, row.bodyError);
    });
  }
});

describe('verdictOf', () => {
  const failed = (by: 'instance' | 'client' | 'router'): ForwardOutcome => ({
    kind: 'failed',
    error: new Error('x'),
    by,
    timeout: false,
    headersSent: false,
  });
  const table: Array<{ name: string; o: ForwardOutcome; count5xx?: boolean; want: string }> = [
    { name: '200 succeeds', o: { kind: 'response', status: 200 }, want: 'success' },
    { name: '404 succeeds (the instance works)', o: { kind: 'response', status: 404 }, want: 'success' },
    { name: '500 is not a gateway failure', o: { kind: 'response', status: 500 }, want: 'success' },
    {
      name: '500 with BREAKER_COUNT_5XX',
      o: { kind: 'response', status: 500 },
      count5xx: true,
      want: 'failure',
    },
    { name: '502 fails', o: { kind: 'response', status: 502 }, want: 'failure' },
    { name: '503 fails', o: { kind: 'response', status: 503 }, want: 'failure' },
    { name: '504 fails', o: { kind: 'response', status: 504 }, want: 'failure' },
    { name: 'unreached fails', o: { kind: 'unreached', error: new Error('x') }, want: 'failure' },
    { name: 'broken by the instance fails', o: failed('instance'), want: 'failure' },
    { name: 'broken by the client is neutral', o: failed('client'), want: 'neutral' },
    { name: 'broken by the router is neutral', o: failed('router'), want: 'neutral' },
    { name: 'client gone is neutral', o: { kind: 'aborted' }, want: 'neutral' },
  ];
  for (const row of table)
    it(row.name, () => assert.equal(verdictOf(row.o, row.count5xx ?? false), row.want));
});

describe('mayRetry', () => {
  const unreached: ForwardOutcome = { kind: 'unreached', error: new Error('refused') };
  const timedOut: ForwardOutcome = {
    kind: 'failed',
    error: new Error('t'),
    by: 'instance',
    timeout: true,
    headersSent: false,
  };
  const base = { bodyStarted: false, attempt: 1, maxRetries: 2, named: false };
  const table: Array<{ name: string; o: ForwardOutcome; c?: Partial<typeof base>; want: boolean }> = [
    { name: 'never reached: yes', o: unreached, want: true },
    { name: 'never reached, last retry spent', o: unreached, c: { attempt: 3 }, want: false },
    { name: 'never reached, MAX_RETRIES=0', o: unreached, c: { maxRetries: 0 }, want: false },
    { name: 'a streamed body already started', o: unreached, c: { bodyStarted: true }, want: false },
    { name: 'a named instance', o: unreached, c: { named: true }, want: false },
    { name: 'a timeout: never (it reached the agent)', o: timedOut, want: false },
    { name: 'a gateway answer: never', o: { kind: 'response', status: 503 }, want: false },
    { name: 'client gone', o: { kind: 'aborted' }, want: false },
  ];
  for (const row of table) it(row.name, () => assert.equal(mayRetry(row.o, { ...base, ...row.c }), row.want));
});

describe('errorFor', () => {
  const f = (over: Partial<Extract<ForwardOutcome, { kind: 'failed' }>>) =>
    ({
      kind: 'failed',
      error: new Error('boom'),
      by: 'instance',
      timeout: false,
      headersSent: false,
      ...over,
    }) as Extract<ForwardOutcome, { kind: 'failed' }>;
  const table: Array<{
    name: string;
    o: Extract<ForwardOutcome, { kind: 'unreached' | 'failed' }>;
    want: string;
  }> = [
    {
      name: 'unreached → 502',
      o: { kind: 'unreached', error: new Error('refused') },
      want: 'YGG_ERR_UPSTREAM 502',
    },
    { name: 'timeout → 504', o: f({ timeout: true }), want: 'YGG_ERR_TIMEOUT 504' },
    { name: 'reset → 502', o: f({}), want: 'YGG_ERR_UPSTREAM 502' },
    { name: 'router → 400', o: f({ by: 'router' }), want: 'YGG_ERR_BAD_REQUEST 400' },
    { name: 'client cut its body → 400', o: f({ by: 'client' }), want: 'YGG_ERR_BAD_REQUEST 400' },
    {
      name: 'our own error is kept (408)',
      o: f({ by: 'client', error: new YggError('YGG_ERR_CLIENT_TIMEOUT', 'slow') }),
      want: 'YGG_ERR_CLIENT_TIMEOUT 408',
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const e = errorFor(row.o, 'agent-1', 1000);
      assert.equal(`${e.code} ${e.status}`, row.want);
    });
  }
});
