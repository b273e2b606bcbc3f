/**
 * `hybrid-release validate` reads the spec's Flux targets with the local kubeconfig and warns
 * where a gate would be weaker than it looks — here a Kustomization the real controllers apply
 * with neither wait nor healthChecks — without changing its exit code; `--offline` reads nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { uniqueName } from '../support/env.ts';
import { adminKubeConfig, createKustomization, createNamespace } from '../support/seed-kube.ts';

const bin = fileURLToPath(new URL('../../client/bin.ts', import.meta.url));
const kc = adminKubeConfig();
const ns = uniqueName('validate');

before(async () => {
  await createNamespace(ns, kc);
  await createKustomization({ namespace: ns, name: 'applied-only', images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }], wait: false }, kc);
  await createKustomization({ namespace: ns, name: 'health-checked', images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }] }, kc);
});
after(async () => {
  await kc.makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: ns }).catch(() => undefined);
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

function spec(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'hr-validate-')), 'release.yaml');
  writeFileSync(
    file,
    `apiVersion: hybrid-release.dev/v1alpha1
kind: HybridRelease
metadata: { name: web-1-1-0 }
spec:
  app: web
  flux:
    - { id: a, kind: Kustomization, namespace: ${ns}, name: applied-only, images: [{ name: ghcr.io/acme/web, newTag: "1.1.0" }] }
    - { id: b, kind: Kustomization, namespace: ${ns}, name: health-checked, images: [{ name: ghcr.io/acme/web, newTag: "1.1.0" }] }
`,
  );
  return file;
}

describe('validate', () => {
  it('warns about a Kustomization whose Ready only means applied, and only about that one; exit 0', async () => {
    const run = await cli(['validate', '-f', spec()]);
    assert.equal(run.code, 0, run.stderr);
    const warnings = run.stdout.split('\n').filter((l) => l.startsWith('warning:'));
    assert.equal(warnings.length, 1, run.stdout);
    assert.match(warnings[0]!, new RegExp(`Kustomization ${ns}/applied-only has neither wait nor healthChecks: its Ready=True means Flux applied the manifests, not that the pods are healthy`));
    const json = JSON.parse((await cli(['validate', '-f', spec(), '-o', 'json'])).stdout) as { valid: boolean; warnings: string[]; notChecked: string[] };
    assert.equal(json.valid, true);
    assert.equal(json.warnings.length, 1);
    assert.deepEqual(json.notChecked, []);
  });

  it('--offline reads no target', async () => {
    const run = await cli(['validate', '-f', spec(), '--offline']);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /warning:|note:/);
  });
});
