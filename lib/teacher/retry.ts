/**
 * Retries for teacher requests: exponential backoff with jitter on rate limits (429), server
 * errors (5xx), timeouts, dropped connections and unreadable responses; a `Retry-After`
 * (or OpenAI's `retry-after-ms`) is honoured as the minimum wait. Other errors (400, 401, 404)
 * fail at once: retrying cannot fix them.
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

export type FailureKind = 'rate_limit' | 'server' | 'timeout' | 'connection' | 'malformed' | 'aborted' | 'fatal';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  maxRetries: number;
  /** First backoff; doubles per retry. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 8, baseDelayMs: 500, maxDelayMs: 30_000 };

/** A 2xx response whose body is not a usable completion. */
export class MalformedResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedResponseError';
  }
}

export interface ErrorClass {
  kind: FailureKind;
  retryable: boolean;
  status?: number;
  /** From Retry-After / retry-after-ms, when the server sent one. */
  retryAfterMs?: number;
}

type HeaderBag = Headers | Record<string, string | string[] | undefined> | undefined;

function header(headers: HeaderBag, name: string): string | undefined {
  if (!headers) return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  const v = bag[name] ?? bag[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** `retry-after-ms` (OpenAI), else `Retry-After` as seconds or an HTTP date; undefined if absent or nonsense. */
export function parseRetryAfter(headers: HeaderBag, now: number = Date.now()): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const value = header(headers, 'retry-after');
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

const RESET_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

function causeCode(err: unknown): string | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && typeof cur === 'object' && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export function classifyError(err: unknown): ErrorClass {
  if (err instanceof APIUserAbortError || (err instanceof Error && err.name === 'AbortError')) {
    return { kind: 'aborted', retryable: false };
  }
  if (err instanceof APIConnectionTimeoutError) return { kind: 'timeout', retryable: true };
  if (err instanceof APIConnectionError) return { kind: 'connection', retryable: true };
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    const retryAfterMs = parseRetryAfter(err.headers);
    const base = retryAfterMs !== undefined ? { status, retryAfterMs } : { status };
    if (status === 429) return { kind: 'rate_limit', retryable: true, ...base };
    if (status >= 500) return { kind: 'server', retryable: true, ...base };
    if (status === 408 || status === 409) return { kind: 'timeout', retryable: true, ...base };
    return { kind: 'fatal', retryable: false, ...base };
  }
  // A body cut short or not JSON: fetch's body reader and JSON.parse throw these.
  if (err instanceof MalformedResponseError || err instanceof SyntaxError) return { kind: 'malformed', retryable: true };
  const code = causeCode(err);
  if (code && RESET_CODES.has(code)) return { kind: 'connection', retryable: true };
  if (err instanceof TypeError && /terminated|fetch failed|socket|network/i.test(err.message)) {
    return { kind: 'connection', retryable: true };
  }
  return { kind: 'fatal', retryable: false };
}

/**
 * Wait before retry number `retry` (0-based): "equal jitter" — half the exponential step fixed,
 * half random — so waits grow but concurrent workers spread out. A Retry-After is the floor.
 */
export function backoffDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  const jittered = step / 2 + (random() * step) / 2;
  if (retryAfterMs === undefined) return jittered;
  // Honour the server's wait, plus up to 10% so a burst of 429s does not come back in lockstep.
  return retryAfterMs * (1 + 0.1 * random());
}

/** The last error of a request that ran out of retries or failed for good. */
export class TeacherRequestError extends Error {
  readonly kind: FailureKind;
  readonly attempts: number;
  readonly status?: number;
  constructor(cause: unknown, info: ErrorClass, attempts: number) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${info.kind}${info.status ? ` (HTTP ${info.status})` : ''} after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`, { cause });
    this.name = 'TeacherRequestError';
    this.kind = info.kind;
    this.attempts = attempts;
    if (info.status !== undefined) this.status = info.status;
  }
}

export interface RetryEvent {
  retry: number;
  delayMs: number;
  error: ErrorClass;
}

export interface RetryHooks {
  onRetry?: (event: RetryEvent) => void;
  signal?: AbortSignal;
  random?: () => number;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Run `attempt` until it succeeds, fails for good, or runs out of retries (then TeacherRequestError). */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const info = classifyError(err);
      if (info.kind === 'aborted' || hooks.signal?.aborted) throw err;
      if (!info.retryable || n >= policy.maxRetries) throw new TeacherRequestError(err, info, n + 1);
      const delayMs = backoffDelay(n, policy, info.retryAfterMs, hooks.random);
      hooks.onRetry?.({ retry: n, delayMs, error: info });
      await sleep(delayMs, hooks.signal);
    }
  }
}
