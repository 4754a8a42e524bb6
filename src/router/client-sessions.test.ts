import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientSessions } from './client-sessions.js';

describe('ClientSessions', () => {
  it('lets a client hold up to the cap, and its own sessions always', () => {
    const s = new ClientSessions(2, 1000);
    assert.equal(s.admit('a', 's1', 0), true);
    assert.equal(s.admit('a', 's2', 0), true);
    assert.equal(s.admit('a', 's3', 0), false, 'a third is over the cap');
    assert.equal(s.admit('a', 's1', 10), true, 'a held one is fine');
    assert.equal(s.admit('b', 's3', 0), true, 'another client has its own cap');
    assert.equal(s.count('a', 10), 2);
  });

  it('frees a session after SESSION_TTL_MS idle', () => {
    const s = new ClientSessions(1, 1000);
    assert.equal(s.admit('a', 's1', 0), true);
    assert.equal(s.admit('a', 's2', 500), false);
    assert.equal(s.admit('a', 's1', 900), true, 'touched at 900');
    assert.equal(s.admit('a', 's2', 1800), false, 's1 was seen 900 ms ago');
    assert.equal(s.admit('a', 's2', 1901), true, 's1 idle 1001 ms: gone');
    s.sweep(10_000);
    assert.equal(s.count('a', 10_000), 0);
  });
});
