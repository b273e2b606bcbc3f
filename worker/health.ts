/**
 * Liveness and readiness for Kubernetes probes: /healthz answers while the process runs,
 * /readyz only while the worker is polling Temporal.
 */
import { createServer, type Server } from 'node:http';

export function startHealthServer(address: string, isReady: () => boolean): Promise<Server> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const server = createServer((req, res) => {
    const ok = req.url === '/healthz' ? true : req.url === '/readyz' ? isReady() : undefined;
    res.writeHead(ok === undefined ? 404 : ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(ok === undefined ? 'not found\n' : ok ? 'ok\n' : 'not ready\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || '0.0.0.0', () => resolve(server));
  });
}
