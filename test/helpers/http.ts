// HTTP for tests against containers: undici.request, which fails cleanly when Docker's port proxy
// resets a connection (Node 20's global fetch can hang forever there).
import { request } from 'undici';

export async function httpJson<T = Record<string, unknown>>(
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: T }> {
  const timeout = opts.timeoutMs ?? 5000;
  const res = await request(url, {
    method: opts.method ?? 'GET',
    headersTimeout: timeout,
    bodyTimeout: timeout,
    ...(opts.body !== undefined
      ? { body: JSON.stringify(opts.body), headers: { 'content-type': 'application/json' } }
      : {}),
  });
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.statusCode, headers: res.headers, body: body as T };
}
