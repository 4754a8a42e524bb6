// nginx (Debian's package) as the reference proxy over the same agents: upstream keepalive, one worker
// or `auto`, optional max_conns per agent (the overload comparison).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/runtime/free-port.js';
import { pinned, SERVER_CPU } from './procs.js';

export interface Nginx {
  url: string;
  /** Master and worker pids (for CPU accounting). */
  pids(): number[];
  stop(): Promise<void>;
}

export async function startNginx(opts: {
  agentPorts: number[];
  workers: 1 | 'auto';
  maxConns?: number;
  /** proxy_next_upstream (default off: the bench compares proxies without retries). */
  nextUpstream?: string;
}): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-nginx-'));
  const port = await freePort();
  const servers = opts.agentPorts
    .map((p) => `server 127.0.0.1:${p}${opts.maxConns ? ` max_conns=${opts.maxConns}` : ''};`)
    .join(' ');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes ${opts.workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream agents { ${servers} keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://agents;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream ${opts.nextUpstream ?? 'off'};
    }
  }
}
`,
  );
  const [cmd, args] = pinned('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], SERVER_CPU);
  const child: ChildProcess = spawn(cmd, args, { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/health`);
      break;
    } catch {
      if (i > 100) throw new Error('nginx did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    pids() {
      const master = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8'));
      try {
        const children = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/);
        return [master, ...children.filter(Boolean).map(Number)];
      } catch {
        return [master];
      }
    },
    async stop() {
      child.kill('SIGQUIT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
