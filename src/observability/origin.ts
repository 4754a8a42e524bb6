// Who may open the live feed: clients without an Origin (the CLI, scripts) and pages served by the same
// host. A page of another site must not read the pool through the visitor's browser (cross-site
// WebSocket hijacking), which CORS alone does not stop for WebSockets.

/**
 * True when `origin` (the Origin header) is absent or names the host of `host` (the Host header). Ports
 * are not compared: a reverse proxy (deploy/nginx) passes `Host: $host`, which drops the public port.
 */
export function isSameHost(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (host === undefined) return false;
  try {
    return new URL(origin).hostname === new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
}
