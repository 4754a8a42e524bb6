// `yggdrasil events [--follow]`: prints the controller's live feed (docs/live-feed.md) as one line per
// event: the recent events, then, with --follow, each new one as it happens until Ctrl-C.
import { io, type Socket } from 'socket.io-client';
import {
  LIVE_EVENTS,
  LIVE_FEED_PATH,
  type LiveEvent,
  type LiveHello,
  type LiveStats,
} from '../observability/protocol.js';
import { cliToken } from './client.js';

export interface EventsOptions {
  url: string;
  follow?: boolean;
  json?: boolean;
  stats?: boolean;
}

/** `2025-01-02T03:04:05.678Z  scaled             -         desired 1 → 2 (stable)` */
export function formatEvent(e: LiveEvent): string {
  return `${new Date(e.at).toISOString()}  ${e.type.padEnd(19)}  ${(e.instance ?? '-').padEnd(9)} ${e.message}`;
}

export function formatStats(s: LiveStats): string {
  const p95 = s.p95LatencyMs === null ? '-' : `${Math.round(s.p95LatencyMs)}ms`;
  const err = s.errorRatio === null ? '-' : `${(s.errorRatio * 100).toFixed(2)}%`;
  return (
    `${new Date(s.at).toISOString()}  ${'stats'.padEnd(19)}  ${'-'.padEnd(9)} ` +
    `rps=${s.requestsPerSecond.toFixed(1)} p95=${p95} errors=${err} queue=${s.queueDepth} ` +
    `ready=${s.readyInstances}/${s.desiredInstances}${s.panic ? ' panic' : ''}`
  );
}

export function eventsCommand(opts: EventsOptions): Promise<void> {
  const base = opts.url.replace(/\/$/, '');
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const print = (e: LiveEvent) => out(opts.json ? JSON.stringify({ kind: 'event', ...e }) : formatEvent(e));
  // A reconnection sends the recent events again: print each one once.
  const seen = new Set<string>();
  const keyOf = (e: LiveEvent) => `${e.at}|${e.type}|${e.instance ?? ''}|${e.message}`;
  const printOnce = (e: LiveEvent) => {
    const k = keyOf(e);
    if (seen.has(k)) return;
    seen.add(k);
    if (seen.size > 1000) seen.delete(seen.values().next().value as string);
    print(e);
  };

  return new Promise((resolve, reject) => {
    let connectedOnce = false;
    const token = cliToken();
    const socket: Socket = io(base, {
      path: LIVE_FEED_PATH,
      transports: ['websocket'],
      ...(token ? { auth: { token } } : {}),
      reconnection: opts.follow === true,
      timeout: 5000,
    });
    const finish = (err?: Error) => {
      socket.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (err) reject(err);
      else resolve();
    };
    const onSignal = () => finish();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    socket.on('connect_error', (err) => {
      if (connectedOnce) return; // --follow: socket.io keeps retrying with backoff
      if (/YGG_ERR_(UNAUTHORIZED|FORBIDDEN)/.test(err.message)) {
        finish(
          new Error(
            `the controller at ${base} refused the feed: ${err.message}; set YGG_TOKEN to a read key`,
          ),
        );
        return;
      }
      finish(new Error(`cannot reach the controller at ${base} (${err.message}); is \`npm start\` running?`));
    });
    socket.on('disconnect', (reason) => {
      if (opts.follow && reason !== 'io client disconnect') {
        process.stderr.write(`yggdrasil events: connection lost (${reason}); reconnecting…\n`);
      }
    });
    socket.on(LIVE_EVENTS.hello, (h: LiveHello) => {
      connectedOnce = true;
      for (const e of h.events) printOnce(e);
      if (!opts.follow) finish();
    });
    socket.on(LIVE_EVENTS.event, (e: LiveEvent) => printOnce(e));
    if (opts.stats) {
      socket.on(LIVE_EVENTS.stats, (s: LiveStats) =>
        out(opts.json ? JSON.stringify({ kind: 'stats', ...s }) : formatStats(s)),
      );
    }
  });
}
