/**
 * Loopback servers for the hostile-input teacher tests: an OpenAI-compatible endpoint whose every
 * answer is scripted by the test (empty completions, Retry-After: 86400, gzip bombs, hangs,
 * resets), an HTTPS one with a self-signed certificate, and a port nothing listens on.
 * Everything binds 127.0.0.1 only.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface ScriptedRequest {
  /** 0-based number of this request on the server. */
  n: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** The prompt of a chat or completions request, when the body is one. */
  prompt: string | undefined;
}

export type Script = (req: ScriptedRequest, res: ServerResponse) => void;

export interface ScriptedServer {
  /** Base URL for OpenAI clients: http://127.0.0.1:PORT/v1 */
  url: string;
  port: number;
  requests: ScriptedRequest[];
  close(): Promise<void>;
}

function promptOf(body: string): string | undefined {
  try {
    const b = JSON.parse(body) as { prompt?: unknown; messages?: Array<{ content?: unknown }> };
    if (typeof b.prompt === 'string') return b.prompt;
    const last = b.messages?.at(-1)?.content;
    return typeof last === 'string' ? last : undefined;
  } catch {
    return undefined;
  }
}

export async function startScriptedServer(script: Script, tls?: { key: string; cert: string }): Promise<ScriptedServer> {
  const requests: ScriptedRequest[] = [];
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const r: ScriptedRequest = {
        n: requests.length,
        method: req.method ?? '',
        path: (req.url ?? '').split('?')[0]!,
        headers: req.headers,
        body,
        prompt: promptOf(body),
      };
      requests.push(r);
      script(r, res);
    });
  };
  const server = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/v1`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A 200 chat or completions answer (by the request's path) with this text, which may be null. */
export function sendCompletion(req: ScriptedRequest, res: ServerResponse, text: string | null, headers: Record<string, string> = {}): void {
  const chat = req.path.endsWith('/chat/completions');
  const body = JSON.stringify({
    id: `cmpl-${req.n}`,
    object: chat ? 'chat.completion' : 'text_completion',
    created: 0,
    model: 'scripted',
    choices: [chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' } : { index: 0, text, finish_reason: 'stop' }],
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A self-signed certificate for 127.0.0.1 / localhost (EC P-256, valid to 2126), for TLS failures. */
export const SELF_SIGNED = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrkQRP706RbtHC2hn
knqepxBrViJc/kZXS/jg5b4z8rChRANCAATEJZ3xIFs8U1BJWPiqNHk7De2jsFz2
Pd9031w13hVkQ7bHj/bCWuZQAQ7v9Y+pk+FzPUnU8lpv7wbWgRZAJaeV
-----END PRIVATE KEY-----
`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUANhjZ+PMKv0YMpEpBcn7QcZoT6kwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNTA5MTgxMVoYDzIxMjYxMTEx
MDkxODExWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATEJZ3xIFs8U1BJWPiqNHk7De2jsFz2Pd9031w13hVkQ7bHj/bCWuZQ
AQ7v9Y+pk+FzPUnU8lpv7wbWgRZAJaeVo28wbTAdBgNVHQ4EFgQUZC34/mUiNPkK
25Rw3gEz7YldlbUwHwYDVR0jBBgwFoAUZC34/mUiNPkK25Rw3gEz7YldlbUwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgNKcPZ7bN2XIwsQ/mqZTUfv+8+gKP5ZBqptbnifbWr1MCIQDk
o+yOKFw1KK6aGOW48sRRviX7KPBj4PnsnURA4R9AKA==
-----END CERTIFICATE-----
`,
};
