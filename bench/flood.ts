// A flood of anonymous Socket.IO handshakes on the load-balancer port (issue 10: 15 000 of them once
// took the process from 154 to 798 MB): how much the platform's memory grows, and how many were let
// in. The feed holds at most 64 connections an address and sends anonymous clients a small greeting.
// Run alone: npx tsx bench/flood.ts
import { Pool } from 'undici';
import { prepareBaseline } from './baseline.js';
import { rssBytes, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { round } from './stats.js';

export interface FloodResult {
  handshakes: number;
  accepted: number;
  refused: number;
  rssBeforeMB: number;
  rssAfterMB: number;
  rssGrowthMB: number;
}

export async function runFlood(handshakes: number, tree?: string): Promise<FloodResult> {
  const p = await startPlatformProcess({ MIN_INSTANCES: '1', MAX_INSTANCES: '1' }, [], tree);
  const pool = new Pool(p.lbUrl, { connections: 64 });
  let accepted = 0;
  let refused = 0;
  try {
    await new Promise((r) => setTimeout(r, 1000)); // settle after start-up
    const before = await rssBytes(p.pid);
    let sent = 0;
    const worker = async () => {
      while (sent < handshakes) {
        sent++;
        try {
          const res = await pool.request({
            path: '/_yggdrasil/socket.io/?EIO=4&transport=polling',
            method: 'GET',
            headersTimeout: 10_000,
          });
          const text = await res.body.text();
          const sid = res.statusCode === 200 ? /"sid":"([^"]+)"/.exec(text)?.[1] : undefined;
          if (!sid) {
            refused++;
            continue;
          }
          // Socket.IO's CONNECT: the server now greets this client (and keeps the greeting until it polls).
          const connect = await pool.request({
            path: `/_yggdrasil/socket.io/?EIO=4&transport=polling&sid=${sid}`,
            method: 'POST',
            body: '40',
            headers: { 'content-type': 'text/plain;charset=UTF-8' },
            headersTimeout: 10_000,
          });
          await connect.body.dump();
          if (connect.statusCode === 200) accepted++;
          else refused++;
        } catch {
          refused++;
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const after = await rssBytes(p.pid);
    return {
      handshakes,
      accepted,
      refused,
      rssBeforeMB: before / 2 ** 20,
      rssAfterMB: after / 2 ** 20,
      rssGrowthMB: (after - before) / 2 ** 20,
    };
  } finally {
    await pool.close();
    await p.stop();
  }
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const n = opts.quick ? 3000 : 15_000;
  const r = await runFlood(n);
  const baseline = opts.quick ? undefined : prepareBaseline();
  let before: FloodResult | undefined;
  try {
    before = baseline ? await runFlood(n, baseline.tree) : undefined;
  } finally {
    baseline?.remove();
  }
  const row = (name: string, x: FloodResult) => ({
    platform: name,
    handshakes: x.handshakes,
    accepted: x.accepted,
    refused: x.refused,
    'RSS before MB': round(x.rssBeforeMB, 1),
    'RSS after MB': round(x.rssAfterMB, 1),
    'growth MB': round(x.rssGrowthMB, 1),
  });
  return {
    title: 'Live feed under a flood of anonymous handshakes',
    rows: [row('now', r), ...(before && baseline ? [row(`before (${baseline.commit})`, before)] : [])],
    notes: [
      'Socket.IO connections that never read: the Engine.IO polling handshake (GET /_yggdrasil/socket.io/?EIO=4&transport=polling) and the Socket.IO CONNECT (POST 40), from one address, 64 at a time, on the load-balancer port of `yggdrasil start`; RSS of the platform process from /proc. Goal: at most 50 MB of growth.',
      'The feed accepts at most 64 open connections an address; anonymous clients get a greeting without chart history or events.',
    ],
    figures: {
      ...r,
      ...(before ? { beforeGrowthMB: before.rssGrowthMB, beforeAccepted: before.accepted } : {}),
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
