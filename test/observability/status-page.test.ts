// The live status page in headless Chromium (the Debian package; playwright-core drives it, never
// downloads one): it loads without console errors, lists the ready instances, and shows a scale-up within
// seconds over its WebSocket, without a reload and without polling. Leaves artifacts/status-page.png.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { addKey } from '../../src/auth/keys.js';
import type { Platform } from '../../src/platform.js';
import { bootPlatform, waitFor } from '../helpers/platform.js';
import { CHROMIUM, requireService } from '../helpers/services.js';
import { ROOT } from './prom-server.js';

const skip = requireService('chromium');
const ARTIFACTS = join(ROOT, 'artifacts');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A page that records what a user would not see: console errors, failed requests, reloads, polling. */
async function watchedPage(browser: Browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 960 } });
  const problems: string[] = [];
  const requests: string[] = [];
  const sockets: string[] = [];
  let loads = 0;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('request', (r) => requests.push(new URL(r.url()).pathname + new URL(r.url()).search));
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('load', () => loads++);
  return { page, problems, requests, sockets, loads: () => loads };
}

const rowOf = (page: Page, id: string, state: string) =>
  page.waitForSelector(`#pool-body tr[data-id="${id}"][data-state="${state}"]`, { timeout: 10_000 });

describe('live status page in headless Chromium', { skip }, () => {
  let p: Platform;
  let browser: Browser;

  before(async () => {
    // SCALE_INTERVAL_MS at its maximum: the autoscaler must not undo the test's own scale-up.
    p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '3', SCALE_INTERVAL_MS: '60000' });
    await p.controller.waitForReady(1, 15_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await p?.stop();
  });

  it('answers JSON to API clients and the page to browsers', async () => {
    const json = await fetch(`${p.lbUrl}/status`);
    assert.match(json.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(((await json.json()) as { readyInstances: number }).readyInstances, 1);
    const html = await fetch(`${p.lbUrl}/status`, { headers: { accept: 'text/html,*/*;q=0.8' } });
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    assert.match(html.headers.get('content-security-policy') ?? '', /script-src 'self' 'nonce-/);
    const body = await html.text();
    assert.match(body, /<script src="\/_yggdrasil\/socket.io\/socket.io.js"><\/script>/);
    // Until the feed's first message arrives the page says it is loading, not "no instances".
    assert.match(body, /id="pool-empty">Loading…</);
    // Self-contained: nothing loaded from another origin (the SVG namespace URI is not a load).
    const external = body.match(/(?:src|href)=["']?(?:https?:)?\/\/[^"' >]+|url\([^)]*\/\/|@import/g);
    assert.equal(external, null, `external resources: ${external}`);
    const asked = await fetch(`${p.lbUrl}/status?format=json`, { headers: { accept: 'text/html' } });
    assert.match(asked.headers.get('content-type') ?? '', /application\/json/);
    const controllerPage = await fetch(`${p.controllerUrl}/`);
    assert.match(controllerPage.headers.get('content-type') ?? '', /text\/html/);
    const controllerJson = await fetch(`${p.controllerUrl}/status`, { headers: { accept: 'text/html' } });
    assert.match(controllerJson.headers.get('content-type') ?? '', /application\/json/);
    for (const base of [p.lbUrl, p.controllerUrl]) {
      const client = await fetch(`${base}/_yggdrasil/socket.io/socket.io.js`);
      assert.equal(client.status, 200, `${base} serves the Socket.IO client`);
      await client.arrayBuffer();
    }
  });

  it('loads on the LB port, lists the ready instance and shows a scale-up live', async () => {
    const w = await watchedPage(browser);
    const started = Date.now();
    await w.page.goto(`${p.lbUrl}/status`);
    await rowOf(w.page, 'agent-1', 'ready');
    const loadMs = Date.now() - started;
    assert.equal(await w.page.textContent('#conn'), 'live');

    // Some traffic, so the tiles and charts move.
    for (let i = 0; i < 40; i++) {
      await (
        await fetch(`${p.lbUrl}/process`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ workMs: i % 5 === 0 ? 30 : 2 }),
        })
      ).arrayBuffer();
    }
    // Polled from here, not evaluated in the page: its CSP (rightly) refuses eval.
    await waitFor('requests/s on the page', async () => Number(await w.page.textContent('#v-rps')) > 0, 5000);

    const asked = Date.now();
    p.controller.setDesired(2, 'test');
    await rowOf(w.page, 'agent-2', 'ready');
    const shownMs = Date.now() - asked;
    assert.equal(await w.page.locator('#pool-body tr').count(), 2);
    // The public port shows no events to an anonymous visitor (they need a key, or the controller port).
    assert.equal(await w.page.locator('#events li').count(), 0);

    // A few seconds of uneven load so the charts have a shape, then keep the picture.
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const burst = 1 + Math.floor(((Date.now() / 700) % 4) * 3);
      await Promise.all(
        Array.from({ length: burst }, async () => {
          const res = await fetch(`${p.lbUrl}/process`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ workMs: 5 * burst }),
          });
          await res.arrayBuffer();
        }),
      );
    }
    await waitFor(
      'a few points on the instance chart',
      async () => ((await w.page.getAttribute('#chart-inst path.l4', 'd')) ?? '').split('L').length >= 3,
      10_000,
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await w.page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });

    assert.deepEqual(w.problems, []);
    assert.equal(w.loads(), 1, 'the page was never reloaded');
    assert.equal(w.sockets.length, 1, `one WebSocket: ${w.sockets.join(', ')}`);
    assert.match(w.sockets[0]!, /\/socket\.io\/\?.*transport=websocket/);
    const after = w.requests.filter((r) => r !== '/status' && r !== '/_yggdrasil/socket.io/socket.io.js');
    assert.deepEqual(
      after.filter((r) => !r.startsWith('/_yggdrasil/socket.io/?EIO=4&transport=websocket')),
      [],
      'no polling: every update came over the WebSocket',
    );
    console.log(
      `# status page: loaded with agent-1 listed in ${loadMs} ms; agent-2 shown ${shownMs} ms after setDesired`,
    );
    await w.page.close();
  });

  it('is served at / on the controller port too', async () => {
    const w = await watchedPage(browser);
    await w.page.goto(`${p.controllerUrl}/`);
    await rowOf(w.page, 'agent-1', 'ready');
    await rowOf(w.page, 'agent-2', 'ready');
    assert.match((await w.page.textContent('header')) ?? '', /controller/);
    assert.ok(((await w.page.textContent('#events')) ?? '').includes('agent-2 is ready'));
    assert.match((await w.page.textContent('#events li.t-scaled')) ?? '', /desired 1 → 2 \(test\)/);
    assert.deepEqual(w.problems, []);
    await w.page.close();
  });

  it('shows why an instance is down: its failure and the last line it printed', async () => {
    const crashing = await bootPlatform({
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '1',
      RESTART_BACKOFF_MS: '5000',
      RESTART_BACKOFF_MAX_MS: '60000',
      AGENT_COMMAND: `${process.execPath} -e "console.error('boom: no model at /models/llama'); process.exit(3)"`,
    });
    try {
      const w = await watchedPage(browser);
      await w.page.goto(`${crashing.controllerUrl}/`);
      const why = await w.page.waitForSelector('#pool-body tr.why', { timeout: 10_000 });
      const text = (await why.textContent()) ?? '';
      assert.match(text, /agent-1 exited with code 3/);
      assert.match(text, /boom: no model at \/models\/llama/);
      assert.equal(await w.page.isHidden('#pool-empty'), true);
      assert.deepEqual(w.problems, []);
      await w.page.close();
    } finally {
      await crashing.stop();
    }
  });
});

describe('live status page with keys, in headless Chromium', { skip }, () => {
  it('asks for a key, and with a read key shows the pool', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-page-auth-'));
    const authFile = join(dir, 'auth.json');
    const key = await addKey(authFile, 'viewer', 'read');
    const p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '1', AUTH_FILE: authFile });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      await p.controller.waitForReady(1, 15_000);
      const page = await browser.newPage();
      await page.goto(`${p.controllerUrl}/`);
      await page.waitForSelector('#key-form:not([hidden])', { timeout: 10_000 });
      assert.equal(await page.textContent('#conn'), 'key needed');
      assert.equal(await page.locator('#pool-body tr').count(), 0, 'nothing is shown without a key');
      await page.fill('#key-input', key);
      await page.click('#key-form button');
      await rowOf(page, 'agent-1', 'ready');
      assert.equal(await page.textContent('#conn'), 'live');
      assert.equal(await page.isHidden('#key-form'), true);
    } finally {
      await browser.close();
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
