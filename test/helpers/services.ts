// Real services for integration tests. Outside CI a missing service skips the test with one loud line
// saying what to install; under CI=true nothing may skip, so the test fails instead.
import { execFileSync } from 'node:child_process';

export const IN_CI = process.env.CI === 'true';

/** Debian's Python, where python3-fastapi and friends are installed (not a pyenv or venv one). */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/** The Debian Chromium the browser tests drive (playwright-core never downloads a browser here). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where .ci/build-kubernetes caches kube-apiserver and kube-controller-manager. */
export const KUBE_BIN_DIR = process.env.KUBE_BIN_DIR ?? '/var/cache/yggdrasil/kubernetes/bin';

function works(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

const checks = {
  wrk: {
    ok: () => works('wrk', ['--version']) || works('sh', ['-c', 'command -v wrk']),
    install: 'apt-get install wrk',
  },
  nginx: { ok: () => works('nginx', ['-v']), install: 'apt-get install nginx' },
  haproxy: { ok: () => works('haproxy', ['-v']), install: 'apt-get install haproxy' },
  hey: { ok: () => works('sh', ['-c', 'command -v hey']), install: 'apt-get install hey' },
  docker: { ok: () => works('docker', ['info']), install: 'apt-get install docker.io and start dockerd' },
  'docker-compose': {
    ok: () => works('docker', ['info']) && works('docker-compose', ['version']),
    install: 'apt-get install docker.io docker-compose and start dockerd',
  },
  prometheus: {
    ok: () => works('prometheus', ['--version']) && works('promtool', ['--version']),
    install: 'apt-get install prometheus (prometheus and promtool on PATH)',
  },
  chromium: { ok: () => works(CHROMIUM, ['--version']), install: 'apt-get install chromium' },
  curl: { ok: () => works('curl', ['--version']), install: 'apt-get install curl' },
  redis: { ok: () => works('redis-server', ['--version']), install: 'apt-get install redis-server' },
  swarm: {
    ok: () => works('sh', ['-c', "docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active"]),
    install: 'a single-node swarm: docker swarm init --advertise-addr 127.0.0.1',
  },
  kubernetes: {
    ok: () =>
      works('etcd', ['--version']) &&
      works(`${KUBE_BIN_DIR}/kube-apiserver`, ['--version']) &&
      works(`${KUBE_BIN_DIR}/kube-controller-manager`, ['--version']),
    install:
      'apt-get install etcd-server, then .ci/build-kubernetes (kube-apiserver and kube-controller-manager)',
  },
  fastapi: {
    ok: () => works(DEBIAN_PYTHON, ['-c', 'import fastapi, uvicorn, httpx']),
    install: 'apt-get install python3-fastapi python3-uvicorn python3-httpx',
  },
} as const;

/**
 * Returns a skip reason (string) when the service is missing outside CI, false when it is there.
 * Throws under CI, where a missing service is a broken machine, not a reason to skip.
 */
export function requireService(name: keyof typeof checks): string | false {
  const c = checks[name];
  if (c.ok()) return false;
  const line = `${name}: not available — ${c.install} to run this test`;
  if (IN_CI) throw new Error(`${line} (CI=true: integration tests may not skip)`);
  console.log(`\n!!! SKIPPED: ${line}\n`);
  return line;
}
