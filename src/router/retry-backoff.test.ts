import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRetryable, type RetryQuestion, retryDelay } from './retry-backoff.js';

describe('retryDelay', () => {
  const table: Array<{
    name: string;
    attempt: number;
    random: number;
    base?: number;
    cap?: number;
    want: number;
  }> = [
    { name: 'first retry, top of the range', attempt: 1, random: 0.5, want: 12.5 },
    { name: 'random 0 waits not at all', attempt: 3, random: 0, want: 0 },
    { name: 'second retry doubles the range', attempt: 2, random: 0.5, want: 25 },
    { name: 'fourth retry: 25 × 8 = 200', attempt: 4, random: 0.5, want: 100 },
    { name: 'fifth retry is capped at 250', attempt: 5, random: 0.5, want: 125 },
    { name: 'a huge attempt stays at the cap', attempt: 10_000, random: 0.5, want: 125 },
    { name: 'custom base and cap', attempt: 3, random: 0.25, base: 100, cap: 1000, want: 100 },
    { name: 'custom cap below base', attempt: 1, random: 0.5, base: 100, cap: 40, want: 20 },
  ];
  for (const row of table) {
    it(row.name, () => assert.equal(retryDelay(row.attempt, row.random, row.base, row.cap), row.want));
  }

  it('stays below the cap for random just under 1', () => {
    assert.ok(retryDelay(20, 0.999_999) < 250);
  });

  const bad: Array<{ name: string; args: [number, number, number?, number?]; want: RegExp }> = [
    { name: 'attempt 0', args: [0, 0.5], want: /attempt=0/ },
    { name: 'fractional attempt', args: [1.5, 0.5], want: /attempt=1.5/ },
    { name: 'random 1', args: [1, 1], want: /random=1/ },
    { name: 'random NaN', args: [1, Number.NaN], want: /random=NaN/ },
    { name: 'negative base', args: [1, 0.5, -1], want: /baseMs=-1/ },
    { name: 'infinite cap', args: [1, 0.5, 25, Number.POSITIVE_INFINITY], want: /capMs=Infinity/ },
  ];
  for (const row of bad) {
    it(`refuses ${row.name}`, () =>
      assert.throws(() => retryDelay(...row.args), { name: 'TypeError', message: row.want }));
  }
});

describe('isRetryable', () => {
  const table: Array<{ name: string; input: RetryQuestion; want: boolean }> = [
    {
      name: 'POST that never reached an instance',
      input: { method: 'POST', reachedUpstream: false, attempt: 1, maxRetries: 2 },
      want: true,
    },
    {
      name: 'POST that reached the instance is never duplicated',
      input: { method: 'POST', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: false,
    },
    {
      name: 'PUT that reached the instance',
      input: { method: 'PUT', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: false,
    },
    {
      name: 'DELETE that reached the instance',
      input: { method: 'DELETE', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: false,
    },
    {
      name: 'GET that reached the instance',
      input: { method: 'GET', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: true,
    },
    {
      name: 'HEAD that reached the instance',
      input: { method: 'HEAD', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: true,
    },
    {
      name: 'method case does not matter',
      input: { method: 'get', reachedUpstream: true, attempt: 1, maxRetries: 2 },
      want: true,
    },
    {
      name: 'the last allowed retry (attempt = maxRetries)',
      input: { method: 'GET', reachedUpstream: false, attempt: 2, maxRetries: 2 },
      want: true,
    },
    {
      name: 'retries used up (attempt > maxRetries)',
      input: { method: 'GET', reachedUpstream: false, attempt: 3, maxRetries: 2 },
      want: false,
    },
    {
      name: 'maxRetries 0 never retries',
      input: { method: 'GET', reachedUpstream: false, attempt: 1, maxRetries: 0 },
      want: false,
    },
  ];
  for (const row of table) {
    it(row.name, () => assert.equal(isRetryable(row.input), row.want));
  }
});
