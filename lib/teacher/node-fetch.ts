/**
 * A `fetch` for the openai SDK built on node:http(s) with a keep-alive agent. Node's built-in
 * fetch (undici + WHATWG streams) costs several times more CPU per request; at hundreds of
 * requests per second that CPU, not the teacher, becomes the limit (see scripts/bench/teacher.ts).
 * It buffers each response (completions are small), decodes gzip/deflate/br while streaming and
 * refuses (ResponseTooLargeError) a body over `maxResponseBytes` after decompression — a gzip
 * bomb is stopped at the limit, not inflated to gigabytes — answers with the
 * part of `Response` the SDK reads, and fails the way fetch fails: AbortError on abort, TypeError("fetch failed") on connection errors,
 * TypeError("terminated") when the connection drops mid-body. Anything it does not handle
 * (streamed request bodies, non-HTTP URLs) goes to the built-in fetch.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { ResponseTooLargeError } from './retry.js';

/** Default bound on a teacher response body, after decompression: 32 MiB (a completion is kilobytes). */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

export interface NodeFetchOptions {
  /** Largest response body accepted, after decompression; default 32 MiB. */
  maxResponseBytes?: number;
}

export interface NodeFetch {
  fetch: typeof fetch;
  /** Close idle keep-alive sockets. */
  close(): void;
}

function abortError(): Error {
  return new DOMException('This operation was aborted', 'AbortError');
}

function headerPairs(headers: RequestInit['headers']): Array<[string, string]> {
  if (!headers) return [];
  if (headers instanceof Headers) return [...headers.entries()];
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)]);
  return Object.entries(headers as Record<string, string>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, String(v)]);
}

/** A streaming decoder for the Content-Encoding, or undefined for identity (or one we do not know). */
function decoderFor(encoding: string | undefined): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return undefined;
  }
}

function checkLimit(maxResponseBytes: number): number {
  if (!(Number.isInteger(maxResponseBytes) && maxResponseBytes > 0)) {
    throw new Error(`maxResponseBytes must be a positive integer, got ${maxResponseBytes}`);
  }
  return maxResponseBytes;
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * `fetchImpl` (Node's fetch by default) with the response body read, bounded by `maxResponseBytes`
 * after decompression, and handed back buffered: the `http: 'builtin'` stack and the node stack's
 * fallback get the same bound as the node stack.
 */
export function boundedFetch(maxResponseBytes: number = DEFAULT_MAX_RESPONSE_BYTES, fetchImpl: typeof fetch = fetch): typeof fetch {
  const limit = checkLimit(maxResponseBytes);
  return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const res = await fetchImpl(input, init);
    if (!res.body || NULL_BODY_STATUS.has(res.status)) return res;
    const url = input instanceof Request ? input.url : String(input);
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => undefined);
        throw new ResponseTooLargeError(url, limit);
      }
      chunks.push(value);
    }
    const headers = new Headers(res.headers);
    headers.delete('content-encoding');
    headers.delete('content-length');
    return new Response(Buffer.concat(chunks), { status: res.status, statusText: res.statusText, headers });
  }) as typeof fetch;
}

/**
 * The part of the fetch `Response` the openai SDK reads (status, headers, json/text, body for
 * cancelling), over a buffered body: undici's Response and Headers cost ~25 µs a request to
 * build and read, a measurable share of the client's CPU at thousands of requests per second.
 */
class BufferedHeaders {
  private readonly map: Map<string, string>;
  constructor(map: Map<string, string>) {
    this.map = map;
  }
  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  entries(): IterableIterator<[string, string]> {
    return this.map.entries();
  }
  keys(): IterableIterator<string> {
    return this.map.keys();
  }
  values(): IterableIterator<string> {
    return this.map.values();
  }
  forEach(fn: (value: string, key: string, parent: BufferedHeaders) => void): void {
    this.map.forEach((v, k) => fn(v, k, this));
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
}

class BufferedResponse {
  readonly ok: boolean;
  readonly body = null;
  readonly bodyUsed = false;
  readonly redirected = false;
  readonly type = 'basic';
  constructor(
    private readonly data: Buffer,
    readonly status: number,
    readonly statusText: string,
    readonly headers: BufferedHeaders,
    readonly url: string,
  ) {
    this.ok = status >= 200 && status < 300;
  }
  async text(): Promise<string> {
    return this.data.toString('utf8');
  }
  async json(): Promise<unknown> {
    return JSON.parse(this.data.toString('utf8'));
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.data.buffer.slice(this.data.byteOffset, this.data.byteOffset + this.data.byteLength) as ArrayBuffer;
  }
}

export function createNodeFetch(options: NodeFetchOptions = {}): NodeFetch {
  const limit = checkLimit(options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
  const fallback = boundedFetch(limit);
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxFreeSockets: 1024, scheduling: 'lifo' }),
    'https:': new https.Agent({ keepAlive: true, maxFreeSockets: 1024, scheduling: 'lifo' }),
  };

  const nodeFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const body = init.body;
    const simpleBody = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    if (input instanceof Request || !simpleBody || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      return fallback(input, init);
    }
    const signal = init.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError());
      const headers: Record<string, string> = { 'accept-encoding': 'gzip, deflate, br' };
      for (const [k, v] of headerPairs(init.headers)) headers[k.toLowerCase()] = v;
      const payload = body === undefined || body === null ? undefined : typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
      if (payload) headers['content-length'] = String(payload.length);
      const transport = url.protocol === 'https:' ? https : http;
      let settled = false;
      // The response's decoder, stopped on failure so a bomb's buffered input is not inflated after all.
      let decoding: Readable | undefined;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        decoding?.destroy();
        reject(err);
      };
      const req = transport.request(
        url,
        { method: (init.method ?? 'GET').toUpperCase(), headers, agent: agents[url.protocol as 'http:' | 'https:'] },
        (res) => {
          const decoder = decoderFor(res.headers['content-encoding'] as string | undefined);
          decoding = decoder;
          const chunks: Buffer[] = [];
          let raw = 0;
          let size = 0;
          const tooLarge = (): void => {
            fail(new ResponseTooLargeError(url.href, limit));
            req.destroy();
          };
          const declared = Number(res.headers['content-length']);
          if (Number.isFinite(declared) && declared > limit) return tooLarge();
          const keep = (c: Buffer): void => {
            if (settled) return;
            size += c.length;
            if (size > limit) return tooLarge();
            chunks.push(c);
          };
          const finish = (): void => {
            if (settled) return;
            if (!res.complete) return fail(new TypeError('terminated', { cause: new Error('connection closed mid-response') }));
            const map = new Map<string, string>();
            for (const [k, v] of Object.entries(res.headers)) {
              if (v === undefined || k === 'content-encoding' || k === 'content-length') continue;
              map.set(k, Array.isArray(v) ? v.join(', ') : v);
            }
            settled = true;
            signal?.removeEventListener('abort', onAbort);
            const data = Buffer.concat(chunks);
            resolve(new BufferedResponse(data, res.statusCode ?? 0, res.statusMessage ?? '', new BufferedHeaders(map), url.href) as unknown as Response);
          };
          res.on('error', (err) => fail(new TypeError('terminated', { cause: err })));
          res.on('aborted', () => fail(new TypeError('terminated', { cause: new Error('connection closed mid-response') })));
          // The compressed size counts too: a body over the limit before decoding is over it after.
          res.on('data', (c: Buffer) => {
            raw += c.length;
            if (raw > limit) tooLarge();
          });
          let body: Readable = res;
          if (decoder) {
            decoder.on('error', (err) => {
              fail(new TypeError('terminated', { cause: err }));
              req.destroy();
            });
            res.pipe(decoder);
            body = decoder;
          } else res.on('data', keep);
          if (decoder) body.on('data', keep);
          body.on('end', finish);
        },
      );
      const onAbort = (): void => {
        req.destroy();
        fail(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => fail(new TypeError('fetch failed', { cause: err })));
      req.end(payload);
    });
  };

  return {
    fetch: nodeFetch as typeof fetch,
    close: () => {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
