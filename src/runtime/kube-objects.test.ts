import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  adoptPlan,
  agentDeployment,
  type PodView,
  type SliceView,
  serverMinor,
  snapshotOf,
  TEMPLATE_HASH,
  victimPlan,
} from './kube-objects.js';

const pod = (name: string, extra: Partial<PodView> = {}): PodView => ({
  metadata: { name, uid: `uid-${name}`, creationTimestamp: '2026-12-01T00:00:0' + name.slice(-1) + 'Z' },
  spec: { nodeName: 'n1' },
  status: { phase: 'Running', podIP: `10.0.0.${name.slice(-1)}` },
  ...extra,
});
const endpoint = (name: string, c: { ready?: boolean; serving?: boolean; terminating?: boolean }) => ({
  addresses: [`10.0.0.${name.slice(-1)}`],
  conditions: c,
  targetRef: { kind: 'Pod', name, uid: `uid-${name}` },
});

describe('snapshotOf (pods and EndpointSlices as replicas)', () => {
  const slices: SliceView[] = [
    {
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [
        endpoint('p1', { ready: true }),
        endpoint('p2', { ready: false }),
        endpoint('p3', { ready: false, serving: true, terminating: true }),
      ],
    },
    { ports: null, endpoints: null },
  ];
  const s = snapshotOf(
    4,
    [
      pod('p1'),
      pod('p2'),
      pod('p3'),
      pod('p4', { status: { phase: 'Pending' } }),
      pod('p5', { metadata: { name: 'p5', uid: 'uid-p5', deletionTimestamp: '2026-12-01T00:01:00Z' } }),
      pod('p6', { status: { phase: 'Failed' } }),
      pod('p7', { status: { phase: 'Succeeded' } }),
    ],
    slices,
  );
  const by = Object.fromEntries(s.replicas.map((r) => [r.id, r]));

  it('a ready endpoint is ready, at its address and the slice’s port', () => {
    assert.equal(by.p1?.condition, 'ready');
    assert.deepEqual(by.p1?.endpoint, { host: '10.0.0.1', port: 8080 });
    assert.equal(by.p1?.incarnation, 'uid-p1');
  });
  it('a listed but not ready endpoint is starting', () => assert.equal(by.p2?.condition, 'starting'));
  it('a terminating endpoint is terminating (drained where it is)', () => {
    assert.equal(by.p3?.condition, 'terminating');
    assert.equal(by.p3?.endpoint?.host, '10.0.0.3');
  });
  it('a pod no slice lists yet is starting, with no endpoint', () => {
    assert.equal(by.p4?.condition, 'starting');
    assert.equal(by.p4?.endpoint, undefined);
  });
  it('a pod being deleted is terminating, at its pod IP', () => {
    assert.equal(by.p5?.condition, 'terminating');
    assert.equal(by.p5?.endpoint?.host, '10.0.0.5');
  });
  it('ended pods (Failed, Succeeded) are not replicas', () => {
    assert.equal(by.p6, undefined);
    assert.equal(by.p7, undefined);
    assert.equal(s.replicas.length, 5);
  });
  it('the desired count is the Deployment’s', () => assert.equal(s.desired, 4));
});

describe('victimPlan and serverMinor', () => {
  const table: Array<[{ major?: string; minor?: string }, number, 'annotate' | 'delete']> = [
    [{ major: '1', minor: '20' }, 20, 'delete'],
    [{ major: '1', minor: '21+' }, 21, 'delete'],
    [{ major: '1', minor: '22' }, 22, 'annotate'],
    [{ major: '1', minor: '30+' }, 30, 'annotate'],
    [{ major: '2', minor: '0' }, Number.NaN, 'delete'],
    [{}, Number.NaN, 'delete'],
  ];
  for (const [version, minor, plan] of table)
    it(`${JSON.stringify(version)} → minor ${minor}, ${plan}`, () => {
      assert.deepEqual(serverMinor(version), minor);
      assert.equal(victimPlan(serverMinor(version)), plan);
    });
});

describe('adoptPlan (what a restarted controller changes in an existing Deployment)', () => {
  const ours = { hash: 'h-now', image: 'agent:2' };
  const rows: Array<{ name: string; existing: { hash?: string; image?: string }; want: string }> = [
    { name: 'ours, unchanged', existing: { hash: 'h-now', image: 'agent:2' }, want: 'none' },
    { name: 'ours, configuration changed', existing: { hash: 'h-old', image: 'agent:2' }, want: 'template' },
    { name: 'ours, image changed', existing: { hash: 'h-old', image: 'agent:1' }, want: 'template' },
    { name: 'from manifests, same image', existing: { image: 'agent:2' }, want: 'none' },
    { name: 'from manifests, another image', existing: { image: 'agent:1' }, want: 'image' },
    { name: 'from manifests, no agent container', existing: {}, want: 'none' },
  ];
  for (const r of rows) {
    it(r.name, () =>
      assert.equal(adoptPlan({ hash: r.existing.hash, image: r.existing.image }, ours), r.want),
    );
  }

  it('the hash follows the pod template: another env or limit is another hash, the count is not', () => {
    const base = {
      name: 'p-agents',
      owner: 'p',
      image: 'agent:1',
      env: { A: '1' },
      replicas: 1,
      healthPath: '/health',
      cpuLimit: 0.5,
      memoryLimitBytes: 256 * 1024 * 1024,
      cpuReservation: 0.1,
      memoryReservationBytes: 0,
      graceSeconds: 15,
    };
    const hashOf = (o: typeof base) =>
      (agentDeployment(o).metadata as { annotations: Record<string, string> }).annotations[TEMPLATE_HASH];
    assert.equal(hashOf(base), hashOf({ ...base, replicas: 5 }));
    assert.notEqual(hashOf(base), hashOf({ ...base, env: { A: '2' } }));
    assert.notEqual(hashOf(base), hashOf({ ...base, cpuLimit: 1 }));
    assert.match(hashOf(base) ?? '', /^[0-9a-f]{16}$/);
  });
});
