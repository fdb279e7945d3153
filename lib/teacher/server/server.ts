/**
 * `mentor-kd teacher serve`: an OpenAI-compatible HTTP server on 127.0.0.1 that answers
 * Zero-shot-CoT prompts by replaying recorded teacher outputs or by simulating a teacher for
 * the synthetic tasks, with configurable latency and injected faults (429 with Retry-After,
 * 500, slow responses, dropped connections, malformed JSON). The tests, the benchmark and the
 * demo use it as their teacher. Endpoints: POST /v1/chat/completions, POST /v1/completions,
 * GET /v1/models. It never logs request headers (where API keys travel).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRng, hashSeed } from '../../tasks/random.js';
import { parseZeroShotCotPrompt } from '../prompts.js';
import { drawFault, validateFaults, type FaultKind, type FaultRates } from './faults.js';
import type { ReplayBook } from './replay.js';
import { answerFromRationale, simulateRationale, syntheticTaskOf } from './simulate.js';
import type { TaskName } from '../../tasks/registry.js';

export interface TeacherServerOptions {
  /** 0 (default): any free port. */
  port?: number;
  /** Fixes simulated and replayed outputs (with each request's own `seed`). Default 0. */
  seed?: number;
  /** Delay before every response; default 0. */
  latencyMs?: number;
  /** Extra uniform random delay in [0, latencyJitterMs]. */
  latencyJitterMs?: number;
  /** Probability that a simulated rationale contains a mistake; default 0. */
  errorRate?: number;
  /** Recorded outputs to replay; questions found here are replayed, others simulated. */
  replay?: ReplayBook;
  faults?: FaultRates;
  /** Model name reported by /v1/models; any requested name is accepted. */
  model?: string;
  /** Keep a log of requests (prompt, seed, outcome) in `requests`, for tests. */
  recordRequests?: boolean;
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (else 401). Never logged. */
  apiKey?: string;
  /** Largest request body accepted; a bigger one is answered 413 and dropped as it arrives (never kept). Default 8 MiB. */
  maxBodyBytes?: number;
}

/** Default bound on a request body of `teacher serve`: 8 MiB (a prompt is kilobytes). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** `client_gone`: the client hung up (e.g. timed out) before its response was due. */
export type RequestOutcome = 'ok' | FaultKind | 'bad_request' | 'unauthorized' | 'client_gone' | 'too_large';

export interface RecordedRequest {
  endpoint: 'chat' | 'completions';
  prompt: string;
  seed: number | undefined;
  stage: 'rationale' | 'answer' | undefined;
  outcome: RequestOutcome;
}

export interface TeacherServerStats {
  requests: number;
  byOutcome: Record<RequestOutcome, number>;
}

export interface TeacherServer {
  /** Base URL for OpenAI clients, e.g. http://127.0.0.1:41234/v1 */
  readonly url: string;
  readonly port: number;
  readonly stats: TeacherServerStats;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface ParsedBody {
  endpoint: 'chat' | 'completions';
  model: string;
  prompt: string;
  seed: number | undefined;
  n: number;
  maxTokens: number | undefined;
}

function promptOf(body: Record<string, unknown>, endpoint: 'chat' | 'completions'): string {
  if (endpoint === 'completions') {
    const p = body.prompt;
    if (typeof p === 'string') return p;
    if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') return p[0];
    throw new BadRequest('"prompt" must be a string');
  }
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw new BadRequest('"messages" must be a non-empty array');
  const last = messages[messages.length - 1] as { role?: unknown; content?: unknown };
  if (typeof last?.content === 'string') return last.content;
  if (Array.isArray(last?.content)) {
    return last.content.map((part: { type?: string; text?: string }) => (part?.type === 'text' ? (part.text ?? '') : '')).join('');
  }
  throw new BadRequest('the last message has no text content');
}

function parseBody(raw: string, endpoint: 'chat' | 'completions'): ParsedBody {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new BadRequest('request body is not valid JSON');
  }
  if (body === null || typeof body !== 'object') throw new BadRequest('request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const n = b.n === undefined || b.n === null ? 1 : Number(b.n);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new BadRequest('"n" must be an integer in [1, 16]');
  const maxTokens = b.max_tokens ?? b.max_completion_tokens;
  return {
    endpoint,
    model: typeof b.model === 'string' ? b.model : 'mentor-kd-teacher',
    prompt: promptOf(b, endpoint),
    seed: typeof b.seed === 'number' && Number.isFinite(b.seed) ? b.seed : undefined,
    n,
    maxTokens: typeof maxTokens === 'number' && maxTokens > 0 ? maxTokens : undefined,
  };
}

const tokenCount = (text: string): number => Math.ceil(text.length / 4);

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, message: string, type: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { message, type, param: null, code: null } }, headers);
}

export async function startTeacherServer(options: TeacherServerOptions = {}): Promise<TeacherServer> {
  const seed = options.seed ?? 0;
  const faults = options.faults ?? {};
  validateFaults(faults);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes > 0)) throw new Error(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  const errorRate = options.errorRate ?? 0;
  if (!(errorRate >= 0 && errorRate <= 1)) throw new Error(`errorRate must be in [0, 1], got ${errorRate}`);
  const latencyMs = options.latencyMs ?? 0;
  const jitterMs = options.latencyJitterMs ?? 0;
  const retryAfterMs = faults.retryAfterMs ?? 100;
  const slowMs = faults.slowMs ?? 2000;
  const faultRng = createRng(hashSeed('faults', seed));
  const latencyRng = createRng(hashSeed('latency', seed));
  const model = options.model ?? 'mentor-kd-teacher';
  const stats: TeacherServerStats = {
    requests: 0,
    byOutcome: { ok: 0, rate_limited: 0, server_error: 0, dropped: 0, malformed: 0, slow: 0, bad_request: 0, unauthorized: 0, client_gone: 0, too_large: 0 },
  };
  const requests: RecordedRequest[] = [];
  let counter = 0;

  /** One completion text for a prompt and choice: replay, else simulation. */
  const generate = (prompt: string, requestSeed: number | undefined, choice: number): { text: string; stage: 'rationale' | 'answer' } => {
    const parsed = parseZeroShotCotPrompt(prompt);
    if (!parsed) throw new BadRequest('the built-in teacher answers Zero-shot-CoT prompts only ("Q: ...\\nA: Let\'s think step by step.")');
    const sampleSeed = (requestSeed ?? 0) + choice;
    const replay = options.replay?.has(parsed.question) ? options.replay : undefined;
    const task: TaskName | undefined = replay?.task ?? syntheticTaskOf(parsed.question);
    if (!task) {
      throw new BadRequest('the built-in teacher knows this question from neither its replay file nor the synthetic tasks', 404);
    }
    if (parsed.stage === 'answer') return { text: answerFromRationale(parsed.rationale ?? '', task), stage: 'answer' };
    if (replay) {
      const text = replay.rationale(parsed.question, seed, sampleSeed);
      if (text === undefined) throw new BadRequest('the replay file has no recorded output for this question', 404);
      return { text, stage: 'rationale' };
    }
    const rng = createRng(hashSeed(seed, parsed.question, sampleSeed));
    return { text: simulateRationale(parsed.question, rng, errorRate)!.text, stage: 'rationale' };
  };

  const respond = (res: ServerResponse, body: ParsedBody, log: RecordedRequest | undefined): void => {
    const choices = [];
    let completionTokens = 0;
    for (let i = 0; i < body.n; i++) {
      const out = generate(body.prompt, body.seed, i);
      if (log) log.stage = out.stage;
      let text = out.text;
      let finish = 'stop';
      if (body.maxTokens !== undefined && tokenCount(text) > body.maxTokens) {
        text = text.slice(0, body.maxTokens * 4);
        finish = 'length';
      }
      completionTokens += tokenCount(text);
      choices.push(
        body.endpoint === 'chat'
          ? { index: i, message: { role: 'assistant', content: text }, finish_reason: finish, logprobs: null }
          : { index: i, text, finish_reason: finish, logprobs: null },
      );
    }
    const promptTokens = tokenCount(body.prompt);
    sendJson(res, 200, {
      id: `${body.endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${++counter}`,
      object: body.endpoint === 'chat' ? 'chat.completion' : 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    });
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'mentor-kd' }] });
      return;
    }
    const endpoint = path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'completions' : undefined;
    if (req.method !== 'POST' || !endpoint) {
      sendError(res, 404, `no route for ${req.method} ${path}`, 'invalid_request_error');
      return;
    }
    stats.requests++;
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      stats.byOutcome.unauthorized++;
      sendError(res, 401, 'Incorrect API key provided', 'invalid_request_error');
      return;
    }
    let body: ParsedBody;
    try {
      body = parseBody(raw, endpoint);
    } catch (err) {
      stats.byOutcome.bad_request++;
      sendError(res, (err as BadRequest).status ?? 400, (err as Error).message, 'invalid_request_error');
      return;
    }
    const fault = drawFault(faults, faultRng);
    const outcome: RequestOutcome = fault ?? 'ok';
    const log: RecordedRequest | undefined = options.recordRequests ? { endpoint, prompt: body.prompt, seed: body.seed, stage: undefined, outcome } : undefined;
    if (log) requests.push(log);
    const delay = latencyMs + (jitterMs > 0 ? latencyRng.next() * jitterMs : 0) + (fault === 'slow' ? slowMs : 0);
    stats.byOutcome[outcome]++;
    const act = (): void => {
      if (res.destroyed || req.socket.destroyed) {
        // The client gave up (e.g. timed out): nothing was delivered, so count it as such.
        stats.byOutcome[outcome]--;
        stats.byOutcome.client_gone++;
        if (log) log.outcome = 'client_gone';
        return;
      }
      switch (fault) {
        case 'rate_limited':
          sendError(res, 429, 'Rate limit reached (simulated by mentor-kd teacher serve)', 'requests', {
            'retry-after-ms': String(retryAfterMs),
            'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
          });
          return;
        case 'server_error':
          sendError(res, 500, 'The server had an error while processing your request (simulated)', 'server_error');
          return;
        case 'dropped':
          // Half the time before any byte, half the time in the middle of the body.
          if (faultRng.next() < 0.5) req.socket.destroy();
          else {
            const text = JSON.stringify({ id: 'x', object: 'text_completion', choices: [{ index: 0, text: 'cut short' }] });
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
            res.write(text.slice(0, text.length >> 1), () => req.socket.destroy());
          }
          return;
        case 'malformed': {
          const text = '{"id": "cmpl-malformed", "object": "text_completion", "choices": [{"index": 0, "te';
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        default:
          try {
            respond(res, body, log);
          } catch (err) {
            if (log) log.outcome = 'bad_request';
            stats.byOutcome[outcome]--;
            stats.byOutcome.bad_request++;
            sendError(res, (err as BadRequest).status ?? 500, (err as Error).message, 'invalid_request_error');
          }
      }
    };
    if (delay > 0) setTimeout(act, delay);
    else act();
  };

  /**
   * 413, then drop the rest of the body as it arrives (never kept); a client still sending after
   * 3 s is disconnected. The answer (headers and its whole body, sized by content-length) goes out
   * at once, but the response ends only when the request body has drained: Node closes a
   * `Connection: close` socket when the response ends, and closing with unread bytes in the
   * receive queue sends a reset that can make the client lose the 413 it had not read yet.
   */
  const refuseTooLarge = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++;
    stats.byOutcome.too_large++;
    req.removeAllListeners('data');
    req.on('data', () => undefined);
    if (res.headersSent) return void req.socket.destroy();
    const body = JSON.stringify({
      error: {
        message: `request body is larger than the server's limit of ${maxBodyBytes} bytes (maxBodyBytes)`,
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });
    res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.write(body);
    const socket = req.socket;
    const timer = setTimeout(() => {
      res.end();
      socket.destroy();
    }, 3000);
    // All of it arrived: nothing is left unread, so ending (and closing) is clean.
    const finish = (): void => {
      clearTimeout(timer);
      res.end();
    };
    if (req.readableEnded) finish();
    else req.once('end', finish);
    socket.once('close', () => clearTimeout(timer));
  };

  const server: Server = createServer((req, res) => {
    req.on('error', () => undefined);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) return refuseTooLarge(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBodyBytes) {
        refused = true;
        chunks.length = 0;
        return refuseTooLarge(req, res);
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (refused) return;
      try {
        handle(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        // Whatever a request does, the server answers it and stays up.
        if (!res.headersSent) sendError(res, 500, `internal error: ${(err as Error).message}`, 'server_error');
        else res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    stats,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
