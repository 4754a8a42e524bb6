// Who may open the live feed: clients without an Origin (the CLI, scripts) and pages served by the same
// origin: same host and same port. A page of another site (or of another port of this host: another
// app on localhost) must not read the pool through the visitor's browser (cross-site WebSocket
// hijacking), which CORS alone does not stop for WebSockets. A proxy in front must keep the port in
// Host (nginx: `proxy_set_header Host $http_host`).

/** True when `origin` (the Origin header) is absent or names exactly the host and port of `host`. */
export function isSameHost(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (host === undefined) return false;
  try {
    const o = new URL(origin);
    return o.host === new URL(`${o.protocol}//${host}`).host;
  } catch {
    return false;
  }
}
