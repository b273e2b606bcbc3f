import { ApplicationFailure } from '@temporalio/activity';
import type { KubeClients } from './clients.ts';
import { KUBE_DENIED, describeObject, kubeCall } from './errors.ts';

export interface AccessCheck {
  group: string;
  /** plural, e.g. kustomizations */
  resource: string;
  namespace: string;
  name: string;
  verbs: string[];
}

const resourceName = (group: string, resource: string) => (group ? `${resource}.${group}` : resource);

/**
 * Asks the API server (SelfSubjectAccessReview) whether the worker's own identity may use each verb
 * on the object, so a missing permission stops the release in preflight instead of halfway through.
 */
export async function requireAccess(clients: KubeClients, check: AccessCheck): Promise<void> {
  const resource = resourceName(check.group, check.resource);
  for (const verb of check.verbs) {
    const review = await kubeCall(
      { verb: 'create', resource: 'selfsubjectaccessreviews.authorization.k8s.io', namespace: check.namespace, name: check.name, context: clients.context },
      () =>
        clients.authorization.createSelfSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: { resourceAttributes: { group: check.group, resource: check.resource, verb, namespace: check.namespace, name: check.name } },
          },
        }),
    );
    if (!review.status?.allowed) {
      const why = review.status?.reason || review.status?.evaluationError;
      throw ApplicationFailure.create({
        type: KUBE_DENIED,
        nonRetryable: true,
        message:
          `the worker may not "${verb}" ${describeObject({ resource, namespace: check.namespace, name: check.name, context: clients.context })}` +
          `${why ? ` (${why})` : ''}: grant it in the worker's role (deploy/rbac.yaml)`,
      });
    }
  }
}
