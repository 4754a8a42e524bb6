// Reads a server-sent event stream for tests: every event's id, type and data, until `stopAfter`
// events with an id came (then the connection is dropped, as a client that goes away) or it ends.
import { request } from 'undici';

export interface SseRead {
  status: number;
  /** Ids of the events that had one, in order. */
  ids: number[];
  /** The `event: run-end` block, when the stream ended with one. */
  ended: string;
}

export async function readSse(
  url: string,
  opts: { lastEventId?: number; stopAfter?: number } = {},
): Promise<SseRead> {
  const ac = new AbortController();
  const last = opts.lastEventId ?? 0;
  const res = await request(url, {
    headers: last > 0 ? { 'last-event-id': String(last) } : {},
    signal: ac.signal,
  });
  const ids: number[] = [];
  let ended = '';
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += chunk.toString();
      for (let at = buf.indexOf('\n\n'); at !== -1; at = buf.indexOf('\n\n')) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (block.startsWith('event: run-end')) ended = block;
        const id = /^id: (\d+)$/m.exec(block)?.[1];
        if (id) ids.push(Number(id));
        if (ids.length >= (opts.stopAfter ?? Number.POSITIVE_INFINITY)) {
          ac.abort();
          return { status: res.statusCode, ids, ended };
        }
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  }
  return { status: res.statusCode, ids, ended };
}
