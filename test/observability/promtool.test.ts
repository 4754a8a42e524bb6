// promtool on the project's Prometheus files: the configuration (docker-compose's and the one the
// integration tests generate) is valid, the alert rules load, and their unit tests pass, with a firing and
// a quiet case for every alert.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { requireService } from '../helpers/services.js';
import { ALERTS_FILE, exec, promConfig, ROOT, writeConfig } from './prom-server.js';

const skip = requireService('prometheus');
const PROM_DIR = join(ROOT, 'deploy/prometheus');
const DEPLOY_CONFIG = join(PROM_DIR, 'prometheus.yml');

const promtool = async (args: string[]) => {
  try {
    const { stdout, stderr } = await exec('promtool', args, { cwd: PROM_DIR, timeout: 30_000 });
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
};

describe('promtool', { skip }, () => {
  it('check rules deploy/prometheus/alerts.yml', async () => {
    const r = await promtool(['check', 'rules', 'alerts.yml']);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  it('test rules deploy/prometheus/alerts.test.yml', async () => {
    const r = await promtool(['test', 'rules', 'alerts.test.yml']);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  it('alerts.test.yml has a firing and a quiet case for every alert', () => {
    const alerts = [...readFileSync(ALERTS_FILE, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    const tests = readFileSync(join(PROM_DIR, 'alerts.test.yml'), 'utf8');
    assert.ok(alerts.length >= 7, `${alerts.length} alerts`);
    for (const name of alerts) {
      const quiet = new RegExp(`alertname: ${name}\\n\\s+exp_alerts: \\[\\]`);
      const firing = new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels:`);
      assert.match(tests, quiet, `${name} has no case where it stays quiet`);
      assert.match(tests, firing, `${name} has no case where it fires`);
    }
  });

  it('check config on the configuration the integration tests generate', async () => {
    const { dir, configFile } = await writeConfig(
      promConfig({
        lbUrl: 'http://127.0.0.1:8080',
        controllerUrl: 'http://127.0.0.1:3000',
        rulesFile: ALERTS_FILE,
      }),
    );
    try {
      const r = await promtool(['check', 'config', configFile]);
      assert.ok(r.ok, r.out);
      assert.match(r.out, /SUCCESS: 1 rule files found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('check config deploy/prometheus/prometheus.yml (docker-compose)', async (t) => {
    if (!existsSync(DEPLOY_CONFIG)) return t.skip('deploy/prometheus/prometheus.yml does not exist yet');
    const r = await promtool(['check', 'config', 'prometheus.yml']);
    assert.ok(r.ok, r.out);
    const text = readFileSync(DEPLOY_CONFIG, 'utf8');
    assert.match(text, /rule_files:\s*\n\s*- alerts\.yml/, 'loads alerts.yml');
    assert.match(
      text,
      /http_sd_configs:\s*\n\s*- url: http:\/\/controller:3000\/sd\/agents/,
      'discovers the agents',
    );
  });
});
