// DRIVER=swarm on a real single-node swarm: a replicated service of the agent image, hardened; its
// tasks reported with the ports Swarm publishes on the host; and a scale-down that removes the victim
// it was asked to (not Swarm's own pick: the highest slot), by draining it first.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ReplicaController } from '../src/controller/replica-controller.js';
import { createLogger } from '../src/core/logger.js';
import type { ReplicaSnapshot } from '../src/runtime/driver.js';
import { SwarmDriver } from '../src/runtime/swarm-driver.js';
import { docker, ensureImages, testOwner } from './helpers/docker.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

describe('SwarmDriver on a single-node swarm', { skip: requireService('swarm'), timeout: 180_000 }, () => {
  const owner = testOwner().DOCKER_OWNER;
  let driver: SwarmDriver;
  let last: ReplicaSnapshot = { desired: 0, replicas: [] };

  const options = {
    image: 'yggdrasil/agent:latest',
    owner,
    env: { LOG_LEVEL: 'warn' },
    cpuLimit: 0.5,
    memoryLimitBytes: 256 * 1024 * 1024,
    cpuReservation: 0.1,
    memoryReservationBytes: 64 * 1024 * 1024,
    publishPorts: true,
    logger: createLogger('silent'),
  };

  before(() => {
    ensureImages();
    driver = new SwarmDriver({ ...options, pollMs: 200 });
    driver.watch((s) => {
      last = s;
    });
  });
  after(async () => {
    await driver?.down().catch(() => false);
    await driver?.close();
  });

  const ready = () => last.replicas.filter((r) => r.condition === 'ready' && r.endpoint);

  it('scale(2): two ready tasks, each answering /health on its port on 127.0.0.1', async () => {
    await driver.scale(2);
    await waitFor('2 ready tasks', () => ready().length === 2, 90_000, 200);
    assert.equal(last.desired, 2);
    for (const r of ready()) {
      const res = await fetch(`http://127.0.0.1:${r.endpoint!.port}/health`);
      assert.equal(res.status, 200);
    }
  });

  it('its containers run hardened: uid 10001, read-only root, no capability', async () => {
    const id = String(ready()[0]!.meta.containerId);
    const info = await docker.getContainer(id).inspect();
    assert.equal(info.Config.User, '10001:10001');
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.NanoCpus, 0.5e9);
  });

  it('scale(1) with the lowest slot as the victim removes that one, not the highest slot', async () => {
    const [low, high] = [...ready()].sort((a, b) => Number(a.meta.slot) - Number(b.meta.slot));
    await driver.scale(1, { preferVictims: [low!.id] });
    await waitFor(
      'one task left',
      () => last.desired === 1 && last.replicas.length === 1 && ready().length === 1,
      60_000,
      200,
    );
    assert.equal(
      ready()[0]!.id,
      high!.id,
      `Swarm kept ${ready()[0]!.meta.slot}, not slot ${high!.meta.slot}`,
    );
  });

  it('a controller whose first reads of the engine fail changes nothing until one works, then adopts', async () => {
    // The engine behind a proxy of the test's on a unix socket: 503 to everything until it opens.
    const dir = mkdtempSync(join(tmpdir(), 'ygg-swarm-'));
    const socketPath = join(dir, 'docker.sock');
    let open = false;
    let refused = 0;
    const gate = createServer((req, res) => {
      if (!open) {
        refused++;
        res.writeHead(503, { connection: 'close' }).end();
        return;
      }
      const up = request(
        { socketPath: '/var/run/docker.sock', path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => gate.listen(socketPath, r));
    const second = new SwarmDriver({
      ...options,
      pollMs: 100,
      docker: new Docker({ socketPath, version: 'v1.41' }),
    });
    const controller = new ReplicaController({
      driver: second,
      logger: createLogger('silent'),
      minInstances: 0,
      maxInstances: 3,
    });
    try {
      const started = controller.start();
      await waitFor('reads refused', () => refused >= 5, 10_000, 20);
      assert.equal(last.desired, 1, 'the service is left at its count while the engine does not answer');
      open = true;
      await started;
      assert.equal(controller.desiredInstances, 1, 'adopted at the count it found, not MIN_INSTANCES=0');
      assert.equal(last.desired, 1);
    } finally {
      await controller.abandon();
      gate.closeAllConnections();
      await new Promise<void>((r) => gate.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('down() removes the service', async () => {
    assert.equal(await driver.down(), true);
    const left = await docker.listServices({ filters: { name: [driver.serviceName] } });
    assert.equal(left.length, 0);
  });
});
