import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cacheUseOf, parseCacheControl, storableOf, varyKey } from './cache-policy.js';

describe('parseCacheControl', () => {
  it('reads the directives a shared cache acts on, ignoring the rest', () => {
    assert.deepEqual(parseCacheControl('Public, MAX-AGE=60, s-maxage="120", immutable'), {
      public: true,
      private: false,
      noStore: false,
      noCache: false,
      maxAge: 60,
      sMaxAge: 120,
    });
    assert.equal(parseCacheControl('max-age=-1').maxAge, undefined);
    assert.equal(parseCacheControl('max-age=abc').maxAge, undefined);
    assert.deepEqual(parseCacheControl(undefined), {
      public: false,
      private: false,
      noStore: false,
      noCache: false,
    });
  });
});

describe('cacheUseOf', () => {
  const cases: Array<{ name: string; method?: string; headers: Record<string, string>; want: string }> = [
    { name: 'a plain GET', headers: {}, want: 'use' },
    { name: 'a POST', method: 'POST', headers: {}, want: 'bypass' },
    { name: 'a HEAD', method: 'HEAD', headers: {}, want: 'bypass' },
    { name: 'Authorization', headers: { authorization: 'Bearer k' }, want: 'bypass' },
    { name: 'X-Session-Id', headers: { 'x-session-id': 's1' }, want: 'bypass' },
    { name: 'the session cookie', headers: { cookie: 'a=1; ygg_session=s1' }, want: 'bypass' },
    { name: 'another cookie', headers: { cookie: 'theme=dark' }, want: 'use' },
    { name: 'a cookie that only ends in the name', headers: { cookie: 'not_ygg_session=1' }, want: 'use' },
    { name: 'no-store', headers: { 'cache-control': 'no-store' }, want: 'bypass' },
    { name: 'no-cache', headers: { 'cache-control': 'no-cache' }, want: 'refresh' },
    { name: 'max-age=0', headers: { 'cache-control': 'max-age=0' }, want: 'refresh' },
    { name: 'Pragma: no-cache', headers: { pragma: 'no-cache' }, want: 'refresh' },
  ];
  for (const c of cases) it(c.name, () => assert.equal(cacheUseOf(c.method ?? 'GET', c.headers), c.want));
});

describe('storableOf', () => {
  const cases: Array<{ name: string; status?: number; headers: Record<string, string>; want: unknown }> = [
    {
      name: 'public, max-age',
      headers: { 'cache-control': 'public, max-age=60' },
      want: { ttlMs: 60_000, vary: [] },
    },
    {
      name: 's-maxage wins',
      headers: { 'cache-control': 'public, max-age=60, s-maxage=5' },
      want: { ttlMs: 5000, vary: [] },
    },
    {
      name: 'Age is taken off',
      headers: { 'cache-control': 'public, max-age=60', age: '50' },
      want: { ttlMs: 10_000, vary: [] },
    },
    { name: 'already stale', headers: { 'cache-control': 'public, max-age=60', age: '60' }, want: undefined },
    { name: 'max-age alone (no public)', headers: { 'cache-control': 'max-age=60' }, want: undefined },
    { name: 'public alone (no lifetime)', headers: { 'cache-control': 'public' }, want: undefined },
    { name: 'private', headers: { 'cache-control': 'public, private, max-age=60' }, want: undefined },
    { name: 'no-store', headers: { 'cache-control': 'public, no-store, max-age=60' }, want: undefined },
    { name: 'no-cache', headers: { 'cache-control': 'public, no-cache, max-age=60' }, want: undefined },
    {
      name: 'Set-Cookie',
      headers: { 'cache-control': 'public, max-age=60', 'set-cookie': 'a=1' },
      want: undefined,
    },
    { name: 'Vary: *', headers: { 'cache-control': 'public, max-age=60', vary: '*' }, want: undefined },
    {
      name: 'Vary names',
      headers: { 'cache-control': 'public, max-age=60', vary: 'Accept-Language, Origin' },
      want: { ttlMs: 60_000, vary: ['accept-language', 'origin'] },
    },
    {
      name: 'a 404 with a lifetime',
      status: 404,
      headers: { 'cache-control': 'public, max-age=1' },
      want: { ttlMs: 1000, vary: [] },
    },
    { name: 'a 500 never', status: 500, headers: { 'cache-control': 'public, max-age=60' }, want: undefined },
    { name: 'a 206 never', status: 206, headers: { 'cache-control': 'public, max-age=60' }, want: undefined },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(storableOf(c.status ?? 200, c.headers), c.want));
});

describe('varyKey', () => {
  it('differs when a named header differs, and not for others', () => {
    const k = (h: Record<string, string>) => varyKey(['accept-language'], h);
    assert.equal(
      k({ 'accept-language': 'en', 'user-agent': 'a' }),
      k({ 'accept-language': 'en', 'user-agent': 'b' }),
    );
    assert.notEqual(k({ 'accept-language': 'en' }), k({ 'accept-language': 'de' }));
    assert.equal(k({ 'accept-language': '' }), k({}), 'absent and empty are the same value');
  });
});
