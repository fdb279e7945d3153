/**
 * The teacher: any OpenAI-compatible server (OpenAI, vLLM, Ollama, `mentor-kd teacher serve`)
 * through the `openai` SDK, on the chat or the legacy completions endpoint. One call is one
 * attempt: retries, limits and caching are the collector's, so the SDK's own retries are off.
 * The API key is read from the environment only and kept in a private field, never logged.
 */
import { openaiBaseUrlFromEnv, secretFromEnv } from '../runtime/env.js';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIUserAbortError } from 'openai';
import { MalformedResponseError, ResponseTooLargeError, TeacherConnectionError, TeacherTimeoutError } from './retry.js';
import { estimateTokens } from './limits.js';
import { boundedFetch, createNodeFetch, DEFAULT_MAX_RESPONSE_BYTES, type NodeFetch } from './node-fetch.js';
import type { SamplingParams, TeacherApi } from './cache.js';
import type { TokenUsage } from './usage.js';

export const DEFAULT_API_KEY_ENV = 'OPENAI_API_KEY';

export interface TeacherClientOptions {
  model: string;
  /** Default: $OPENAI_BASE_URL, else OpenAI's. */
  baseURL?: string;
  api?: TeacherApi;
  /** Name of the environment variable holding the key; default OPENAI_API_KEY. */
  apiKeyEnv?: string;
  /** Per-attempt timeout (connect to last byte of the response); default 60 s. */
  timeoutMs?: number;
  /** Largest response body accepted, after decompression (a gzip bomb stops here); default 32 MiB. */
  maxResponseBytes?: number;
  /**
   * HTTP stack: 'node' (default) a keep-alive node:http client, several times cheaper in CPU per
   * request than 'builtin' (Node's fetch) — it matters at hundreds of requests per second.
   */
  http?: 'node' | 'builtin';
}

export interface CompletionResult {
  text: string;
  finishReason: string | null;
  usage: TokenUsage;
  /** True when the server sent no usage and it was estimated from text length. */
  usageEstimated: boolean;
}

/** Is this base URL this machine (where servers commonly need no key)? */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
  } catch {
    return false;
  }
}

/**
 * The key from the environment variable `envName` (lib/runtime/env.ts). A local server may need none (a placeholder is sent);
 * anywhere else a missing key is an error that names the variable, never a value.
 */
export function resolveApiKey(envName: string, baseURL: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) throw new Error(`not an environment variable name: ${JSON.stringify(envName)}`);
  const key = secretFromEnv(envName);
  if (key) return key;
  if (isLoopbackUrl(baseURL)) return 'no-key-needed-for-local-server';
  throw new Error(`no API key: set the environment variable ${envName} (the key is read from the environment only)`);
}

export class TeacherClient {
  readonly model: string;
  readonly api: TeacherApi;
  readonly baseURL: string;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly #openai: OpenAI;
  readonly #http: NodeFetch | undefined;

  constructor(options: TeacherClientOptions) {
    if (!options.model) throw new Error('a teacher model name is required');
    this.model = options.model;
    this.api = options.api ?? 'chat';
    this.baseURL = options.baseURL ?? openaiBaseUrlFromEnv() ?? 'https://api.openai.com/v1';
    this.timeoutMs = options.timeoutMs ?? 60_000;
    if (!(this.timeoutMs > 0)) throw new Error(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#http = options.http === 'builtin' ? undefined : createNodeFetch({ maxResponseBytes: this.maxResponseBytes });
    this.#openai = new OpenAI({
      apiKey: resolveApiKey(options.apiKeyEnv ?? DEFAULT_API_KEY_ENV, this.baseURL),
      baseURL: this.baseURL,
      maxRetries: 0,
      timeout: this.timeoutMs,
      fetch: this.#http ? this.#http.fetch : boundedFetch(this.maxResponseBytes),
    });
  }

  /** Release idle connections (a process exits without it too). */
  close(): void {
    this.#http?.close();
  }

  /** What to show of this client in logs: no key. */
  toJSON(): Record<string, unknown> {
    return { model: this.model, api: this.api, baseURL: this.baseURL, timeoutMs: this.timeoutMs, maxResponseBytes: this.maxResponseBytes };
  }

  /** The SDK's bare "Connection error." / "Request timed out." made to say what happened and where. */
  #explain(err: unknown, endpoint: string): unknown {
    if (err instanceof APIUserAbortError || !(err instanceof APIConnectionError)) return err;
    const url = `${this.baseURL.replace(/\/+$/, '')}/${endpoint}`;
    if (err instanceof APIConnectionTimeoutError) return new TeacherTimeoutError(url, this.timeoutMs);
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof ResponseTooLargeError) return cause;
    return new TeacherConnectionError(url, cause ?? err);
  }

  /** One attempt at one completion of `prompt`. */
  async complete(prompt: string, sampling: SamplingParams, signal?: AbortSignal): Promise<CompletionResult> {
    const common = {
      model: this.model,
      temperature: sampling.temperature,
      max_tokens: sampling.maxTokens,
      n: 1,
      ...(sampling.topP !== undefined ? { top_p: sampling.topP } : {}),
      ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
      ...(sampling.stop !== undefined ? { stop: sampling.stop } : {}),
    };
    const requestOptions = signal ? { signal } : {};
    let text: unknown;
    let finishReason: unknown;
    let usage: { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined;
    if (this.api === 'chat') {
      const res: unknown = await this.#openai.chat.completions
        .create({ ...common, messages: [{ role: 'user', content: prompt }] }, requestOptions)
        .catch((err: unknown) => {
          throw this.#explain(err, 'chat/completions');
        });
      const choice = firstChoice(res);
      const message = (choice as { message?: { content?: unknown; refusal?: unknown } }).message;
      if (!message || typeof message !== 'object') throw new MalformedResponseError('chat completion choice has no message');
      if (message.content === null || message.content === undefined) {
        const refusal = typeof message.refusal === 'string' ? `: refusal ${JSON.stringify(message.refusal.slice(0, 80))}` : '';
        throw new MalformedResponseError(`chat completion message content is ${String(message.content)}${refusal}`);
      }
      text = message.content;
      finishReason = (choice as { finish_reason?: unknown }).finish_reason;
      usage = (res as { usage?: typeof usage }).usage;
    } else {
      const res: unknown = await this.#openai.completions.create({ ...common, prompt }, requestOptions).catch((err: unknown) => {
        throw this.#explain(err, 'completions');
      });
      const choice = firstChoice(res);
      text = (choice as { text?: unknown }).text;
      finishReason = (choice as { finish_reason?: unknown }).finish_reason;
      usage = (res as { usage?: typeof usage }).usage;
    }
    if (typeof text !== 'string') throw new MalformedResponseError(`completion text is ${text === null ? 'null' : 'not a string'}`);
    if (text.trim() === '') throw new MalformedResponseError('completion text is empty');
    const reported =
      usage && typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number'
        ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens }
        : undefined;
    return {
      text,
      finishReason: typeof finishReason === 'string' ? finishReason : null,
      usage: reported ?? { promptTokens: estimateTokens(prompt), completionTokens: estimateTokens(text) },
      usageEstimated: reported === undefined,
    };
  }
}

function firstChoice(res: unknown): unknown {
  if (res === null || typeof res !== 'object') {
    throw new MalformedResponseError(`response is not a JSON object: ${String(res).slice(0, 80)}`);
  }
  const choices = (res as { choices?: unknown }).choices;
  if (!Array.isArray(choices) || choices.length === 0 || typeof choices[0] !== 'object' || choices[0] === null) {
    throw new MalformedResponseError('response has no choices');
  }
  return choices[0];
}
