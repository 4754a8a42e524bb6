// Starts an HTTP server on host:port and resolves with the port actually bound (port 0 = any free one).
import type { Server } from 'node:http';
import { type AddressInfo, Server as NetServer } from 'node:net';

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops accepting and nothing more: open connections, idle keep-alive ones too, stay until they end
 * on their own (the client's keep-alive timeout is shorter than the server's, so it closes first).
 * http.Server.close() would also close the idle ones at once, racing a client that is reusing one
 * right then (its request fails). For a listener whose socket another process now accepts on.
 */
export function stopAccepting(server: Server): void {
  if (server.listening) NetServer.prototype.close.call(server);
}

/** After stopAccepting: closes its idle connections (busy ones as they go idle); resolves once none is left. */
export function finishConnections(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.once('close', () => {
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Stops accepting, closes idle keep-alive connections, resolves when every connection is gone. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    // Connections busy now become idle later; keep closing idle ones until the server is empty.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}
