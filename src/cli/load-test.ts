// `npm run load:test` (yggdrasil load-test): drives load at the load balancer with autocannon, shows a
// live progress bar, then prints requests/s, latency percentiles, status codes, the error rate and
// how many requests each instance served (X-Yggdrasil-Instance), and checks the seed's SLOs.
import autocannon from 'autocannon';
import { percentile, round } from '../core/stats.js';

export interface LoadTestOptions {
  connections: string;
  duration: string;
  amount?: string;
  method: string;
  body?: string;
  header: string[];
  sessionShare: string;
  sloP95Ms: string;
  sloRps: string;
  sloErrorRate: string;
  json?: boolean;
}

export interface LoadTestSummary {
  url: string;
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  statusCodes: Record<string, number>;
  errors: number;
  errorRate: number;
  instances: Record<string, number>;
  slo: Array<{ name: string; limit: number; value: number; ok: boolean }>;
  ok: boolean;
}

function num(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    process.stderr.write(
      `load-test: --${name}=${raw} is not allowed: expected a number from ${min} to ${max}\n`,
    );
    process.exit(2);
  }
  return n;
}

export async function loadTestCommand(url: string, opts: LoadTestOptions): Promise<void> {
  const connections = num('connections', opts.connections, 1, 10_000);
  const duration = num('duration', opts.duration, 1, 86_400);
  const amount = opts.amount === undefined ? undefined : num('amount', opts.amount, 1, 1e9);
  const sessionShare = num('session-share', opts.sessionShare, 0, 1);
  const method = opts.method.toUpperCase();
  if (!['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD'].includes(method)) {
    process.stderr.write(
      `load-test: --method=${opts.method} is not allowed: expected GET, POST, PUT, DELETE, PATCH or HEAD\n`,
    );
    process.exit(2);
  }
  try {
    new URL(url);
  } catch {
    process.stderr.write(`load-test: ${url} is not a URL (e.g. http://127.0.0.1:8080/api/test)\n`);
    process.exit(2);
  }
  const headers: Record<string, string> = {};
  for (const h of opts.header) {
    const i = h.indexOf(':');
    if (i < 1) {
      process.stderr.write(`load-test: --header "${h}" is not "name: value"\n`);
      process.exit(2);
    }
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  if (opts.body !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = 'application/json';

  const latencies: number[] = [];
  const instances: Record<string, number> = {};
  const sessions = Array.from({ length: 100 }, (_, i) => `load-test-${process.pid}-${i}`);
  const instance = autocannon({
    url,
    connections,
    ...(amount !== undefined ? { amount } : { duration }),
    method: method as autocannon.Request['method'],
    headers,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    requests: [
      {
        setupRequest(req) {
          if (sessionShare > 0 && Math.random() < sessionShare) {
            const id = sessions[Math.floor(Math.random() * sessions.length)]!;
            return { ...req, headers: { ...req.headers, 'x-session-id': id } };
          }
          return req;
        },
      },
    ],
    setupClient(client) {
      // The raw parser event: a flat [name, value, …] list (the typings say otherwise).
      (client as unknown as NodeJS.EventEmitter).on('headers', (h: { headers: string[] }) => {
        for (let i = 0; i < h.headers.length; i += 2) {
          if (h.headers[i]!.toLowerCase() === 'x-yggdrasil-instance') {
            const id = h.headers[i + 1]!;
            instances[id] = (instances[id] ?? 0) + 1;
          }
        }
      });
      client.on('response', (_status: number, _bytes: number, ms: number) => latencies.push(ms));
    },
  });
  if (!opts.json)
    autocannon.track(instance as unknown as autocannon.Instance, {
      renderProgressBar: true,
      renderResultsTable: false,
      renderLatencyTable: false,
    });
  process.once('SIGINT', () => (instance as unknown as { stop: () => void }).stop());
  const result = await instance;

  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(
    (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {},
  )) {
    statusCodes[code] = v.count;
  }
  const answered = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  const failedStatus = Object.entries(statusCodes)
    .filter(([code]) => Number(code) >= 500 || Number(code) < 200)
    .reduce((a, [, n]) => a + n, 0);
  const errors = result.errors + result.timeouts;
  const attempts = answered + errors;
  const errorRate = attempts === 0 ? 1 : (failedStatus + errors) / attempts;
  const seconds = result.duration;
  const p95 = percentile(latencies, 95);
  const rps = answered / seconds;
  const slo = [
    { name: 'p95 latency < ms', limit: num('slo-p95-ms', opts.sloP95Ms, 0, 1e9), value: round(p95, 2) },
    { name: 'throughput > req/s', limit: num('slo-rps', opts.sloRps, 0, 1e9), value: round(rps, 0) },
    {
      name: 'error rate <',
      limit: num('slo-error-rate', opts.sloErrorRate, 0, 1),
      value: round(errorRate, 4),
    },
  ].map((s, i) => ({ ...s, ok: i === 1 ? s.value > s.limit : s.value < s.limit }));
  const summary: LoadTestSummary = {
    url,
    requests: answered,
    durationSeconds: round(seconds, 2),
    requestsPerSecond: round(rps, 0),
    latencyMs: {
      p50: round(percentile(latencies, 50), 2),
      p95: round(p95, 2),
      p99: round(percentile(latencies, 99), 2),
      max: round(Math.max(0, ...latencies), 2),
    },
    statusCodes,
    errors,
    errorRate: round(errorRate, 4),
    instances,
    slo,
    ok: slo.every((s) => s.ok),
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else process.stdout.write(render(summary));
  process.exitCode = summary.ok ? 0 : 1;
}

function render(s: LoadTestSummary): string {
  const lines = [
    '',
    `${s.url}: ${s.requests} requests in ${s.durationSeconds} s = ${s.requestsPerSecond} req/s`,
    `latency ms  p50 ${s.latencyMs.p50}  p95 ${s.latencyMs.p95}  p99 ${s.latencyMs.p99}  max ${s.latencyMs.max}`,
    `status      ${
      Object.entries(s.statusCodes)
        .map(([c, n]) => `${c}: ${n}`)
        .join('  ') || '(none)'
    }${s.errors ? `  connection errors/timeouts: ${s.errors}` : ''}`,
    `error rate  ${(s.errorRate * 100).toFixed(2)} %`,
    `instances   ${
      Object.entries(s.instances)
        .sort()
        .map(([id, n]) => `${id}: ${n}`)
        .join('  ') || '(no X-Yggdrasil-Instance header: not the load balancer?)'
    }`,
    '',
    ...s.slo.map((c) => `${c.ok ? 'PASS' : 'FAIL'}  ${c.name} ${c.limit}: ${c.value}`),
    '',
  ];
  return `${lines.join('\n')}\n`;
}
