import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addKey, KeyRing, parseKey, readKeys, revokeKey } from './keys.js';

const dir = mkdtempSync(join(tmpdir(), 'ygg-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('API keys', () => {
  it('a key is stored as a hash only, in a file only its owner may read, and verifies', async () => {
    const file = join(dir, 'a', 'auth.json');
    const key = await addKey(file, 'ops', 'admin');
    assert.ok(parseKey(key), key);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'a')).mode & 0o777, 0o700);
    const [rec] = readKeys(file);
    assert.equal(rec?.name, 'ops');
    assert.ok(!JSON.stringify(readKeys(file)).includes(parseKey(key)!.secret), 'the secret is not stored');
    const ring = new KeyRing(file);
    assert.deepEqual(await ring.verify(key), { name: 'ops', role: 'admin' });
    assert.deepEqual(await ring.verify(key), { name: 'ops', role: 'admin' }, 'again, from the cache');
  });

  it('refuses a wrong secret, an unknown id and garbage', async () => {
    const file = join(dir, 'b.json');
    const key = await addKey(file, 'grafana', 'read');
    const ring = new KeyRing(file);
    const { id, secret } = parseKey(key)!;
    const flipped = `ygg_${id}_${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
    assert.equal(await ring.verify(flipped), undefined);
    assert.equal(await ring.verify(`ygg_000000000000_${secret}`), undefined);
    assert.equal(await ring.verify('hunter2'), undefined);
  });

  it('a revoked key stops working in a running process once the file is reread', async () => {
    const file = join(dir, 'c.json');
    const key = await addKey(file, 'ci', 'admin');
    const ring = new KeyRing(file);
    assert.ok(await ring.verify(key));
    await new Promise((r) => setTimeout(r, 20)); // a new mtime
    assert.equal(revokeKey(file, 'ci'), true);
    ring.refresh();
    assert.equal(await ring.verify(key), undefined);
    assert.equal(revokeKey(file, 'ci'), false, 'nothing left to revoke');
  });

  it('refuses a duplicate or malformed name, and a file that is not its own', async () => {
    const file = join(dir, 'd.json');
    await addKey(file, 'a', 'read');
    await assert.rejects(addKey(file, 'a', 'read'), /a key named a exists/);
    await assert.rejects(addKey(file, '-x', 'read'), /--name "-x"/);
    writeFileSync(join(dir, 'e.json'), '{"keys": 3}');
    assert.throws(() => readKeys(join(dir, 'e.json')), /is not an auth file/);
    writeFileSync(join(dir, 'f.json'), 'nope');
    assert.throws(() => readKeys(join(dir, 'f.json')), /is not JSON/);
    assert.deepEqual(readKeys(join(dir, 'missing.json')), []);
  });
});
