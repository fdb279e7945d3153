/**
 * Hostile inputs and misuse, teacher side: oversized request bodies to `teacher serve`, gzip bombs
 * and unbounded Retry-After from a teacher, connection failures that must say what and where,
 * empty completions that must not be cached, a collection deadline, and the API key never written
 * anywhere. Every server here is on 127.0.0.1 and every wait is bounded.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { inspect } from 'node:util';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { generateLastLetterConcatenation } from '../lib/tasks/index.js';
import {
  backoffDelay,
  cacheKey,
  classifyError,
  CollectDeadlineError,
  collectRationales,
  CompletionCache,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_RESPONSE_BYTES,
  DEFAULT_RETRY_POLICY,
  rationalePrompt,
  ResponseTooLargeError,
  startTeacherServer,
  TeacherClient,
  TeacherConnectionError,
  TeacherTimeoutError,
  type CollectRetryEvent,
} from '../lib/teacher/index.js';
import { closedPort, SELF_SIGNED, sendCompletion, startScriptedServer, type ScriptedServer } from './helpers/teacher-scripted.js';

const root = resolve(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-teacher-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fastRetry = { baseDelayMs: 5, maxDelayMs: 20, maxRetries: 3 };
const sampling = { temperature: 0, maxTokens: 16 };
const PROMPT = rationalePrompt('Take the last letters of each words in "Ada Bob" and concatenate them.');

async function withServer<T>(server: ScriptedServer, body: (s: ScriptedServer) => Promise<T>): Promise<T> {
  try {
    return await body(server);
  } finally {
    await server.close();
  }
}

/** Send `total` bytes in `chunk`-sized writes; resolve with the status the server answered (or the error). */
function postStream(
  port: number,
  total: number,
  chunk: number,
  headers: Record<string, string> = {},
): Promise<{ status?: number; body: string; error?: string }> {
  return new Promise((done) => {
    let status: number | undefined;
    let body = '';
    let error: string | undefined;
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        status = res.statusCode;
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => done({ status, body }));
        res.on('error', () => done({ status, body }));
      },
    );
    req.on('error', (err) => {
      error = (err as NodeJS.ErrnoException).code ?? err.message;
      // The server may drop the connection once it answered 413: what counts is what it answered.
      setTimeout(() => done({ status, body, error }), 100);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('test timeout')));
    let sent = 0;
    const piece = Buffer.alloc(chunk, 0x20);
    const pump = (): void => {
      while (sent < total) {
        sent += chunk;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('teacher serve: request bodies are bounded', () => {
  it('answers 413 to a body over maxBodyBytes (streamed or declared), keeps none of it, and stays up', async () => {
    expect(DEFAULT_MAX_BODY_BYTES).toBe(8 * 1024 * 1024);
    const server = await startTeacherServer({ maxBodyBytes: 64 * 1024 });
    try {
      const port = server.port;
      // 4 MiB streamed (chunked, no length) over a 64 KiB limit.
      const streamed = await postStream(port, 4 * 1024 * 1024, 16 * 1024);
      expect(streamed.status, JSON.stringify(streamed)).toBe(413);
      expect(JSON.parse(streamed.body).error.message).toMatch(/larger than the server's limit of 65536 bytes \(maxBodyBytes\)/);
      // A declared 600 MB: refused from the header, before any body.
      const declared = await postStream(port, 64 * 1024, 16 * 1024, { 'content-length': String(600 * 1024 * 1024) });
      expect(declared.status, JSON.stringify(declared)).toBe(413);
      // Just under the limit is read and judged on its content (not a prompt: 400, not 413).
      const under = await postStream(port, 64 * 1024 - 16 * 1024, 16 * 1024);
      expect(under.status).toBe(400);
      // The server is alive and serves a real request.
      const client = new TeacherClient({ model: 'sim', baseURL: server.url, timeoutMs: 5000 });
      const q = generateLastLetterConcatenation({ count: 1, seed: 3 })[0]!;
      const out = await client.complete(rationalePrompt(q.question), sampling);
      client.close();
      expect(out.text.length).toBeGreaterThan(0);
      expect(server.stats.byOutcome.too_large).toBe(2);
      expect(server.stats.byOutcome.bad_request).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('teacher serve --max-body-bytes: the process answers 413 and keeps serving', async () => {
    const portFile = join(tmp, 'serve-port');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(__dirname, 'helpers', 'teacher-cli.ts'),
        'teacher',
        'serve',
        '--port',
        '0',
        '--port-file',
        portFile,
        '--max-body-bytes',
        '32768',
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!existsSync(portFile) || readFileSync(portFile, 'utf8').trim() === '') {
        if (Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const port = Number(readFileSync(portFile, 'utf8').trim());
      const big = await postStream(port, 8 * 1024 * 1024, 64 * 1024);
      expect(big.status, JSON.stringify(big)).toBe(413);
      expect(child.exitCode).toBe(null);
      const again = await postStream(port, 1024, 1024);
      expect(again.status).toBe(400);
      expect(child.exitCode).toBe(null);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(stderr).toMatch(/served 2 requests: .*bad_request 1.*too_large 1/);
  });
});

/** A gzip bomb: one gzip member of 1 MiB of zeros repeated `mib` times (concatenated members decode as one stream). */
function gzipBomb(mib: number): Buffer {
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  return Buffer.concat(Array.from({ length: mib }, () => member));
}

describe('teacher client: response bodies are bounded after decompression', () => {
  const bomb = gzipBomb(1024); // ~1 MiB on the wire, 1 GiB inflated

  for (const http of ['node', 'builtin'] as const) {
    it(`${http} stack: a gzip bomb stops at maxResponseBytes with an error naming URL and limit; memory stays bounded`, async () => {
      expect(DEFAULT_MAX_RESPONSE_BYTES).toBe(32 * 1024 * 1024);
      await withServer(
        await startScriptedServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length });
          res.end(bomb);
        }),
        async (server) => {
          const rssBefore = process.memoryUsage().rss;
          const client = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 20_000, http });
          const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
          client.close();
          expect(err).toBeInstanceOf(ResponseTooLargeError);
          expect((err as Error).message).toContain(`${server.url}/chat/completions`);
          expect((err as Error).message).toContain(`maxResponseBytes (${DEFAULT_MAX_RESPONSE_BYTES} bytes`);
          expect(classifyError(err)).toEqual({ kind: 'fatal', retryable: false });
          // Inflating the whole bomb would take over 1 GiB.
          expect(process.memoryUsage().rss - rssBefore).toBeLessThan(512 * 1024 * 1024);

          // A smaller configured limit; through the collector it fails at once (not retried).
          const small = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 20_000, http, maxResponseBytes: 1024 * 1024 });
          const result = await collectRationales({
            task: 'last_letter_concatenation',
            questions: [{ id: 'q', question: 'Take the last letters of each words in "Ada Bob" and concatenate them.', answer: 'ab' }],
            teacher: small,
            retry: fastRetry,
          });
          small.close();
          expect(result.failures).toHaveLength(1);
          expect(result.failures[0]).toMatchObject({ kind: 'fatal', attempts: 1 });
          expect(result.failures[0]!.message).toContain('maxResponseBytes (1048576 bytes');
        },
      );
    });
  }

  it('a plain (uncompressed) body over the limit is refused too, and normal gzip answers still decode', async () => {
    await withServer(
      await startScriptedServer((req, res) => {
        if (req.n === 0) {
          res.writeHead(200, { 'content-type': 'application/json' }); // chunked, no length
          res.end(Buffer.alloc(300 * 1024, 0x20));
          return;
        }
        const body = gzipSync(
          JSON.stringify({
            id: 'x',
            object: 'chat.completion',
            created: 0,
            model: 'm',
            choices: [{ index: 0, message: { role: 'assistant', content: ' fine' }, finish_reason: 'stop' }],
          }),
        );
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
        res.end(body);
      }),
      async (server) => {
        const client = new TeacherClient({ model: 'm', baseURL: server.url, maxResponseBytes: 100 * 1024 });
        await expect(client.complete(PROMPT, sampling)).rejects.toThrow(/larger than maxResponseBytes \(102400 bytes/);
        await expect(client.complete(PROMPT, sampling)).resolves.toMatchObject({ text: ' fine' });
        client.close();
      },
    );
  });
});

describe('Retry-After is capped', () => {
  it('backoffDelay obeys at most maxRetryAfterMs (default 60 s)', () => {
    expect(DEFAULT_RETRY_POLICY.maxRetryAfterMs).toBe(60_000);
    expect(backoffDelay(0, DEFAULT_RETRY_POLICY, 86_400_000, () => 0)).toBe(60_000);
    expect(backoffDelay(0, DEFAULT_RETRY_POLICY, 2_000, () => 0)).toBe(2_000);
    expect(backoffDelay(0, { ...DEFAULT_RETRY_POLICY, maxRetryAfterMs: 50 }, 86_400_000, () => 0)).toBe(50);
  });

  it('a 429 with Retry-After: 86400 waits the cap, retries, and the retry line says it was capped', async () => {
    await withServer(
      await startScriptedServer((req, res) => {
        if (req.n === 0) {
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '86400' });
          res.end(JSON.stringify({ error: { message: 'slow down', type: 'requests' } }));
        } else sendCompletion(req, res, req.prompt?.endsWith("concatenate them.\nA: Let's think step by step.") ? ' The answer is "ab".' : ' "ab".');
      }),
      async (server) => {
        const client = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 5000 });
        const retries: CollectRetryEvent[] = [];
        const started = Date.now();
        const result = await collectRationales({
          task: 'last_letter_concatenation',
          questions: [{ id: 'q1', question: 'Take the last letters of each words in "Ada Bob" and concatenate them.', answer: 'ab' }],
          teacher: client,
          retry: { ...fastRetry, maxRetryAfterMs: 200 },
          onRetry: (e) => retries.push(e),
        });
        client.close();
        expect(Date.now() - started).toBeLessThan(5000);
        expect(result.failures).toEqual([]);
        expect(result.samples).toHaveLength(1);
        expect(retries).toHaveLength(1);
        expect(retries[0]!.error).toMatchObject({ kind: 'rate_limit', status: 429, retryAfterMs: 86_400_000 });
        expect(retries[0]!.retryAfterCappedAtMs).toBe(200);
        expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(200);
        expect(retries[0]!.delayMs).toBeLessThanOrEqual(220);
        expect(retries[0]!.line).toMatch(
          /^q1#0 rationale: retry 1 in 0\.2\d s after rate_limit \(HTTP 429\).*server asked to wait 86400 s \(Retry-After\), capped at maxRetryAfterMs 200$/,
        );
      },
    );
  });
});

describe('network failures name their cause and the URL', () => {
  it('ECONNREFUSED (nothing listens), on both HTTP stacks and through the collector', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}/v1`;
    for (const http of ['node', 'builtin'] as const) {
      const client = new TeacherClient({ model: 'm', baseURL: url, http, timeoutMs: 5000 });
      const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
      client.close();
      expect(err, http).toBeInstanceOf(TeacherConnectionError);
      expect((err as Error).message, http).toMatch(/^connection refused \(ECONNREFUSED/);
      expect((err as Error).message, http).toContain(`POST ${url}/chat/completions`);
      expect(classifyError(err)).toEqual({ kind: 'connection', retryable: true });
    }
    const client = new TeacherClient({ model: 'm', baseURL: url, api: 'completions' });
    const result = await collectRationales({
      task: 'coin_flip',
      questions: [{ id: 'c', question: 'A coin is heads up. Ann flips the coin. Is the coin still heads up?', answer: 'no' }],
      teacher: client,
      retry: { ...fastRetry, maxRetries: 1 },
    });
    client.close();
    expect(result.failures[0]).toMatchObject({ kind: 'connection', attempts: 2 });
    expect(result.failures[0]!.message).toMatch(
      /^connection after 2 attempts: connection refused \(ECONNREFUSED.*POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions$/,
    );
  });

  it('a reset (the server destroys the socket): ECONNRESET and the URL', async () => {
    await withServer(await startScriptedServer((_req, res) => res.socket?.destroy()), async (server) => {
      for (const http of ['node', 'builtin'] as const) {
        const client = new TeacherClient({ model: 'm', baseURL: server.url, http, timeoutMs: 5000 });
        const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
        client.close();
        expect(err, http).toBeInstanceOf(TeacherConnectionError);
        expect((err as Error).message, http).toMatch(/(connection reset by the server \(ECONNRESET|connection closed by the server \(UND_ERR_SOCKET)/);
        expect((err as Error).message, http).toContain(`POST ${server.url}/chat/completions`);
      }
    });
  });

  it('a timeout (the server never answers): how long, and the URL', async () => {
    await withServer(await startScriptedServer(() => undefined), async (server) => {
      const client = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 150 });
      const started = Date.now();
      const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
      client.close();
      expect(Date.now() - started).toBeLessThan(3000);
      expect(err).toBeInstanceOf(TeacherTimeoutError);
      expect((err as Error).message).toBe(`request timed out after 150 ms (timeoutMs) — POST ${server.url}/chat/completions`);
      expect(classifyError(err)).toEqual({ kind: 'timeout', retryable: true });
    });
  });

  it('TLS: a self-signed certificate is named as a certificate error', async () => {
    await withServer(await startScriptedServer((req, res) => sendCompletion(req, res, 'x'), SELF_SIGNED), async (server) => {
      const client = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 5000 });
      const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
      client.close();
      expect(err).toBeInstanceOf(TeacherConnectionError);
      expect((err as Error).message).toMatch(/^TLS \/ certificate error \([A-Z_]+\): .* — POST https:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions$/);
      // Retrying cannot fix a certificate: not retried.
      expect(classifyError(err)).toEqual({ kind: 'connection', retryable: false });
      // Retrying cannot fix a certificate: not retried.
      expect(classifyError(err)).toEqual({ kind: 'connection', retryable: false });
    });
  });

  it('credentials in a base URL never reach an error message', async () => {
    const port = await closedPort();
    const client = new TeacherClient({ model: 'm', baseURL: `http://user:sk-in-url@127.0.0.1:${port}/v1?api-key=sk-in-query`, timeoutMs: 5000 });
    const err = await client.complete(PROMPT, sampling).catch((e: unknown) => e);
    client.close();
    expect((err as Error).message).toContain(`POST http://127.0.0.1:${port}/`);
    expect((err as Error).message).not.toContain('sk-in-');
  });
});

describe('empty and null completions are malformed: retried, never cached', () => {
  const question = 'Take the last letters of each words in "Ada Bob" and concatenate them.';

  for (const api of ['chat', 'completions'] as const) {
    it(`${api}: null, then "", then whitespace, then a real rationale`, async () => {
      const script = [null, '', '  \n', ' The last letters are a and b, so "ab".'];
      await withServer(
        await startScriptedServer((req, res) => {
          const stage1 = req.prompt?.endsWith("Let's think step by step.");
          sendCompletion(req, res, stage1 ? script[Math.min(req.n, script.length - 1)]! : ' "ab".');
        }),
        async (server) => {
          const cachePath = join(tmp, `empty-${api}.jsonl`);
          const cache = CompletionCache.open(cachePath);
          const client = new TeacherClient({ model: 'm', baseURL: server.url, api, timeoutMs: 5000 });
          const result = await collectRationales({
            task: 'last_letter_concatenation',
            questions: [{ id: 'q', question, answer: 'ab' }],
            teacher: client,
            cache,
            retry: fastRetry,
          });
          cache.close();
          client.close();
          expect(result.failures).toEqual([]);
          expect(result.samples[0]!.rationale).toBe(script[3]);
          expect(result.samples[0]!.correct).toBe(true);
          expect(result.stats.retriesByKind).toEqual({ malformed: 3 });
          const lines = readFileSync(cachePath, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as { text: string; stage: string });
          expect(lines.map((l) => l.stage)).toEqual(['rationale', 'answer']);
          for (const l of lines) expect(l.text.trim()).not.toBe('');
        },
      );
    });
  }

  it('a teacher that only ever answers "" fails the sample as malformed and caches nothing', async () => {
    await withServer(await startScriptedServer((req, res) => sendCompletion(req, res, '')), async (server) => {
      const cachePath = join(tmp, 'always-empty.jsonl');
      const cache = CompletionCache.open(cachePath);
      const client = new TeacherClient({ model: 'm', baseURL: server.url, timeoutMs: 5000 });
      const result = await collectRationales({
        task: 'last_letter_concatenation',
        questions: [{ id: 'q', question, answer: 'ab' }],
        teacher: client,
        cache,
        retry: fastRetry,
      });
      cache.close();
      client.close();
      expect(result.samples).toEqual([]);
      expect(result.failures[0]).toMatchObject({ kind: 'malformed', attempts: 4 });
      expect(result.failures[0]!.message).toMatch(/completion text is empty/);
      expect(readFileSync(cachePath, 'utf8')).toBe('');
    });
  });

  it('a stand-in teacher returning null or "" is caught by the collector too; an empty entry already in the cache is asked again', async () => {
    const cachePath = join(tmp, 'stale-empty.jsonl');
    const seeded = CompletionCache.open(cachePath);
    const key = cacheKey({
      model: 'stub',
      api: 'chat',
      prompt: rationalePrompt(question),
      sampling: { temperature: 0, maxTokens: 256, seed: 0 },
      sampleIndex: 0,
    });
    seeded.append({
      key,
      model: 'stub',
      stage: 'rationale',
      sampleIndex: 0,
      text: '',
      finishReason: 'stop',
      usage: { promptTokens: 1, completionTokens: 0 },
      at: new Date(0).toISOString(),
    });
    seeded.close();
    let calls = 0;
    const replies: Array<string | null> = [null, '', ' So "ab".', ' "ab".'];
    const teacher = {
      model: 'stub',
      api: 'chat' as const,
      complete: async () => ({
        text: replies[calls++] as string,
        finishReason: 'stop',
        usage: { promptTokens: 1, completionTokens: 1 },
        usageEstimated: false,
      }),
    };
    const cache = CompletionCache.open(cachePath);
    const result = await collectRationales({
      task: 'last_letter_concatenation',
      questions: [{ id: 'q', question, answer: 'ab' }],
      teacher,
      cache,
      retry: fastRetry,
    });
    cache.close();
    expect(calls).toBe(4);
    expect(result.stats.cacheHits).toBe(0);
    expect(result.samples[0]).toMatchObject({ rationale: ' So "ab".', answerText: ' "ab".', correct: true });
    // The rerun reads the new entry (the last line for a key wins) and asks nothing.
    const again = CompletionCache.open(cachePath);
    expect(again.get(key)!.text).toBe(' So "ab".');
    const rerun = await collectRationales({ task: 'last_letter_concatenation', questions: [{ id: 'q', question, answer: 'ab' }], teacher, cache: again });
    again.close();
    expect(calls).toBe(4);
    expect(rerun.stats.cacheHits).toBe(2);
  });
});

describe('collection deadline', () => {
  it('deadlineMs stops a stuck collection with an Error saying how much is done; a rerun resumes from the cache', async () => {
    const questions = generateLastLetterConcatenation({ count: 3, seed: 8 });
    const good = await startTeacherServer({ seed: 1 });
    // Forwards the first two requests (sample 1: rationale + answer) to the real teacher, then hangs.
    const stuck = await startScriptedServer((req, res) => {
      if (req.n >= 2) return;
      void fetch(`${good.url}${req.path.slice(3)}`, { method: 'POST', body: req.body, headers: { 'content-type': 'application/json' } }).then(async (r) => {
        const text = await r.text();
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(text);
      });
    });
    const cachePath = join(tmp, 'deadline.jsonl');
    try {
      const cache = CompletionCache.open(cachePath);
      const client = new TeacherClient({ model: 'sim', baseURL: stuck.url, timeoutMs: 60_000 });
      const started = Date.now();
      const err = await collectRationales({ task: 'last_letter_concatenation', questions, teacher: client, cache, concurrency: 1, deadlineMs: 800 }).catch(
        (e: unknown) => e,
      );
      cache.close();
      client.close();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(err).toBeInstanceOf(CollectDeadlineError);
      const message = (err as Error).message;
      expect(message).toMatch(/passed its deadline \(deadlineMs 800\) with 1 of 3 samples done/);
      expect(message).toContain(`in the cache ${cachePath}: rerun to resume from it`);
      expect((err as CollectDeadlineError).result.samples).toHaveLength(1);

      const again = CompletionCache.open(cachePath);
      const client2 = new TeacherClient({ model: 'sim', baseURL: good.url });
      const rerun = await collectRationales({
        task: 'last_letter_concatenation',
        questions,
        teacher: client2,
        cache: again,
        concurrency: 1,
        deadlineMs: 30_000,
      });
      again.close();
      client2.close();
      expect(rerun.samples).toHaveLength(3);
      expect(rerun.stats.cacheHits).toBe(2);
      expect(rerun.stats.responses).toBe(4);
    } finally {
      await stuck.close();
      await good.close();
    }
  });

  it('without a cache the error says a rerun starts over; a caller abort stays an abort, not a deadline error', async () => {
    await withServer(await startScriptedServer(() => undefined), async (server) => {
      const client = new TeacherClient({ model: 'm', baseURL: server.url });
      const q = [{ id: 'q', question: 'Take the last letters of each words in "Ada Bob" and concatenate them.', answer: 'ab' }];
      await expect(collectRationales({ task: 'last_letter_concatenation', questions: q, teacher: client, deadlineMs: 200 })).rejects.toThrow(
        /with 0 of 1 samples done; no completion cache was given, so a rerun starts over/,
      );
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('stop')), 100);
      const result = await collectRationales({ task: 'last_letter_concatenation', questions: q, teacher: client, deadlineMs: 10_000, signal: abort.signal });
      expect(result.aborted).toBe(true);
      client.close();
      await expect(collectRationales({ task: 'last_letter_concatenation', questions: q, teacher: client, deadlineMs: 0 })).rejects.toThrow(
        /deadlineMs must be a positive/,
      );
    });
  });
});

describe('teacher collect: the new limits from the command line', () => {
  it('--max-retry-after-ms cuts a Retry-After: 86400 and logs it; --deadline-ms ends a stuck run saying a rerun resumes', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((done) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'teacher-cli.ts'), 'teacher', 'collect', ...args], {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (code) => done({ code, out }));
      });
    const good = await startTeacherServer({ seed: 2 });
    let hang = false;
    // Request 0: 429 for a day; then forwarded to the real teacher, or, once `hang` is set, silence.
    const server = await startScriptedServer((req, res) => {
      if (req.n === 0) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '86400' });
        res.end(JSON.stringify({ error: { message: 'slow down', type: 'requests' } }));
        return;
      }
      if (hang && req.n >= 1) return;
      void fetch(`${good.url}${req.path.slice(3)}`, { method: 'POST', body: req.body, headers: { 'content-type': 'application/json' } }).then(async (r) => {
        const text = await r.text();
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(text);
      });
    });
    try {
      const out = join(tmp, 'cli-limits.json');
      const common = ['--task', 'last_letter_concatenation', '--synthetic', '2', '--base-url', server.url, '-c', '1', '--no-progress'];
      const first = await run([...common, '--max-retry-after-ms', '150', '-o', out]);
      expect(first.code, first.out).toBe(0);
      expect(first.out).toMatch(
        /#0 rationale: retry 1 in 0\.1\d s after rate_limit \(HTTP 429\).*server asked to wait 86400 s \(Retry-After\), capped at maxRetryAfterMs 150/,
      );
      expect(first.out).toContain('samples: 2/2');

      hang = true;
      const stuck = await run([...common.map((a) => (a === '2' ? '3' : a)), '--deadline-ms', '600', '-o', out]);
      expect(stuck.code).toBe(1);
      expect(stuck.out).toMatch(
        /passed its deadline \(deadlineMs 600\) with 2 of 3 samples done; every completion received is in the cache .*cli-limits\.json\.cache\.jsonl: rerun to resume from it/,
      );
      expect(stuck.out).toContain(`wrote 2 samples to ${out}`);
      expect(stuck.out).toContain('incomplete: rerun the same command to ask only for the 1 missing samples');
      expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveLength(2);
    } finally {
      await server.close();
      await good.close();
    }
  });
});

describe('the API key is never written anywhere', () => {
  it('a CLI collection with faults, a debug-logging SDK and failures: no file, output or log holds the key', async () => {
    const secret = `sk-hostile-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    const server = await startTeacherServer({
      seed: 4,
      apiKey: secret,
      faults: { rateLimited: 0.1, serverError: 0.1, dropped: 0.05, malformed: 0.1, retryAfterMs: 5 },
    });
    const dir = mkdtempSync(join(tmp, 'secret-'));
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((done) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'teacher-cli.ts'), ...args], {
          cwd: root,
          env: { ...process.env, MENTOR_KD_HOSTILE_KEY: secret, OPENAI_LOG: 'debug' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (code) => done({ code, out }));
      });
    try {
      const common = [
        'teacher',
        'collect',
        '--task',
        'last_letter_concatenation',
        '--synthetic',
        '12',
        '-n',
        '2',
        '--api-key-env',
        'MENTOR_KD_HOSTILE_KEY',
        '--max-retries',
        '12',
        '--progress',
      ];
      const ok = await run([...common, '--base-url', server.url, '-o', join(dir, 'out.json')]);
      expect(ok.code, ok.out).toBe(0);
      // The SDK's debug log did run (it redacts headers), so this is not a vacuous check.
      expect(ok.out).toMatch(/sending request/);
      const port = await closedPort();
      const refused = await run([...common, '--base-url', `http://127.0.0.1:${port}/v1`, '--max-retries', '1', '-o', join(dir, 'refused.json')]);
      expect(refused.code).toBe(1);
      expect(refused.out).toMatch(/connection refused \(ECONNREFUSED/);
      process.env.MENTOR_KD_HOSTILE_WRONG = `${secret}-wrong`;
      const wrong = new TeacherClient({ model: 'sim', baseURL: server.url, apiKeyEnv: 'MENTOR_KD_HOSTILE_WRONG' });
      const denied = await collectRationales({
        task: 'last_letter_concatenation',
        questions: generateLastLetterConcatenation({ count: 1, seed: 1 }),
        teacher: wrong,
        cache: CompletionCache.open(join(dir, 'denied.jsonl')),
      });
      wrong.close();
      writeFileSync(join(dir, 'denied-result.json'), JSON.stringify(denied));
      expect(denied.failures[0]!.message).toMatch(/HTTP 401/);

      const files = readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => statSync(join(dir, f)).isFile());
      expect(files).toEqual(expect.arrayContaining(['out.json', 'out.json.cache.jsonl', 'refused.json', 'denied.jsonl', 'denied-result.json']));
      for (const f of files) expect(readFileSync(join(dir, f), 'utf8'), f).not.toContain(secret);
      expect(ok.out).not.toContain(secret);
      expect(refused.out).not.toContain(secret);
      expect(JSON.stringify(wrong)).not.toContain(secret);
      expect(inspect(wrong, { depth: 8, showHidden: true })).not.toContain(secret);
      expect(inspect(denied, { depth: 8 })).not.toContain(secret);
    } finally {
      delete process.env.MENTOR_KD_HOSTILE_WRONG;
      await server.close();
    }
  });
});
