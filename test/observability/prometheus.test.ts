// A real Prometheus scraping a live platform: the router and controller /metrics and the agents found
// through /sd/agents. Key series must exist with sensible values, a new instance must be scraped without a
// reload, the alert rules must evaluate cleanly, and every Grafana panel query must run and name only
// metrics the project exports.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Platform } from '../../src/platform.js';
import { bootPlatform, waitFor } from '../helpers/platform.js';
import { requireService } from '../helpers/services.js';
import {
  ALERTS_FILE,
  exportedNames,
  metricNames,
  type PromServer,
  promConfig,
  ROOT,
  resolveGrafanaVars,
  startPrometheus,
} from './prom-server.js';

const skip = requireService('prometheus');
const DASHBOARDS = join(ROOT, 'deploy/grafana/dashboards');
const PROCESS_REQUESTS = 30;
const SESSION_REQUESTS = 10;

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

interface Target {
  refId?: string;
  expr?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  annotations: { list: Array<{ name: string; expr?: string; datasource?: { uid: string } }> };
  templating: { list: Array<{ name: string; query: string | { query: string } }> };
}

const dashboards = readdirSync(DASHBOARDS)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => ({ file, d: JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) as Dashboard }));

/** Every PromQL expression of a dashboard: panel targets, Prometheus annotations. */
function queriesOf(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of d.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? '' });
  for (const a of d.annotations.list)
    if (a.expr !== undefined) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  return out;
}

describe('Prometheus scraping a live platform', { skip }, () => {
  let p: Platform;
  let prom: PromServer;
  let exported: Set<string>;

  before(async () => {
    // SCALE_INTERVAL_MS at its maximum: the autoscaler must not undo the test's own scale-up.
    p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '3', SCALE_INTERVAL_MS: '60000' });
    await p.controller.waitForReady(1, 15_000);
    prom = await startPrometheus(
      promConfig({ lbUrl: p.lbUrl, controllerUrl: p.controllerUrl, rulesFile: ALERTS_FILE }),
    );
    for (let i = 0; i < PROCESS_REQUESTS; i++) {
      const res = await post(`${p.lbUrl}/process`, { input: `hi ${i}` });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    for (let i = 0; i < SESSION_REQUESTS; i++) {
      await (await fetch(`${p.lbUrl}/api/echo`, { headers: { 'x-session-id': 'prom-test' } })).arrayBuffer();
    }
    // One failure, so the error-rate inputs have a 5xx.
    assert.equal((await post(`${p.lbUrl}/process`, { fail: true })).status, 500);
  });

  after(async () => {
    await prom?.stop();
    await p?.stop();
  });

  it('scrapes the router, the controller and agent-1 (found through /sd/agents)', async () => {
    const up = await waitFor(
      'three targets up',
      async () => {
        const r = await prom.query('up == 1');
        return r.length === 3 ? r : undefined;
      },
      15_000,
      200,
    );
    assert.deepEqual(up.map((s) => s.metric.job).sort(), [
      'agents',
      'yggdrasil-controller',
      'yggdrasil-router',
    ]);
    const agent = up.find((s) => s.metric.job === 'agents')!;
    assert.equal(agent.metric.instance_id, 'agent-1');
    assert.equal(agent.metric.driver, 'process');
  });

  it('has the key series with sensible values', async () => {
    const total = PROCESS_REQUESTS + SESSION_REQUESTS;
    await waitFor(
      'the traffic to be scraped',
      async () => ((await prom.value('sum(yggdrasil_router_requests_total)')) ?? 0) >= total + 1,
      15_000,
      200,
    );
    // honor_labels keeps the router's instance label: the agent id, not the scrape target.
    const byInstance = await prom.query('sum by (instance, code) (yggdrasil_router_requests_total)');
    const ok = byInstance.find((s) => s.metric.instance === 'agent-1' && s.metric.code === '200');
    assert.ok(ok, `requests of agent-1 by code: ${JSON.stringify(byInstance)}`);
    assert.equal(Number(ok.value[1]), total);
    assert.equal(await prom.value('sum(yggdrasil_router_requests_total{code="500"})'), 1);
    assert.equal(await prom.value('sum(yggdrasil_router_request_duration_seconds_count)'), total + 1);
    // Over every request so far (the traffic came before the first scrape, so no rate() yet).
    const p95 = await prom.value(
      'histogram_quantile(0.95, sum by (le) (yggdrasil_router_request_duration_seconds_bucket))',
    );
    assert.ok(p95 !== undefined && p95 > 0 && p95 < 1, `router p95 ${p95} s`);
    assert.equal(
      await prom.value('sum(yggdrasil_agent_requests_total{agent_id="agent-1",route="process",code="200"})'),
      PROCESS_REQUESTS,
    );
    assert.equal(await prom.value('yggdrasil_agent_inflight_requests{agent_id="agent-1"}'), 0);
    assert.equal(await prom.value('yggdrasil_router_inflight_requests{instance="agent-1"}'), 0);
    assert.equal(await prom.value('yggdrasil_router_queue_depth'), 0);
    assert.equal(await prom.value('yggdrasil_router_breaker_state{instance="agent-1"}'), 0);
    assert.equal(
      await prom.value('yggdrasil_router_session_affinity_total{result="hit"}'),
      SESSION_REQUESTS - 1,
    );
    assert.ok(((await prom.value('yggdrasil_router_session_affinity_total{result="new"}')) ?? 0) >= 1);
    assert.equal(await prom.value('yggdrasil_desired_instances'), 1);
    assert.equal(await prom.value('yggdrasil_instances{state="ready"}'), 1);
    assert.equal(await prom.value('yggdrasil_instances_limit{bound="max"}'), 3);
    assert.equal(await prom.value('yggdrasil_instance_up{instance="agent-1"}'), 1);
    assert.equal(await prom.value('yggdrasil_instance_cold_start_seconds_count'), 1);
    // Usage is sampled every 2 s by the controller.
    const memory = await waitFor(
      'agent-1 memory',
      () => prom.value('yggdrasil_instance_memory_bytes{instance="agent-1"}'),
      15_000,
      200,
    );
    assert.ok(memory > 10e6 && memory < 2e9, `agent-1 memory ${memory} bytes`);
    const rss = await prom.value('process_resident_memory_bytes{agent_id="agent-1"}');
    assert.ok(rss !== undefined && rss > 10e6, `agent-1 reports ${rss} bytes resident`);
  });

  it('evaluates every rule of alerts.yml without error, and nothing fires on a healthy pool', async () => {
    type Rules = {
      data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
    };
    const rules = await waitFor(
      'every rule evaluated',
      async () => {
        const r = await prom.api<Rules>('/api/v1/rules');
        const all = r.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((x) => x.health !== 'unknown') ? all : undefined;
      },
      15_000,
      200,
    );
    assert.ok(rules.length >= 7, `${rules.length} rules loaded`);
    for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
    const alerts = await prom.api<{
      data: { alerts: Array<{ labels: { alertname: string }; state: string }> };
    }>('/api/v1/alerts');
    assert.deepEqual(
      alerts.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname),
      [],
    );
  });

  it('scrapes a new instance without a reload after a scale-up', async () => {
    type Runtime = { data: { lastConfigTime: string; reloadConfigSuccess: boolean } };
    const configBefore = (await prom.api<Runtime>('/api/v1/status/runtimeinfo')).data.lastConfigTime;
    const asked = Date.now();
    p.controller.setDesired(2, 'test');
    await p.controller.waitForReady(2, 15_000);
    const ready = Date.now();
    await waitFor(
      'agent-2 in Prometheus',
      async () => (await prom.value('up{job="agents",instance_id="agent-2"}')) === 1,
      15_000,
      100,
    );
    await waitFor(
      'agent-2 own series',
      async () => (await prom.query('process_resident_memory_bytes{agent_id="agent-2"}')).length === 1,
      15_000,
      100,
    );
    const seen = Date.now();
    // Prometheus applies discovered targets at most every 5 s, then scrapes within one interval.
    console.log(
      `# scale-up: agent-2 ready ${ready - asked} ms after setDesired, in Prometheus ${seen - ready} ms later`,
    );
    const runtime = (await prom.api<Runtime>('/api/v1/status/runtimeinfo')).data;
    assert.equal(runtime.lastConfigTime, configBefore, 'the configuration was not reloaded');
    assert.equal(await prom.value('up{job="agents",instance_id="agent-1"}'), 1);
    await waitFor(
      'the scaling event and desired 2 scraped',
      async () =>
        (await prom.value('yggdrasil_scaling_events_total{direction="up",reason="test"}')) === 1 &&
        (await prom.value('yggdrasil_desired_instances')) === 2,
      10_000,
      100,
    );
  });

  describe('Grafana dashboards against this Prometheus', () => {
    before(async () => {
      // Traffic on both instances, so per-instance panels have data.
      for (let i = 0; i < 20; i++) await (await post(`${p.lbUrl}/process`, { input: 'g' })).arrayBuffer();
      await waitFor(
        'agent-2 traffic scraped',
        async () => ((await prom.value('sum(yggdrasil_router_requests_total{instance="agent-2"})')) ?? 0) > 0,
        15_000,
        200,
      );
      exported = await exportedNames(prom);
    });

    it('finds metric names in PromQL (the checker itself)', () => {
      const table: Array<{ expr: string; want: string[] }> = [
        { expr: 'up', want: ['up'] },
        {
          expr: 'sum by (le) (rate(a_bucket{x=~"b.*",le!="1"}[5m] offset 1m)) / on(job) group_left c_total',
          want: ['a_bucket', 'c_total'],
        },
        { expr: 'histogram_quantile(0.95, sum by (le, agent_id) (rate(h_bucket[1m])))', want: ['h_bucket'] },
        { expr: 'count(x == 0) or vector(1e3)', want: ['x'] },
        { expr: 'max_over_time(g[1m:10s]) > bool 2 unless ignoring(bound) m', want: ['g', 'm'] },
      ];
      for (const row of table) assert.deepEqual(metricNames(row.expr).sort(), row.want, row.expr);
    });

    it('the exported names include the router, controller and agent metrics', () => {
      for (const n of [
        'yggdrasil_router_requests_total',
        'yggdrasil_router_retries_total', // no sample yet: known from its # TYPE line
        'yggdrasil_instances',
        'yggdrasil_agent_requests_total',
        'process_resident_memory_bytes',
      ])
        assert.ok(exported.has(n), `${n} not among ${exported.size} exported names`);
    });

    it('alerts.yml names only exported metrics', () => {
      const text = readFileSync(ALERTS_FILE, 'utf8');
      const exprs = [...text.matchAll(/expr: (?:\|\n((?: {10}.*\n)+)|(.*)\n)/g)].map((m) =>
        (m[1] ?? m[2])!.trim(),
      );
      assert.equal(exprs.length, [...text.matchAll(/- alert: /g)].length, 'one expression per alert');
      for (const e of exprs)
        for (const n of metricNames(e))
          assert.ok(exported.has(n), `alerts.yml: ${n} is not exported (in ${e})`);
    });

    for (const { file, d } of dashboards) {
      it(`${file}: every query runs and names only exported metrics`, async () => {
        const problems: string[] = [];
        let withData = 0;
        const queries = queriesOf(d);
        assert.ok(queries.length > 0, 'no queries');
        for (const q of queries) {
          const expr = resolveGrafanaVars(q.expr);
          if (expr.includes('$')) problems.push(`${q.where}: unresolved variable in ${q.expr}`);
          const a = await prom.queryRaw(expr);
          if (a.status !== 'success') problems.push(`${q.where}: ${a.errorType}: ${a.error} (${expr})`);
          else if (Array.isArray(a.data?.result) ? a.data.result.length > 0 : true) withData++;
          for (const n of metricNames(expr))
            if (!exported.has(n)) problems.push(`${q.where}: ${n} is not exported by any target`);
        }
        for (const v of d.templating.list) {
          const text = typeof v.query === 'string' ? v.query : v.query.query;
          const m = /label_values\((\w+)\s*,/.exec(text);
          if (m && !exported.has(m[1]!)) problems.push(`variable ${v.name}: ${m[1]} is not exported`);
        }
        console.log(`# ${file}: ${queries.length} queries, ${withData} with data now`);
        assert.deepEqual(problems, []);
      });
    }
  });
});
