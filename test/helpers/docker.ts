// Docker helpers for tests: images built on demand (no registry here), owned containers listed and removed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { LABEL_OWNER } from '../../src/runtime/docker-driver.js';
import { runTestFile } from './spawn.js';

export const docker = new Docker();
const root = new URL('../..', import.meta.url).pathname;

export function imageExists(name: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds the project's images when the agent image is missing (minutes the first time). */
export function ensureImages(): void {
  if (imageExists('yggdrasil/agent:latest')) return;
  console.log('building the project images (scripts/build-images.sh): first run only');
  execFileSync('bash', ['scripts/build-images.sh'], { cwd: root, stdio: 'inherit', timeout: 20 * 60_000 });
}

/**
 * Builds yggdrasil/<app> again when it was built from other code than dist/ now (its
 * io.yggdrasil.source-hash label): a test never runs an image of older code. Concurrent builds take
 * turns on scripts/build-images.sh's own lock (so no lock here: it would deadlock on that one).
 */
export function ensureFreshImage(app: 'agent' | 'controller'): void {
  const script = `cur=$(node docker/source-hash.mjs)
have=$(docker image inspect --format '{{index .Config.Labels "io.yggdrasil.source-hash"}}' yggdrasil/${app}:latest 2>/dev/null || true)
if [ "$cur" != "$have" ]; then echo "rebuilding yggdrasil/${app}: built from other code" >&2; bash scripts/build-images.sh ${app} --no-compile >&2; fi`;
  execFileSync('bash', ['-c', script], {
    cwd: root,
    stdio: 'inherit',
    timeout: 20 * 60_000,
  });
}

/** A fresh owner label and network name, so tests never touch each other's (or a user's) containers. */
export function testOwner(): { DOCKER_OWNER: string; DOCKER_NETWORK: string } {
  const tag = `ygg-test-${randomBytes(3).toString('hex')}`;
  return { DOCKER_OWNER: tag, DOCKER_NETWORK: tag };
}

export async function ownedContainers(owner: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${owner}`] } });
}

export async function removeOwned(owner: string, network: string): Promise<void> {
  for (const c of await ownedContainers(owner))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => {});
  await docker
    .getNetwork(network)
    .remove()
    .catch(() => {});
}

/**
 * Runs one test file again on containers: a fresh test runner (not a subtest of this one) with
 * TEST_DRIVER=docker and an owner of its own, whose containers and network are removed after it.
 * Resolves with its exit status, passes and failures; prints its failing lines when it failed.
 */
export async function runOnContainers(
  file: string,
): Promise<{ status: number | null; passes: number; failures: number }> {
  ensureFreshImage('agent');
  const owner = testOwner().DOCKER_OWNER;
  const r = runTestFile(file, { TEST_DRIVER: 'docker', TEST_DOCKER_OWNER: owner });
  await removeOwned(owner, owner);
  return r;
}
