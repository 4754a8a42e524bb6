// The router's bounded store of GET answers (RESPONSE_CACHE_BYTES): answers by URL, each URL with its
// variants (the coding the router applied, the values of the request headers the answer varies on),
// least recently used URLs evicted first, an answer too big for an eighth of the room never stored.
// What may be stored, and for how long, is cache-policy.ts's to say. Pure: time is an argument.
import { varyKey } from './cache-policy.js';

type Headers = Record<string, string | string[] | undefined>;

export interface CachedAnswer {
  status: number;
  /** The headers the client got (the router's own per-request ones left out). */
  headers: Record<string, string | string[]>;
  body: Buffer;
  storedAt: number;
  expiresAt: number;
}

interface Variant extends CachedAnswer {
  /** The router's coding of the body (`br`, `gzip`), or `*`: the agent's bytes, for any client. */
  coding: string;
  vary: string[];
  varyKey: string;
  bytes: number;
}

/** A URL with more variants than this drops its oldest (a Vary on a header every client sets differently). */
const MAX_VARIANTS = 16;
/** What an entry costs beyond its body and headers (the objects and the map slot), roughly. */
const OVERHEAD_BYTES = 256;

function sizeOf(a: CachedAnswer, key: string): number {
  let n = OVERHEAD_BYTES + key.length + a.body.length;
  for (const name in a.headers) {
    const v = a.headers[name];
    n += name.length + (Array.isArray(v) ? v.join('').length : (v?.length ?? 0));
  }
  return n;
}

export class ResponseCache {
  private readonly urls = new Map<string, Variant[]>();
  private used = 0;
  readonly maxEntryBytes: number;

  constructor(readonly maxBytes: number) {
    this.maxEntryBytes = Math.floor(maxBytes / 8);
  }

  get bytes(): number {
    return this.used;
  }

  get entries(): number {
    let n = 0;
    for (const vs of this.urls.values()) n += vs.length;
    return n;
  }

  /** A fresh stored answer for this URL, coding and request, if there is one (and it counts as used). */
  get(url: string, coding: string, request: Headers, now: number): CachedAnswer | undefined {
    const vs = this.urls.get(url);
    if (!vs) return undefined;
    let found: Variant | undefined;
    for (let i = vs.length - 1; i >= 0; i--) {
      const v = vs[i]!;
      if (v.expiresAt <= now) {
        this.used -= v.bytes;
        vs.splice(i, 1);
      } else if (
        !found &&
        (v.coding === '*' || v.coding === coding) &&
        v.varyKey === varyKey(v.vary, request)
      ) {
        found = v;
      }
    }
    this.urls.delete(url);
    if (vs.length > 0) this.urls.set(url, vs);
    return found;
  }

  /** Stores an answer (replacing the same variant); false when it is too big to keep. */
  put(
    url: string,
    coding: string,
    vary: string[],
    request: Headers,
    answer: CachedAnswer,
    now: number,
  ): boolean {
    const bytes = sizeOf(answer, url);
    if (bytes > this.maxEntryBytes || answer.expiresAt <= now) return false;
    const key = varyKey(vary, request);
    const vs = (this.urls.get(url) ?? []).filter((v) => {
      const same = v.coding === coding && v.varyKey === key;
      if (same) this.used -= v.bytes;
      return !same;
    });
    while (vs.length >= MAX_VARIANTS) this.used -= vs.shift()!.bytes;
    vs.push({ ...answer, coding, vary, varyKey: key, bytes });
    this.used += bytes;
    this.urls.delete(url);
    this.urls.set(url, vs);
    for (const [oldest, olds] of this.urls) {
      if (this.used <= this.maxBytes) break;
      for (const v of olds) this.used -= v.bytes;
      this.urls.delete(oldest);
    }
    return true;
  }
}
