// `yggdrasil export` for real: the CLI's Knative and Cloud Run output validates against Knative
// Serving's own Service CRD schema (test/fixtures/knative, from the public Knative repository), the
// compose output against docker-compose itself, and the values come from this configuration.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { CLI } from './helpers/roles.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);
// biome-ignore lint/suspicious/noExplicitAny: the manifests are read back as untyped YAML documents
type Doc = Record<string, any>;
const crd = parseYaml(
  readFileSync(new URL('./fixtures/knative/service-crd.yaml', import.meta.url), 'utf8'),
) as {
  spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> };
};
const schema = crd.spec.versions.find((v) => v.name === 'v1')!.schema.openAPIV3Schema;
// The CRD's schema uses Kubernetes' x-kubernetes-* keywords and int32/int64 formats: not JSON Schema's.
const validate = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(schema);

async function exported(target: string, env: Record<string, string> = {}, args: string[] = []) {
  const { stdout } = await exec(process.execPath, [CLI, 'export', target, ...args], {
    env: { ...process.env, LOG_LEVEL: 'silent', ...env },
  });
  const docs = parseAllDocuments(stdout)
    .map((d) => d.toJSON() as Doc)
    .filter(Boolean);
  return { stdout, docs };
}

describe('yggdrasil export', () => {
  it('the Knative schema refuses what is not a Service (so a pass means something)', () => {
    assert.equal(
      validate({ apiVersion: 'serving.knative.dev/v1', kind: 'Service', spec: { template: { spec: {} } } }),
      false,
    );
    assert.equal(
      validate({
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        spec: { template: { spec: { containerConcurrency: '80', containers: [{ image: 'x' }] } } },
      }),
      false,
    );
  });

  for (const target of ['knative', 'cloudrun']) {
    it(`${target}: valid against the Knative Service CRD, with MAX_CONCURRENCY, the scale bounds and the timeout`, async () => {
      const { stdout, docs } = await exported(target, {
        MAX_CONCURRENCY: '12',
        MIN_INSTANCES: '2',
        MAX_INSTANCES: '7',
        REQUEST_TIMEOUT_MS: '90000',
        AGENT_IMAGE: 'registry.example/agent:1.2',
        AGENT_ENV: 'OPENAI_API_KEY',
        OPENAI_API_KEY: 'sk-never-exported',
      });
      assert.equal(docs.length, 1);
      const svc = docs[0]!;
      const ok = validate(svc);
      assert.ok(ok, JSON.stringify(validate.errors?.slice(0, 3)));
      const tpl = svc.spec.template;
      assert.equal(tpl.spec.containerConcurrency, 12);
      assert.equal(tpl.spec.timeoutSeconds, 90);
      assert.equal(tpl.spec.containers[0].image, 'registry.example/agent:1.2');
      const a = tpl.metadata.annotations as Record<string, string>;
      if (target === 'knative') {
        assert.deepEqual(
          [a['autoscaling.knative.dev/min-scale'], a['autoscaling.knative.dev/max-scale']],
          ['2', '7'],
        );
      } else {
        assert.deepEqual(
          [a['autoscaling.knative.dev/minScale'], a['autoscaling.knative.dev/maxScale']],
          ['2', '7'],
        );
        assert.equal(a['run.googleapis.com/sessionAffinity'], 'true');
      }
      assert.deepEqual(tpl.spec.containers[0].env, [
        {
          name: 'OPENAI_API_KEY',
          valueFrom: { secretKeyRef: { name: 'yggdrasil-agent-env', key: 'OPENAI_API_KEY' } },
        },
      ]);
      assert.ok(!stdout.includes('sk-never-exported'), 'a value of this machine reached the manifests');
    });
  }

  it('cloudrun: a timeout past 3600 s is capped, and the note says so', async () => {
    const { stdout, docs } = await exported('cloudrun', {
      REQUEST_TIMEOUT_MS: '3600000',
      SESSION_AFFINITY: 'false',
    });
    assert.equal(docs[0]!.spec.template.spec.timeoutSeconds, 3600);
    assert.equal(
      docs[0]!.spec.template.metadata.annotations['run.googleapis.com/sessionAffinity'],
      undefined,
    );
    assert.doesNotMatch(stdout, /past Cloud Run's 3600 s/); // exactly 3600 is allowed
  });

  it('kubernetes: a hardened Deployment, a Service with ClientIP affinity, and an HPA on TARGET_CPU', async () => {
    const { docs } = await exported(
      'kubernetes',
      { MIN_INSTANCES: '2', MAX_INSTANCES: '5', TARGET_CPU: '0.6' },
      ['--name', 'my-agent'],
    );
    assert.deepEqual(
      docs.map((d) => d.kind),
      ['Deployment', 'Service', 'HorizontalPodAutoscaler'],
    );
    const [dep, svc, hpa] = docs as [Doc, Doc, Doc];
    assert.equal(dep.spec.replicas, 2);
    const c = dep.spec.template.spec.containers[0];
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.deepEqual(c.resources.limits, { cpu: '500m', memory: '512Mi' });
    assert.equal(svc.spec.sessionAffinity, 'ClientIP');
    assert.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas], [2, 5]);
    assert.equal(hpa.spec.metrics[0].resource.target.averageUtilization, 60);
  });

  it('compose: docker-compose accepts it', { skip: requireService('docker-compose') }, async () => {
    const { stdout } = await exported('compose', { MIN_INSTANCES: '3' });
    const r = spawnSync('docker-compose', ['-f', '-', 'config', '-q'], { input: stdout, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const doc = parseAllDocuments(stdout)
      .map((d) => d.toJSON())
      .filter(Boolean)[0] as Doc;
    assert.equal(doc.services['yggdrasil-agent'].deploy.replicas, 3);
  });

  it("the README's npm run export prints the same", async () => {
    const { stdout } = await exec('npm', ['run', 'export', '--silent', '--', 'kubernetes'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, LOG_LEVEL: 'silent' },
    });
    assert.equal(stdout, (await exported('kubernetes')).stdout);
  });

  it('an unknown target or a bad name exits 2 with one line', async () => {
    for (const args of [['swarmish'], ['knative', '--name', 'Bad_Name']]) {
      const r = spawnSync(process.execPath, [CLI, 'export', ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^yggdrasil export: /);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });
});
