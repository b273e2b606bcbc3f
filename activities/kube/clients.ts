import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/activity';

/**
 * One set of API clients per kubeconfig context, created on first use and reused, so a release
 * touching several clusters opens one connection pool per cluster.
 * Loading order is the usual one: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
 */
export interface KubeClients {
  context: string;
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  networking: k8s.NetworkingV1Api;
  customObjects: k8s.CustomObjectsApi;
  authorization: k8s.AuthorizationV1Api;
  watch: k8s.Watch;
}

const cache = new Map<string, KubeClients>();

export function kubeClients(context?: string): KubeClients {
  const key = `${process.env.KUBECONFIG ?? ''}\u0000${context ?? ''}`;
  let clients = cache.get(key);
  if (!clients) {
    const config = new k8s.KubeConfig();
    config.loadFromDefault();
    if (context) {
      if (!config.getContextObject(context)) {
        // A spec naming a context this worker does not have will not heal by retrying.
        throw ApplicationFailure.create({
          type: 'KubeContextUnknown',
          nonRetryable: true,
          message: `kube context "${context}" is not in the kubeconfig (known: ${config.getContexts().map((c) => c.name).join(', ') || 'none'})`,
        });
      }
      config.setCurrentContext(context);
    }
    clients = {
      context: config.getCurrentContext(),
      config,
      core: config.makeApiClient(k8s.CoreV1Api),
      apps: config.makeApiClient(k8s.AppsV1Api),
      networking: config.makeApiClient(k8s.NetworkingV1Api),
      customObjects: config.makeApiClient(k8s.CustomObjectsApi),
      authorization: config.makeApiClient(k8s.AuthorizationV1Api),
      watch: new k8s.Watch(config),
    };
    cache.set(key, clients);
  }
  return clients;
}

/** For tests that switch KUBECONFIG (e.g. to a least-privilege ServiceAccount). */
export function resetKubeClients(): void {
  cache.clear();
}
