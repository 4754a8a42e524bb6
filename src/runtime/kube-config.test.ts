import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isYggError } from '../core/errors.js';
import { loadKubeConfig } from './kube-config.js';

describe('loadKubeConfig', () => {
  const refuses = (file: string | undefined, want: RegExp) =>
    assert.throws(
      () => loadKubeConfig(file, {}),
      (err: unknown) => isYggError(err) && err.code === 'YGG_ERR_CONFIG' && want.test(err.message),
    );

  it('a KUBECONFIG that is not there names the variable and the value', () =>
    refuses(
      '/nonexistent/kubeconfig',
      /^KUBECONFIG="\/nonexistent\/kubeconfig": no such file: give the kubeconfig file of the cluster$/,
    ));

  it('a list of which no file exists', () =>
    refuses(
      '/nonexistent/a:/nonexistent/b',
      /^KUBECONFIG="\/nonexistent\/a:\/nonexistent\/b": none of these files exists/,
    ));

  it('a file that is not a kubeconfig, or names no cluster', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-kc-'));
    try {
      const empty = join(dir, 'empty');
      writeFileSync(empty, '');
      refuses(empty, /is not a kubeconfig file/);
      const none = join(dir, 'none');
      writeFileSync(
        none,
        JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], contexts: [], users: [] }),
      );
      refuses(none, /names no current cluster/);
      const ok = join(dir, 'ok');
      writeFileSync(
        ok,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443' } }],
          users: [{ name: 'u', user: { token: 't' } }],
          contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
          'current-context': 'x',
        }),
      );
      assert.equal(loadKubeConfig(ok, {}).getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
