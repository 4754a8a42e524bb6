// One HTTP health check of an instance: GET <AGENT_HEALTH_PATH> answering 2xx within the timeout.
import { request } from 'undici';
import { type Endpoint, urlOf } from '../runtime/driver.js';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

export async function probeHealth(endpoint: Endpoint, path: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const res = await request(`${urlOf(endpoint)}${path}`, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body.dump();
    return res.statusCode >= 200 && res.statusCode < 300
      ? { ok: true }
      : { ok: false, reason: `HTTP ${res.statusCode} on ${path}` };
  } catch (err) {
    const e = err as { code?: string; name?: string; message?: string };
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      return { ok: false, reason: `no answer in ${timeoutMs} ms` };
    return { ok: false, reason: e.code ?? e.message ?? String(err) };
  }
}
