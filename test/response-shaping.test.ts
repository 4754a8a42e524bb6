// COMPRESSION=on and RESPONSE_CACHE_BYTES on the whole platform with a real agent process: what is
// compressed and what is not, the bytes a client decodes, what the cache answers without asking the
// agent (its `served` count says), and what it never keeps.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { bootPlatform, waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);

interface Doc {
  agentId: string;
  served: number;
  text: string;
}

describe('COMPRESSION=on, RESPONSE_CACHE_BYTES=1M', () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({
      MIN_INSTANCES: '1',
      COMPRESSION: 'on',
      COMPRESSION_MIN_BYTES: '1024',
      RESPONSE_CACHE_BYTES: '1M',
    });
    await p.controller.waitForReady(1, 15_000);
  });
  after(() => p?.stop());

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${p.lbUrl}${path}`, { headers });
    const raw = Buffer.from(await res.body.arrayBuffer());
    const coding = res.headers['content-encoding'];
    const body = coding === 'br' ? brotliDecompressSync(raw) : coding === 'gzip' ? gunzipSync(raw) : raw;
    return { status: res.statusCode, headers: res.headers, raw, text: body.toString() };
  };
  const doc = (r: { text: string }) => JSON.parse(r.text) as Doc;

  it('a big JSON answer goes in brotli or gzip as the client prefers, and decodes to the agent’s bytes', async () => {
    const plain = await get('/document?bytes=20000');
    assert.equal(plain.headers['content-encoding'], undefined, 'a client that takes no coding gets none');
    assert.equal(plain.headers['content-length'], String(plain.raw.length));
    for (const [accept, want] of [
      ['gzip, deflate, br', 'br'],
      ['gzip', 'gzip'],
      ['br;q=0.5, gzip', 'gzip'],
    ] as const) {
      const r = await get('/document?bytes=20000', { 'accept-encoding': accept });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], want, accept);
      assert.equal(r.headers['content-length'], String(r.raw.length), 'the compressed body’s own length');
      assert.match(String(r.headers.vary), /accept-encoding/i);
      const d = doc(r);
      assert.equal(d.text.length, doc(plain).text.length, 'the whole text arrives');
      assert.ok(r.raw.length * 2 < plain.raw.length, `${want}: ${r.raw.length} bytes of ${plain.raw.length}`);
    }
  });

  it('an answer past the inline size (64 KiB) is compressed on zlib’s thread pool, whole, with its own length', async () => {
    for (const accept of ['gzip', 'br']) {
      const r = await get('/document?bytes=300000', { 'accept-encoding': accept });
      assert.equal(r.headers['content-encoding'], accept);
      assert.equal(r.headers['content-length'], String(r.raw.length));
      assert.ok(
        doc(r).text.length > 299_000 && r.raw.length * 2 < 300_000,
        `${accept}: ${r.raw.length} bytes`,
      );
    }
  });

  it('server-sent events, answers below COMPRESSION_MIN_BYTES and HEAD pass as they are', async () => {
    const sse = await get('/stream?n=3&ms=0', { 'accept-encoding': 'br, gzip' });
    assert.equal(sse.headers['content-encoding'], undefined);
    assert.equal(sse.text.match(/^event: step$/gm)?.length, 3);
    const small = await get('/document?bytes=500', { 'accept-encoding': 'br, gzip' });
    assert.equal(small.headers['content-encoding'], undefined);
    assert.equal(doc(small).text.length > 0, true);
    const head = await request(`${p.lbUrl}/document?bytes=20000`, {
      method: 'HEAD',
      headers: { 'accept-encoding': 'br' },
    });
    await head.body.dump();
    assert.equal(head.headers['content-encoding'], undefined);
  });

  it('curl --compressed gets the document whole', { skip: requireService('curl') }, async () => {
    const { stdout } = await exec('curl', ['-sS', '--compressed', `${p.lbUrl}/document?bytes=50000`]);
    const d = JSON.parse(stdout) as Doc;
    assert.ok(d.text.length > 49_000);
  });

  it('a GET an agent marks public, max-age is answered from memory: the agent is not asked again', async () => {
    const first = await get('/document?bytes=3000&maxAge=60');
    assert.equal(first.headers['x-yggdrasil-cache'], 'miss');
    const second = await get('/document?bytes=3000&maxAge=60');
    assert.equal(second.headers['x-yggdrasil-cache'], 'hit');
    assert.equal(doc(second).served, doc(first).served, 'the same answer, not a new one');
    assert.equal(second.text, first.text);
    assert.match(String(second.headers.age), /^\d+$/);
    assert.equal(second.headers['set-cookie'], undefined, 'a stored answer carries no session cookie');
    // Compressed variants are kept apart and served compressed.
    const br1 = await get('/document?bytes=3000&maxAge=60', { 'accept-encoding': 'br' });
    const br2 = await get('/document?bytes=3000&maxAge=60', { 'accept-encoding': 'br' });
    assert.deepEqual(
      [br1.headers['x-yggdrasil-cache'], br2.headers['x-yggdrasil-cache'], br2.headers['content-encoding']],
      ['miss', 'hit', 'br'],
    );
    assert.equal(br2.text, br1.text);
    assert.ok(doc(br1).served > doc(first).served, 'the brotli variant was a request of its own');
  });

  it('never for a session, Authorization, no-store answers; no-cache fetches anew; Vary is honoured', async () => {
    const url = '/document?bytes=2000&maxAge=60&vary=Accept-Language';
    const base = doc(await get(url, { 'accept-language': 'en' })).served;
    const served = async (headers: Record<string, string>) => {
      const r = await get(url, { 'accept-language': 'en', ...headers });
      return { served: doc(r).served, cache: r.headers['x-yggdrasil-cache'] };
    };
    assert.deepEqual(await served({}), { served: base, cache: 'hit' });
    const withSession = await served({ 'x-session-id': 'shaping-1' });
    assert.ok(withSession.served > base && withSession.cache === undefined, JSON.stringify(withSession));
    const withCookie = await served({ cookie: 'ygg_session=shaping-2' });
    assert.ok(withCookie.served > withSession.served && withCookie.cache === undefined);
    const withAuth = await served({ authorization: 'Bearer someone' });
    assert.ok(withAuth.served > withCookie.served && withAuth.cache === undefined);
    const refreshed = await served({ 'cache-control': 'no-cache' });
    assert.ok(refreshed.served > withAuth.served && refreshed.cache === 'miss', JSON.stringify(refreshed));
    assert.deepEqual(
      await served({}),
      { served: refreshed.served, cache: 'hit' },
      'the refreshed answer is kept',
    );
    const de = await get(url, { 'accept-language': 'de' });
    assert.equal(de.headers['x-yggdrasil-cache'], 'miss', 'another Accept-Language is another variant');
    const noStore = [await get('/document?bytes=2000'), await get('/document?bytes=2000')];
    assert.ok(doc(noStore[1]!).served > doc(noStore[0]!).served);
    assert.equal(noStore[1]!.headers['x-yggdrasil-cache'], undefined);
  });

  it('a client that leaves in the middle of a compressed answer frees its slot', async () => {
    const res = await request(`${p.lbUrl}/document?bytes=8000000`, {
      headers: { 'accept-encoding': 'gzip' },
    });
    assert.equal(res.headers['content-encoding'], 'gzip');
    for await (const _chunk of res.body) break; // one chunk, then gone
    await waitFor('the slot to be free', () => p.router.concurrency() === 0, 10_000);
    const next = await get('/document?bytes=20000', { 'accept-encoding': 'br' });
    assert.equal(doc(next).text.length > 19_000, true, 'the next compressed answer is whole');
  });

  it('counts hits, stores and compressed answers in /metrics', async () => {
    const text = await (await request(`${p.lbUrl}/metrics`)).body.text();
    for (const series of [
      /yggdrasil_router_cache_total\{result="hit"\} [1-9]/,
      /yggdrasil_router_cache_total\{result="stored"\} [1-9]/,
      /yggdrasil_router_compressed_responses_total\{encoding="br"\} [1-9]/,
      /yggdrasil_router_cache_bytes [1-9]/,
    ]) {
      assert.match(text, series);
    }
  });
});
