// Who failed, and what may be done about it. A forward attempt ends in one of four ways; this module
// says which of them count against the instance's breaker (only what the instance did: refused or reset
// connections, timeouts, gateway answers 502/503/504, every 5xx if BREAKER_COUNT_5XX), whether the
// request may go to another instance (only when it provably never reached one), and what the client is
// told. Router-side errors, client aborts and client mistakes never count. Pure.
import { YggError } from '../core/errors.js';

export type ForwardOutcome =
  /** The instance answered (any status) and the answer reached the client whole. */
  | { kind: 'response'; status: number }
  /** No connection to the instance could be made: nothing was sent. */
  | { kind: 'unreached'; error: Error }
  /** The exchange broke after a connection was made; `by` says whose fault it was. */
  | {
      kind: 'failed';
      error: Error;
      by: 'instance' | 'client' | 'router';
      /** The instance took longer than REQUEST_TIMEOUT_MS for its headers or the next body chunk. */
      timeout: boolean;
      /** The answer had started reaching the client (its status is already sent). */
      headersSent: boolean;
    }
  /** The client went away first. */
  | { kind: 'aborted' };

/** How an attempt weighs on the instance's breaker. */
export type Verdict = 'success' | 'failure' | 'neutral';

// Errors raised before any byte of the request left for the instance.
const UNREACHED = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'UPSTREAM_CONNECT_TIMEOUT',
  'UPSTREAM_CONNECT_FAILED',
  // The instance left the pool before the request was sent on it.
  'UPSTREAM_POOL_CLOSED',
]);
const TIMEOUTS = new Set(['UPSTREAM_HEADERS_TIMEOUT', 'UPSTREAM_BODY_TIMEOUT']);
/** A header the router would send is unsafe (h1/request-head.ts): the request, not the instance. */
const ROUTER = new Set(['UPSTREAM_INVALID_HEADER']);
/** The client's body did not match the length it declared (it stopped sending, or sent more). */
const CLIENT = new Set(['UPSTREAM_CONTENT_LENGTH_MISMATCH']);

/**
 * The outcome of an attempt that the upstream pool (h1/) ended with `err`. `bodyError` is the error our own request
 * body stream failed with, when it did (the client's upload was too large, too slow or cut).
 */
export function classify(
  err: Error & { code?: string },
  ctx: { headersSent: boolean; bodyError: Error | undefined },
): ForwardOutcome {
  const code = err.code ?? '';
  if (!ctx.headersSent && UNREACHED.has(code)) return { kind: 'unreached', error: err };
  const failed = (by: 'instance' | 'client' | 'router', error: Error = err): ForwardOutcome => ({
    kind: 'failed',
    error,
    by,
    timeout: TIMEOUTS.has(code),
    headersSent: ctx.headersSent,
  });
  if (ctx.bodyError || CLIENT.has(code)) return failed('client', ctx.bodyError ?? err);
  if (err instanceof YggError || ROUTER.has(code)) return failed('router');
  return failed('instance');
}

export function verdictOf(o: ForwardOutcome, count5xx: boolean): Verdict {
  switch (o.kind) {
    case 'response':
      if (o.status === 502 || o.status === 503 || o.status === 504) return 'failure';
      return count5xx && o.status >= 500 ? 'failure' : 'success';
    case 'unreached':
      return 'failure';
    case 'failed':
      return o.by === 'instance' ? 'failure' : 'neutral';
    case 'aborted':
      return 'neutral';
  }
}

export interface RetryContext {
  /** Whether any byte of a streamed body was taken from the client (then it cannot be sent again). */
  bodyStarted: boolean;
  /** The attempt that just ended, 1-based. */
  attempt: number;
  /** MAX_RETRIES. */
  maxRetries: number;
  /** The request named its instance (/agent/{id}/…): there is nowhere else to send it. */
  named: boolean;
}

/**
 * Whether to send the request to another instance: only when it provably never reached one (no
 * connection could be made), whatever its method. Never after a timeout, a reset or any answer:
 * the instance may have acted on it, and an agent's slow request would run (and cost) again.
 */
export function mayRetry(o: ForwardOutcome, c: RetryContext): boolean {
  return o.kind === 'unreached' && !c.bodyStarted && !c.named && c.attempt <= c.maxRetries;
}

/** What the client is told when an attempt failed and is not retried. */
export function errorFor(
  o: Extract<ForwardOutcome, { kind: 'unreached' | 'failed' }>,
  instanceId: string,
  requestTimeoutMs: number,
): YggError {
  if (o.kind === 'unreached') {
    return new YggError(
      'YGG_ERR_UPSTREAM',
      `instance ${instanceId} could not be reached: ${o.error.message}`,
    );
  }
  if (o.error instanceof YggError) return o.error;
  if (o.by === 'client')
    return new YggError('YGG_ERR_BAD_REQUEST', `the request body ended early: ${o.error.message}`);
  if (o.by === 'router') {
    return new YggError('YGG_ERR_BAD_REQUEST', `the router cannot forward this request: ${o.error.message}`);
  }
  if (o.timeout) {
    return new YggError(
      'YGG_ERR_TIMEOUT',
      `instance ${instanceId} did not answer within REQUEST_TIMEOUT_MS=${requestTimeoutMs}`,
    );
  }
  return new YggError(
    'YGG_ERR_UPSTREAM',
    `instance ${instanceId} failed before answering: ${o.error.message}`,
  );
}
