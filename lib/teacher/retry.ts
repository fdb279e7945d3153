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
  /**
   * The longest server-requested wait (Retry-After / retry-after-ms) obeyed; a longer one is cut
   * to this (and the retry log line says so). Default 60 s: a `Retry-After: 86400` must not
   * park a collection for a day.
   */
  maxRetryAfterMs?: number;
}

export const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 8, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS };

/** A 2xx response whose body is not a usable completion. */
export class MalformedResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedResponseError';
  }
}

/**
 * A response body (after decompression) over the client's `maxResponseBytes`: a gzip bomb or a
 * runaway server. Not retried: the next answer would likely be the same.
 */
export class ResponseTooLargeError extends Error {
  readonly code = 'ERR_TEACHER_RESPONSE_TOO_LARGE';
  constructor(
    readonly url: string,
    readonly limitBytes: number,
  ) {
    super(`response from ${safeUrl(url)} is larger than maxResponseBytes (${limitBytes} bytes, after decompression); refused`);
    this.name = 'ResponseTooLargeError';
  }
}

/** A URL fit for messages and logs: no user:password, no query string (keys travel there on some services). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.href;
  } catch {
    return '(unparseable URL)';
  }
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the server',
  EPIPE: 'connection closed by the server while sending',
  ETIMEDOUT: 'connection timed out',
  ECONNABORTED: 'connection aborted',
  ENOTFOUND: 'host not found (DNS)',
  EAI_AGAIN: 'host name lookup failed (DNS, temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for response headers',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the response body',
};

/**
 * What went wrong on the wire, from a fetch error and its causes: the errno-style code with a few
 * words (`connection refused (ECONNREFUSED)`), TLS / certificate failures as such, else the
 * innermost message.
 */
export function describeNetworkCause(err: unknown): string {
  const chain: Error[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 6; depth++) {
    chain.push(cur);
    cur = (cur as { cause?: unknown }).cause;
  }
  for (const e of chain) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH/.test(code)) {
      return `TLS / certificate error (${code}): ${e.message}`;
    }
    const words = NETWORK_CODES[code];
    if (words) return `${words} (${code}${e.message && !e.message.includes(code) ? `: ${e.message}` : ''})`;
  }
  const innermost = chain.at(-1);
  return innermost ? innermost.message || innermost.name : String(err);
}

/** `APIConnectionError` ("Connection error.") with its cause and the URL in the message. */
export class TeacherConnectionError extends APIConnectionError {
  readonly url: string;
  /** A TLS / certificate failure: retrying cannot fix it, so it is not retried. */
  readonly tls: boolean;
  constructor(url: string, cause: unknown) {
    const description = describeNetworkCause(cause);
    super({ message: `${description} — POST ${safeUrl(url)}`, cause: cause instanceof Error ? cause : undefined });
    this.name = 'TeacherConnectionError';
    this.url = safeUrl(url);
    this.tls = description.startsWith('TLS');
  }
}

/** `APIConnectionTimeoutError` ("Request timed out.") saying after how long and for which URL. */
export class TeacherTimeoutError extends APIConnectionTimeoutError {
  readonly url: string;
  readonly timeoutMs: number;
  constructor(url: string, timeoutMs: number) {
    super({ message: `request timed out after ${timeoutMs} ms (timeoutMs) — POST ${safeUrl(url)}` });
    this.name = 'TeacherTimeoutError';
    this.url = safeUrl(url);
    this.timeoutMs = timeoutMs;
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
  if (err instanceof ResponseTooLargeError) return { kind: 'fatal', retryable: false };
  if (err instanceof APIConnectionTimeoutError) return { kind: 'timeout', retryable: true };
  if (err instanceof TeacherConnectionError && err.tls) return { kind: 'connection', retryable: false };
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

/** The server's requested wait as obeyed: at most `policy.maxRetryAfterMs` (default 60 s). */
export function cappedRetryAfter(retryAfterMs: number, policy: RetryPolicy): number {
  const cap = policy.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  if (!(cap >= 0)) throw new Error(`maxRetryAfterMs must be >= 0, got ${cap}`);
  return Math.min(retryAfterMs, cap);
}

/**
 * Wait before retry number `retry` (0-based): "equal jitter" — half the exponential step fixed,
 * half random — so waits grow but concurrent workers spread out. A Retry-After is the floor,
 * itself capped at `policy.maxRetryAfterMs`.
 */
export function backoffDelay(retry: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  const jittered = step / 2 + (random() * step) / 2;
  if (retryAfterMs === undefined) return jittered;
  // Honour the server's wait, plus up to 10% so a burst of 429s does not come back in lockstep.
  return cappedRetryAfter(retryAfterMs, policy) * (1 + 0.1 * random());
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
  /** The error's message (no secrets: the SDK's and ours never carry headers or keys). */
  message?: string;
  /** Set when the server's Retry-After was longer than `maxRetryAfterMs`: the cap that was obeyed instead. */
  retryAfterCappedAtMs?: number;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s`;

/** One log line for a retry, e.g. `retry 1 in 60 s after rate_limit (HTTP 429): server asked to wait 86400 s (Retry-After), capped at maxRetryAfterMs 60000`. */
export function describeRetry(event: RetryEvent): string {
  const e = event.error;
  let line = `retry ${event.retry + 1} in ${seconds(event.delayMs)} after ${e.kind}${e.status ? ` (HTTP ${e.status})` : ''}`;
  if (event.message) line += `: ${event.message}`;
  if (e.retryAfterMs !== undefined) {
    line += `; server asked to wait ${seconds(e.retryAfterMs)} (Retry-After)`;
    if (event.retryAfterCappedAtMs !== undefined) line += `, capped at maxRetryAfterMs ${event.retryAfterCappedAtMs}`;
  }
  return line;
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
      const event: RetryEvent = { retry: n, delayMs, error: info, message: err instanceof Error ? err.message : String(err) };
      if (info.retryAfterMs !== undefined && cappedRetryAfter(info.retryAfterMs, policy) < info.retryAfterMs) {
        event.retryAfterCappedAtMs = cappedRetryAfter(info.retryAfterMs, policy);
      }
      hooks.onRetry?.(event);
      await sleep(delayMs, hooks.signal);
    }
  }
}
