/**
 * A small delaying TCP proxy for tests: what the client sends reaches the server `delayMs(chunk)`
 * later, in order. Bytes already sent are forwarded even when the client has gone away (as on a
 * real network: a request that left the client may still land), and only then is the upstream
 * connection closed. Works in front of plain HTTP (goiardi: delay only PUTs by looking at the
 * chunk) and of TLS (kube-apiserver: the client dials the proxy's port, the certificate is the
 * server's; a delay for every chunk).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface DelayProxy {
  /** 127.0.0.1:port */
  address: string;
  port: number;
  /** change the delay rule on the fly */
  setDelay(rule: (chunk: Buffer) => number): void;
  /** chunks forwarded so far that the rule delayed */
  delayed(): number;
  close(): Promise<void>;
}

export async function startDelayProxy(upstream: { host: string; port: number }, rule: (chunk: Buffer) => number = () => 0): Promise<DelayProxy> {
  let delayOf = rule;
  let delayedCount = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(upstream.port, upstream.host);
    sockets.add(client);
    sockets.add(up);
    // the client's bytes go out in order, each no earlier than its own delay
    let chain = Promise.resolve();
    let clientGone = false;
    client.on('data', (chunk: Buffer) => {
      const ms = delayOf(chunk);
      if (ms > 0) delayedCount++;
      chain = chain.then(async () => {
        if (ms > 0) await new Promise((r) => setTimeout(r, ms));
        if (!up.destroyed) up.write(chunk);
      });
    });
    const endUp = () => {
      if (clientGone) return;
      clientGone = true;
      // what was sent still lands; then the upstream side closes
      void chain.then(() => setTimeout(() => up.end(), 50));
    };
    client.on('end', endUp);
    client.on('close', endUp);
    client.on('error', endUp);
    up.on('data', (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk);
    });
    up.on('end', () => client.end());
    up.on('error', () => client.destroy());
    up.on('close', () => {
      sockets.delete(up);
      client.destroy();
    });
    client.on('close', () => sockets.delete(client));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    setDelay(r) {
      delayOf = r;
    },
    delayed: () => delayedCount,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Delays chunks that start an HTTP request with `method` (plain HTTP only). */
export const delayMethod = (method: string, ms: number) => (chunk: Buffer) => (chunk.subarray(0, method.length + 1).toString('latin1') === `${method} ` ? ms : 0);
