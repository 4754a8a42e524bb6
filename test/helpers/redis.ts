// A real redis-server for the shared-state tests: its own port and no persistence, stopped (and its
// pauses undone) by the test that started it.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from '../../src/runtime/free-port.js';
import { run, type Spawned } from './spawn.js';

export interface TestRedis {
  url: string;
  port: number;
  proc: Spawned;
  /** A client of its own (for assertions). */
  client: Redis;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const proc = run('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {}); // refused while redis-server starts, and after stop()
  for (let i = 0; ; i++) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch (err) {
      if (i > 100)
        throw new Error(
          `redis-server did not answer on ${port}: ${(err as Error).message}\n${proc.stdout()}`,
        );
      client.disconnect();
      await sleep(50);
    }
  }
  const pid = proc.child.pid!;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    proc,
    client,
    pause: () => process.kill(pid, 'SIGSTOP'),
    resume: () => process.kill(pid, 'SIGCONT'),
    async stop() {
      client.disconnect();
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      await proc.exited;
    },
  };
}
