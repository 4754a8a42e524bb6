// The CLI's calls to a running controller: JSON over HTTP with the key from YGG_TOKEN (sent as
// `Authorization: Bearer`), and failures turned into one line a person can act on.
import { request } from 'undici';

/** The API key the CLI sends (YGG_TOKEN), if any. */
export const cliToken = (): string | undefined => process.env.YGG_TOKEN || undefined;

export interface CallResult<T> {
  status: number;
  body: T;
}

/** Calls the controller; rejects with a readable Error when it cannot be reached or answers an error. */
export async function callController<T>(
  base: string,
  path: string,
  opts: { method?: 'GET' | 'PUT' | 'POST'; body?: unknown } = {},
): Promise<CallResult<T>> {
  const url = `${base.replace(/\/$/, '')}${path}`;
  const token = cliToken();
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      method: opts.method ?? 'GET',
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    });
  } catch (err) {
    throw new Error(
      `cannot reach the controller at ${base} (${(err as Error).message}); is \`npm start\` running?`,
    );
  }
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  if (res.statusCode >= 400) {
    const e = (body as { error?: { code?: string; message?: string } }).error;
    const hint =
      res.statusCode === 401
        ? token
          ? ' (YGG_TOKEN is not a valid key here)'
          : ' (set YGG_TOKEN to a key made with `npm run add:auth`)'
        : '';
    throw new Error(
      `${url} answered ${res.statusCode} ${e?.code ?? ''}: ${e?.message ?? text}${hint}`.replace('  ', ' '),
    );
  }
  return { status: res.statusCode, body: body as T };
}
