import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replicaOf } from './swarm-driver.js';

const task = (desired: string, state: string, port?: number) => ({
  ID: 'abc',
  Slot: 2,
  DesiredState: desired,
  Status: { State: state, PortStatus: port ? { Ports: [{ TargetPort: 8080, PublishedPort: port }] } : {} },
});

describe('replicaOf (a Swarm task as a replica)', () => {
  const table = [
    {
      name: 'running and healthy: ready, at its published port',
      t: task('running', 'running', 30001),
      healthy: true,
      want: ['ready', 30001],
    },
    {
      name: 'running, no healthcheck: ready',
      t: task('running', 'running', 30001),
      healthy: undefined,
      want: ['ready', 30001],
    },
    {
      name: 'running but not healthy yet: starting',
      t: task('running', 'running', 30001),
      healthy: false,
      want: ['starting', 30001],
    },
    {
      name: 'pending with no port yet: starting, no endpoint',
      t: task('running', 'pending'),
      healthy: undefined,
      want: ['starting', undefined],
    },
    {
      name: 'asked to shut down, still running: terminating',
      t: task('shutdown', 'running', 30001),
      healthy: true,
      want: ['terminating', 30001],
    },
    { name: 'shut down: gone', t: task('shutdown', 'complete'), healthy: undefined, want: undefined },
    {
      name: 'failed: gone (Swarm starts another)',
      t: task('running', 'failed'),
      healthy: undefined,
      want: undefined,
    },
  ];
  it('on a network (DOCKER_PUBLISH_PORTS=false): its address there, port 8080', () => {
    const t = {
      ...task('running', 'running'),
      NetworksAttachments: [
        { Network: { Spec: { Name: 'ingress' } }, Addresses: ['10.0.0.7/24'] },
        { Network: { Spec: { Name: 'ygg-agents' } }, Addresses: ['10.0.9.4/24'] },
      ],
    };
    assert.deepEqual(replicaOf(t, true, 'ygg-agents')?.endpoint, { host: '10.0.9.4', port: 8080 });
    assert.equal(replicaOf(t, true, 'other')?.endpoint, undefined);
  });
  for (const c of table) {
    it(c.name, () => {
      const r = replicaOf(c.t, c.healthy);
      assert.deepEqual(r ? [r.condition, r.endpoint?.port] : undefined, c.want);
    });
  }
});
