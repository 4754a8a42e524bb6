// A real Kubernetes control plane on loopback for the DRIVER=kubernetes tests and the bench: etcd
// (Debian's etcd-server), kube-apiserver and kube-controller-manager (built from Debian's kubernetes
// source by .ci/build-kubernetes). RBAC is on; two users: `admin` (system:masters) and `yggdrasil`
// (no rights but what a test binds to it, as the RBAC of deploy/kubernetes/ does). The
// controller-manager runs the Deployment, ReplicaSet, EndpointSlice and garbage-collector controllers;
// the pods are run by a hollow node (hollow-node.ts), as kubemark does.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort } from '../../../src/runtime/free-port.js';
import { startWatchdog, stopWatchdog } from '../../../src/runtime/watchdog.js';
import { KUBE_BIN_DIR } from '../services.js';

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  server: string;
  dir: string;
  /** kubeconfig files: cluster admin, and the `yggdrasil` user (RBAC-limited). */
  adminKubeconfig: string;
  yggdrasilKubeconfig: string;
  adminToken: string;
  /** kubectl as the admin (whichever kubectl is on PATH; `.ci/run` installs Debian's 1.20 when none is). */
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

const FEATURES = 'EndpointSliceTerminatingCondition=true';

function kubeconfig(server: string, ca: string, user: string, token: string, namespace = 'default'): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'ygg-test', cluster: { server, 'certificate-authority': ca } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'ygg-test', user, namespace } }],
    'current-context': user,
  });
}

interface Owned {
  child: ChildProcess;
  dog: ChildProcess;
}

/** A server in its own process group, guarded by the platform's watchdog: it dies with this process. */
function startProcess(cmd: string, args: string[], log: string): Owned {
  writeFileSync(log, '');
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr?.on('data', (d: Buffer) => {
    try {
      writeFileSync(log, d, { flag: 'a' });
    } catch {}
  });
  child.on('error', () => {});
  const dog = startWatchdog(child.pid!, 2000, process.env);
  return { child, dog };
}

async function stopProcess({ child, dog }: Owned): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  stopWatchdog(dog);
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, logs: string[]) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const tails = logs.map((l) => `--- ${l}\n${readFileSync(l, 'utf8').split('\n').slice(-15).join('\n')}`);
  throw new Error(`${what} did not come up in ${timeoutMs} ms\n${tails.join('\n')}`);
}

export async function startKubeCluster(): Promise<KubeCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-kube-'));
  const procs: Owned[] = [];
  const stopAll = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    procs.push(
      startProcess(
        'etcd',
        [
          '--name=ygg',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=ygg=http://127.0.0.1:${etcdPeer}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        join(dir, 'etcd.log'),
      ),
    );

    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'sa.key');
    writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const adminToken = randomBytes(16).toString('hex');
    const yggToken = randomBytes(16).toString('hex');
    const tokens = join(dir, 'tokens.csv');
    writeFileSync(tokens, `${adminToken},admin,admin,"system:masters"\n${yggToken},yggdrasil,yggdrasil\n`);
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    const apiLog = join(dir, 'apiserver.log');
    procs.push(
      startProcess(
        join(KUBE_BIN_DIR, 'kube-apiserver'),
        [
          `--etcd-servers=http://127.0.0.1:${etcdClient}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          '--insecure-port=0',
          `--cert-dir=${certs}`,
          `--token-auth-file=${tokens}`,
          '--authorization-mode=RBAC',
          '--service-account-issuer=https://kubernetes.default.svc',
          `--service-account-key-file=${saKey}`,
          `--service-account-signing-key-file=${saKey}`,
          '--service-cluster-ip-range=10.96.0.0/24',
          // No service-account token controller here: pods run without a mounted token.
          '--disable-admission-plugins=ServiceAccount',
          `--feature-gates=${FEATURES}`,
          '--v=0',
        ],
        apiLog,
      ),
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const ca = join(certs, 'apiserver.crt');
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    await waitUntil(
      'kube-apiserver',
      async () => {
        const r = await request(`${server}/readyz`, {
          dispatcher: insecure,
          headers: { authorization: `Bearer ${adminToken}` },
        });
        const body = await r.body.text();
        return r.statusCode === 200 && body.trim() === 'ok';
      },
      60_000,
      [apiLog, join(dir, 'etcd.log')],
    );
    await insecure.close();

    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfig, kubeconfig(server, ca, 'admin', adminToken));
    const yggdrasilKubeconfig = join(dir, 'yggdrasil.kubeconfig');
    writeFileSync(yggdrasilKubeconfig, kubeconfig(server, ca, 'yggdrasil', yggToken));

    const kcmLog = join(dir, 'controller-manager.log');
    procs.push(
      startProcess(
        join(KUBE_BIN_DIR, 'kube-controller-manager'),
        [
          `--kubeconfig=${adminKubeconfig}`,
          '--controllers=deployment,replicaset,endpointslice,garbagecollector',
          '--leader-elect=false',
          '--port=0',
          '--secure-port=0',
          `--feature-gates=${FEATURES}`,
          '--concurrent-deployment-syncs=5',
          '--concurrent-replicaset-syncs=5',
          '--v=0',
        ],
        kcmLog,
      ),
    );

    const kubectl = (args: string[], input?: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const c = spawn('kubectl', [`--kubeconfig=${adminKubeconfig}`, ...args], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        c.on('error', (e) => resolve({ code: 127, stdout, stderr: `${stderr}${e.message}` }));
        c.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
        c.stdin.end(input ?? '');
      });

    return {
      server,
      dir,
      adminKubeconfig,
      yggdrasilKubeconfig,
      adminToken,
      kubectl,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
