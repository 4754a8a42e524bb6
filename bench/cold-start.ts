// Cold start of one instance, from asking the runtime for it to its first healthy answer, N times.
// Run: npx tsx bench/cold-start.ts [process|docker] [count]   (docker needs dockerd and the images)
import { randomBytes } from 'node:crypto';
import { probeHealth } from '../src/controller/health-probe.js';
import { createLogger } from '../src/core/logger.js';
import { DockerDriver } from '../src/runtime/docker-driver.js';
import type { InstanceDriver } from '../src/runtime/driver.js';
import { ProcessDriver } from '../src/runtime/process-driver.js';
import { median, percentile, round } from './stats.js';

export interface ColdStart {
  driver: string;
  count: number;
  medianMs: number;
  p95Ms: number;
  maxMs: number;
}

export function makeDriver(kind: 'process' | 'docker'): {
  driver: InstanceDriver;
  cleanup: () => Promise<void>;
} {
  const logger = createLogger('silent');
  if (kind === 'process') {
    const driver = new ProcessDriver({ logger, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn' } });
    return { driver, cleanup: () => driver.close() };
  }
  const tag = `ygg-bench-${randomBytes(3).toString('hex')}`;
  const driver = new DockerDriver({
    image: 'yggdrasil/agent:latest',
    network: tag,
    owner: tag,
    publishPorts: true,
    cpuLimit: 0.5,
    memoryLimitBytes: 512 * 1024 * 1024,
    cpuReservation: 0.25,
    memoryReservationBytes: 256 * 1024 * 1024,
    env: { LOG_LEVEL: 'warn' },
    logger,
  });
  return {
    driver,
    cleanup: async () => {
      await driver.close(0);
      await driver.down();
    },
  };
}

export async function measureColdStart(kind: 'process' | 'docker', count: number): Promise<ColdStart> {
  const { driver, cleanup } = makeDriver(kind);
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const handle = await driver.start({ id: 'agent-1' });
      for (;;) {
        if ((await probeHealth(handle.endpoint, '/health', 1000)).ok) break;
        if (performance.now() - t0 > 60_000) throw new Error(`${kind}: no healthy answer within 60 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      samples.push(performance.now() - t0);
      await driver.stop('agent-1', 2000);
    }
  } finally {
    await cleanup();
  }
  return {
    driver: kind,
    count,
    medianMs: round(median(samples)),
    p95Ms: round(percentile(samples, 95)),
    maxMs: round(Math.max(...samples)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const kind = (process.argv[2] ?? 'process') as 'process' | 'docker';
  const count = Number(process.argv[3] ?? 20);
  console.log(JSON.stringify(await measureColdStart(kind, count)));
}
