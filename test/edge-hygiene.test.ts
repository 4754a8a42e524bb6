// Edge hygiene of the platform's own routes (issue 10): ALLOWED_HOSTS refuses another Host on the
// status page, its feed and the admin API (DNS rebinding), but not on /health or on proxied traffic;
// the feed compares the Origin with its port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { withCountingPlatform } from './helpers/agents.js';

const get = async (url: string, headers: Record<string, string>) => {
  const r = await request(url, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, text };
};

const handshake = (p: Platform, headers: Record<string, string>) =>
  get(`${p.lbUrl}/_yggdrasil/socket.io/?EIO=4&transport=polling`, headers);

describe('ALLOWED_HOSTS and Origin', () => {
  it('by default: localhost names and loopback addresses only, on the platform’s own routes', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const port = new URL(p.controllerUrl).port;
        const evil = { host: `rebind.evil.example:${port}` };
        const status = await get(`${p.controllerUrl}/status`, evil);
        assert.equal(status.status, 403);
        assert.match(status.text, /YGG_ERR_HOST_NOT_ALLOWED/);
        assert.equal((await get(`${p.controllerUrl}/status`, { host: `localhost:${port}` })).status, 200);
        assert.equal((await get(`${p.controllerUrl}/health`, evil)).status, 200, '/health answers any Host');
        assert.equal((await get(`${p.lbUrl}/status`, { host: 'rebind.evil.example' })).status, 403);
        assert.equal(
          (await get(`${p.lbUrl}/api/x`, { host: 'customer.example' })).status,
          200,
          'proxied traffic is the agents’',
        );
        assert.equal((await handshake(p, { host: 'rebind.evil.example' })).status, 403, 'the feed too');
        assert.equal((await handshake(p, {})).status, 200);
      },
    );
  });

  it('a listed name is allowed and the defaults are replaced', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', ALLOWED_HOSTS: 'ygg.example' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        assert.equal((await get(`${p.controllerUrl}/status`, { host: 'ygg.example' })).status, 200);
        assert.equal((await get(`${p.controllerUrl}/status`, { host: 'localhost' })).status, 403);
      },
    );
  });

  it('the feed compares the Origin with its port: another port of this host is another site', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const here = new URL(p.lbUrl);
        assert.equal((await handshake(p, { origin: `http://${here.host}` })).status, 200);
        assert.equal((await handshake(p, { origin: `http://${here.hostname}:1` })).status, 403);
      },
    );
  });
});
