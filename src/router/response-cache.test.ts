import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CachedAnswer, ResponseCache } from './response-cache.js';

const answer = (body: string, now: number, ttlMs = 60_000): CachedAnswer => ({
  status: 200,
  headers: { 'content-type': 'text/plain' },
  body: Buffer.from(body),
  storedAt: now,
  expiresAt: now + ttlMs,
});

describe('ResponseCache', () => {
  it('answers a stored URL until it expires, then forgets it', () => {
    const c = new ResponseCache(64 * 1024);
    assert.ok(c.put('/a', '*', [], {}, answer('A', 0, 1000), 0));
    assert.equal(c.get('/a', 'identity', {}, 999)?.body.toString(), 'A');
    assert.equal(c.get('/a', 'identity', {}, 1000), undefined);
    assert.deepEqual([c.entries, c.bytes], [0, 0]);
  });

  it('keeps variants apart by coding and by the headers named in Vary', () => {
    const c = new ResponseCache(64 * 1024);
    c.put('/a', 'br', ['accept-language'], { 'accept-language': 'en' }, answer('br-en', 0), 0);
    c.put('/a', 'gzip', ['accept-language'], { 'accept-language': 'en' }, answer('gz-en', 0), 0);
    c.put('/a', 'br', ['accept-language'], { 'accept-language': 'de' }, answer('br-de', 0), 0);
    const get = (coding: string, lang: string) =>
      c.get('/a', coding, { 'accept-language': lang }, 1)?.body.toString();
    assert.deepEqual(
      [get('br', 'en'), get('gzip', 'en'), get('br', 'de'), get('gzip', 'de'), get('br', 'fr')],
      ['br-en', 'gz-en', 'br-de', undefined, undefined],
    );
    assert.equal(c.entries, 3);
  });

  it('an answer stored for any coding (`*`) serves every client', () => {
    const c = new ResponseCache(64 * 1024);
    c.put('/png', '*', [], {}, answer('bytes', 0), 0);
    assert.equal(c.get('/png', 'br', {}, 1)?.body.toString(), 'bytes');
    assert.equal(c.get('/png', 'identity', {}, 1)?.body.toString(), 'bytes');
  });

  it('the same variant stored again replaces it (the bytes are counted once)', () => {
    const c = new ResponseCache(64 * 1024);
    c.put('/a', '*', [], {}, answer('one', 0), 0);
    const once = c.bytes;
    c.put('/a', '*', [], {}, answer('two', 0), 0);
    assert.equal(c.bytes, once);
    assert.equal(c.get('/a', 'br', {}, 1)?.body.toString(), 'two');
  });

  it('refuses an answer bigger than an eighth of the room, and one already expired', () => {
    const c = new ResponseCache(8 * 1024);
    assert.equal(c.put('/big', '*', [], {}, answer('x'.repeat(1024), 0), 0), false);
    assert.equal(c.put('/old', '*', [], {}, answer('x', 0, 0), 0), false);
    assert.equal(c.entries, 0);
  });

  it('evicts the least recently used URL when full, never going over the room', () => {
    const c = new ResponseCache(8 * 1024);
    const body = 'x'.repeat(600);
    for (let i = 0; i < 8; i++) c.put(`/${i}`, '*', [], {}, answer(body, 0), 0);
    c.get('/0', 'br', {}, 1); // /0 is now the most recently used
    for (let i = 8; i < 12; i++) c.put(`/${i}`, '*', [], {}, answer(body, 0), 0);
    assert.ok(c.bytes <= c.maxBytes, `${c.bytes} bytes used of ${c.maxBytes}`);
    assert.ok(c.get('/0', 'br', {}, 1), 'the recently used URL stays');
    assert.equal(c.get('/1', 'br', {}, 1), undefined, 'the least recently used went first');
    assert.ok(c.get('/11', 'br', {}, 1));
  });

  it('a URL keeps at most 16 variants, dropping its oldest', () => {
    const c = new ResponseCache(1024 * 1024);
    for (let i = 0; i < 20; i++)
      c.put('/a', '*', ['user-agent'], { 'user-agent': `ua${i}` }, answer(String(i), 0), 0);
    assert.equal(c.entries, 16);
    assert.equal(c.get('/a', 'br', { 'user-agent': 'ua0' }, 1), undefined);
    assert.equal(c.get('/a', 'br', { 'user-agent': 'ua19' }, 1)?.body.toString(), '19');
  });
});
