import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/activity';
import { Agent } from 'undici';

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
    reuseConnections(config);
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

type Dispatcher = { close(): Promise<void> } | undefined;
type CreateDispatcher = (cluster: k8s.Cluster | null, agentOptions: Record<string, unknown>) => Dispatcher;

/**
 * One keep-alive connection pool per (cluster, credentials) for every request of this config.
 * client-node 2.x builds a new undici Agent for each API call when the cluster has TLS options
 * (a CA, a client certificate): every call paid a TCP + TLS handshake, on the worker and on the
 * API server, and the Agent was never closed. The pool is keyed by the TLS material itself, so a
 * rotated certificate (re-read from its file on each request) gets a new pool.
 */
function reuseConnections(config: k8s.KubeConfig): void {
  const target = config as unknown as { createDispatcher: CreateDispatcher };
  const original = target.createDispatcher.bind(config);
  const create: CreateDispatcher = (cluster, agentOptions) => {
    const opts = config.createDispatcherOptions(cluster, agentOptions);
    if (opts.type !== 'agent') return original(cluster, agentOptions);
    // HTTP/1.1 keep-alive, not undici 8's default HTTP/2: with every call of the worker on one
    // HTTP/2 session, one session error fails all calls in flight at once (measured: 200 releases
    // at once lost 5 calls to a single ERR_HTTP2_TOO_MANY_INVALID_FRAMES). Sockets fail one by one.
    return new Agent({ connect: opts.connect, allowH2: false });
  };
  const pools = new Map<string, Dispatcher>();
  target.createDispatcher = (cluster, agentOptions) => {
    const h = createHash('sha256').update(`${cluster?.name ?? ''}\u0000${cluster?.server ?? ''}\u0000${cluster?.proxyUrl ?? ''}`);
    for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername']) h.update(`\u0000${k}=`).update(String(agentOptions[k] ?? ''));
    const key = h.digest('hex');
    if (pools.has(key)) return pools.get(key);
    for (const old of pools.values()) void old?.close().catch(() => undefined); // rotated credentials: the old pool drains
    pools.clear();
    const pool = create(cluster, agentOptions);
    pools.set(key, pool);
    return pool;
  };
}

/** For tests that switch KUBECONFIG (e.g. to a least-privilege ServiceAccount). */
export function resetKubeClients(): void {
  cache.clear();
}
