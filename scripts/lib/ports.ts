import { createServer } from 'node:net';

/** True when nothing listens on 127.0.0.1:port (we can bind it ourselves). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();

/**
 * A free loopback port, preferring `previous` so that a restarted service keeps the address
 * already written to .stack/env (other shells may have sourced it). The kernel picks the port;
 * ports handed out in this process are never reused, since nothing binds them until later.
 */
export async function freePort(previous?: number): Promise<number> {
  if (previous && !handedOut.has(previous) && (await portIsFree(previous))) {
    handedOut.add(previous);
    return previous;
  }
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}
