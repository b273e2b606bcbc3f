import { pollGate } from '../gates/poll.ts';
import type { CheckOutcome, GateResult } from '../gates/result.ts';
import { enforceKube } from '../../policy/enforce.ts';
import { evaluateFlux, type FluxWritten } from '../flux/readiness.ts';
import { fluxRef, getFlux } from '../flux/resource.ts';
import type { FluxTarget, KustomizeImage } from '../flux/types.ts';
import { imageRepository } from '../flux/preflight.ts';
import { kubeClients } from './clients.ts';
import { kubeCall, kubeFailure, statusOf } from './errors.ts';
import { imageStatus, rolloutStatus, selectorString } from './rollout-status.ts';
import type { DeploymentRef } from './types.ts';

/**
 * What the release produced, so the gate judges the rollout of that template and never the
 * Deployment as it was before Flux applied anything (optional: the first-stage workflow sends none).
 */
export interface RolloutExpectation {
  /**
   * `spec.images` entries the release set (or, after a rollback, restored) on Kustomizations in
   * this Deployment's cluster: a container whose repository is an entry's name (or newName) must
   * run exactly the image kustomize makes of it.
   */
  images?: KustomizeImage[];
  /**
   * The release's Flux objects in this cluster and what it wrote to them: when no image tells,
   * the template counts as the release's once the Flux object that manages the Deployment (its
   * kustomize/helm-controller labels say which) reports the written generation applied.
   */
  flux?: Array<{ target: FluxTarget; written: FluxWritten }>;
  /**
   * Pass at once when none of `flux` manages the Deployment and no image tells (the rollback's
   * wait: a Deployment the restored object does not manage has nothing to come back to).
   */
  managedOnly?: boolean;
}

/** Whether a Flux object manages the Deployment: the labels kustomize- and helm-controller put on what they apply. */
export function managedBy(labels: Record<string, string> | undefined, target: Pick<FluxTarget, 'kind' | 'namespace' | 'name'>): boolean {
  const prefix = target.kind === 'Kustomization' ? 'kustomize.toolkit.fluxcd.io' : 'helm.toolkit.fluxcd.io';
  return labels?.[`${prefix}/name`] === target.name && labels?.[`${prefix}/namespace`] === target.namespace;
}

export interface RolloutGateInput {
  gate: string;
  deployment: DeploymentRef;
  timeoutMs: number;
  intervalMs: number;
  successes: number;
  expect?: RolloutExpectation;
}

/** The image reference kustomize's images transformer writes for an entry (digest wins over tag). */
export function kustomizedImage(e: KustomizeImage): string {
  const repo = e.newName ?? e.name;
  return e.digest ? `${repo}@${e.digest}` : e.newTag ? `${repo}:${e.newTag}` : repo;
}

/**
 * Whether the Deployment's pod template is the one the release produced, judged by images:
 * 'this' (every container of a released repository runs the released image), 'other' (one still
 * runs something else: Flux has not applied the release yet, or applied something else), or
 * 'unknown' (no container runs a repository the release set).
 */
export function templateByImages(containers: Array<{ name: string; image?: string }>, images: KustomizeImage[]): { verdict: 'this' | 'other' | 'unknown'; reason: string } {
  let matched = 0;
  for (const entry of images) {
    const repos = new Set([entry.name, entry.newName].filter((r): r is string => !!r));
    const want = kustomizedImage(entry);
    for (const c of containers) {
      if (!repos.has(imageRepository(c.image ?? ''))) continue;
      if (c.image !== want) return { verdict: 'other', reason: `container "${c.name}" runs ${c.image}, not ${want} yet` };
      matched++;
    }
  }
  return matched ? { verdict: 'this', reason: `the template runs ${images.map(kustomizedImage).join(', ')}` } : { verdict: 'unknown', reason: 'no container runs an image the release set' };
}

/**
 * The rollout gate: `kubectl rollout status` of the template the release produced (see
 * RolloutExpectation), failing with the Deployment's own reason when that rollout stalls, plus
 * the optional check of the image every pod runs.
 */
export async function rolloutGateActivity(input: RolloutGateInput): Promise<GateResult> {
  const { deployment: ref } = input;
  enforceKube({ kind: 'Deployment', namespace: ref.namespace, name: ref.name, ...(ref.context ? { context: ref.context } : {}) });
  const clients = kubeClients(ref.context);
  const op = (verb: string, resource: string) => ({ verb, resource, namespace: ref.namespace, name: ref.name, context: clients.context });
  return pollGate({ name: input.gate, kind: 'rollout' }, input, async (): Promise<CheckOutcome> => {
    let d;
    try {
      d = await clients.apps.readNamespacedDeployment({ namespace: ref.namespace, name: ref.name });
    } catch (err) {
      // Flux may create the Deployment with the release it is applying.
      if (statusOf(err) === 404) return { status: 'wait', reason: `deployment ${ref.namespace}/${ref.name} not found (yet) in context ${clients.context}` };
      throw kubeFailure(err, op('get', 'deployments.apps'));
    }
    const name = d.metadata?.name ?? ref.name;
    const template = await releasedTemplate(input.expect, d.metadata?.labels, [...(d.spec?.template.spec?.containers ?? []), ...(d.spec?.template.spec?.initContainers ?? [])]);
    if (template.verdict === 'unmanaged') return { status: 'pass', observed: null, reason: `deployment "${name}": ${template.reason}` };
    if (template.verdict === 'other' || template.verdict === 'pending') {
      return { status: 'wait', observed: { generation: d.metadata?.generation ?? null }, reason: `deployment "${name}": ${template.reason}` };
    }
    const rollout = rolloutStatus(d);
    if (template.verdict === 'flux-failed') {
      // Flux reports the release's spec failed: fail with the Deployment's own reason when its
      // rollout stalled, else with Flux's (the template may be the previous one, e.g. after
      // helm-controller's rollback remediation, whose rollout must not count)
      if (rollout.status === 'fail') return rollout;
      return { status: 'fail', observed: rollout.observed, reason: `deployment "${name}": the release's template was not rolled out: ${template.reason}` };
    }
    if (rollout.status !== 'pass' || !ref.image) return rollout;
    const pods = await kubeCall(op('list', 'pods'), () =>
      clients.core.listNamespacedPod({ namespace: ref.namespace, labelSelector: selectorString(d.spec?.selector) }),
    );
    const image = imageStatus(d, pods.items, { image: ref.image, container: ref.container });
    return { ...image, observed: { rollout: rollout.observed, image: image.observed }, reason: image.status === 'pass' ? `${rollout.reason}; ${image.reason}` : image.reason };
  });
}

type TemplateVerdict = { verdict: 'this' | 'other' | 'pending' | 'flux-failed' | 'unknown' | 'unmanaged'; reason: string };

/**
 * Is the current template the release's? Images first; otherwise what the Flux object that
 * manages the Deployment says about the generation the release wrote to it.
 */
async function releasedTemplate(expect: RolloutExpectation | undefined, labels: Record<string, string> | undefined, containers: Array<{ name: string; image?: string }>): Promise<TemplateVerdict> {
  if (!expect) return { verdict: 'unknown', reason: 'no expectation' };
  const managing = (expect.flux ?? []).filter((f) => managedBy(labels, f.target));
  if (managing.length === 0 && expect.managedOnly) {
    return { verdict: 'unmanaged', reason: `not managed by ${(expect.flux ?? []).map((f) => `${f.target.kind} ${f.target.namespace}/${f.target.name}`).join(', ') || 'the restored objects'}: nothing to wait for` };
  }
  const byImages = templateByImages(containers, expect.images ?? []);
  if (byImages.verdict === 'other') return { verdict: 'other', reason: `${byImages.reason}: Flux has not applied the release's template yet` };
  if (byImages.verdict === 'this') return byImages;
  for (const { target, written } of managing) {
    const outcome = evaluateFlux(target.kind, await getFlux(fluxRef(target)), written);
    if (outcome.status === 'wait') return { verdict: 'pending', reason: `waiting for Flux to apply the release (${outcome.reason})` };
    if (outcome.status === 'fail') return { verdict: 'flux-failed', reason: outcome.reason };
  }
  return { verdict: 'unknown', reason: managing.length ? 'Flux applied the release' : 'not managed by the release\'s Flux objects' };
}
