/**
 * Collects teacher rationales at scale: for every question, `samples` Zero-shot-CoT samples,
 * each a rationale request then an answer request, with the answer extracted and checked
 * against gold. Runs `concurrency` requests at a time under requests/tokens-per-minute limits,
 * retries transient failures, accounts usage and cost, and goes through the completion cache
 * so that a rerun only asks for what is missing.
 */
import { setMaxListeners } from 'node:events';
import { answersMatch, extractAnswer, normalizeGold } from '../tasks/cleansing.js';
import { resolveTask, type TaskSpec } from '../tasks/registry.js';
import { cacheKey, type CacheEntry, type CompletionCache, type SamplingParams, type TeacherApi } from './cache.js';
import type { CompletionResult } from './client.js';
import { estimateTokens, RateLimiter, type RateLimits } from './limits.js';
import { answerPrompt, rationalePrompt } from './prompts.js';
import {
  DEFAULT_RETRY_POLICY,
  describeRetry,
  MalformedResponseError,
  TeacherRequestError,
  withRetry,
  type FailureKind,
  type RetryEvent,
  type RetryPolicy,
} from './retry.js';
import { addUsage, costUsd, type Pricing, type TokenUsage } from './usage.js';

/** What the collector needs of a teacher: `TeacherClient` or any stand-in. */
export interface Teacher {
  readonly model: string;
  readonly api: TeacherApi;
  complete(prompt: string, sampling: SamplingParams, signal?: AbortSignal): Promise<CompletionResult>;
}

export interface QuestionInput {
  id: string;
  question: string;
  answer: string;
}

export interface CollectOptions {
  task: TaskSpec | string;
  questions: readonly QuestionInput[];
  teacher: Teacher;
  /** Samples per question (n); default 1. */
  samples?: number;
  /** Stage 1; default temperature 0.7 when samples > 1 (diverse reasoning) else 0, maxTokens 256. */
  rationale?: Partial<SamplingParams>;
  /** Stage 2; default temperature 0, maxTokens 32. */
  answer?: Partial<SamplingParams>;
  /** Base seed; sample i sends seed + i so samples differ but reruns repeat. null: send none. Default 0. */
  seed?: number | null;
  cache?: CompletionCache;
  /** Requests in flight at once; default 8. */
  concurrency?: number;
  limits?: RateLimits;
  retry?: Partial<RetryPolicy>;
  pricing?: Pricing;
  onProgress?: (progress: CollectProgress) => void;
  /** Each finished sample, as soon as it is ready. */
  onSample?: (sample: TeacherSample) => void;
  /** Each retry, with a log line (`describeRetry`) that also says when a Retry-After was capped. */
  onRetry?: (event: CollectRetryEvent) => void;
  signal?: AbortSignal;
  /**
   * Wall-clock limit of the whole collection, in ms; none by default. When it passes, requests
   * in flight are abandoned and the collection rejects with `CollectDeadlineError` (how many
   * samples are done; what was answered is in the cache, and a rerun resumes from it).
   */
  deadlineMs?: number;
}

export interface CollectRetryEvent extends RetryEvent {
  questionId: string;
  sampleIndex: number;
  stage: CacheEntry['stage'];
  /** `describeRetry(event)` prefixed with the sample, for logs. */
  line: string;
}

/** The collection ran past `deadlineMs`. `result` holds what was done (samples, failures, stats). */
export class CollectDeadlineError extends Error {
  readonly result: CollectResult;
  readonly deadlineMs: number;
  constructor(deadlineMs: number, result: CollectResult, cachePath: string | undefined) {
    const s = result.stats;
    super(
      `teacher collection passed its deadline (deadlineMs ${deadlineMs}) with ${s.completed} of ${s.total} samples done` +
        `${s.failed ? ` (${s.failed} failed)` : ''}; ` +
        (cachePath
          ? `every completion received is in the cache ${cachePath}: rerun to resume from it (only the missing ones are asked)`
          : 'no completion cache was given, so a rerun starts over: pass a cache to make reruns resume'),
    );
    this.name = 'CollectDeadlineError';
    this.deadlineMs = deadlineMs;
    this.result = result;
  }
}

/** Aborted when either is (AbortSignal.any where Node has it, >= 20.3). */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const both = new AbortController();
  const forward = (s: AbortSignal) => (): void => both.abort(s.reason);
  if (a.aborted) both.abort(a.reason);
  else if (b.aborted) both.abort(b.reason);
  else {
    a.addEventListener('abort', forward(a), { once: true });
    b.addEventListener('abort', forward(b), { once: true });
  }
  return both.signal;
}

/** Empty and null completions are not rationales: retried as malformed, never cached. */
function usableText(text: unknown): boolean {
  return typeof text === 'string' && text.trim() !== '';
}

export interface TeacherSample {
  questionId: string;
  question: string;
  gold: string;
  sampleIndex: number;
  rationale: string;
  /** The raw answer-stage output. */
  answerText: string;
  /** The cleansed answer (from the answer stage, else from the rationale). */
  prediction: string | undefined;
  correct: boolean;
  finishReason: { rationale: string | null; answer: string | null };
}

export interface CollectFailure {
  questionId: string;
  sampleIndex: number;
  kind: FailureKind;
  attempts: number;
  message: string;
}

export interface CollectStats {
  /** questions × samples */
  total: number;
  completed: number;
  failed: number;
  /** HTTP attempts sent (retries included). */
  requests: number;
  /** Completions received from the teacher in this run. */
  responses: number;
  /** Completions served from the cache instead. */
  cacheHits: number;
  retries: number;
  retriesByKind: Partial<Record<FailureKind, number>>;
  /** Tokens of this run's responses (cache hits cost nothing). */
  usage: TokenUsage;
  costUsd: number | undefined;
  elapsedMs: number;
}

export interface CollectProgress extends CollectStats {
  done: number;
  inFlight: number;
  /** Samples not started yet. */
  pending: number;
  /** Teacher responses per second so far. */
  requestsPerSecond: number;
  etaMs: number | undefined;
}

export interface CollectResult {
  /** Question order, then sample index; failed samples are absent (see `failures`). */
  samples: TeacherSample[];
  failures: CollectFailure[];
  stats: CollectStats;
  aborted: boolean;
}

interface Unit {
  q: QuestionInput;
  questionIndex: number;
  sampleIndex: number;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

export async function collectRationales(options: CollectOptions): Promise<CollectResult> {
  const task = resolveTask(options.task);
  const samples = positiveInt('samples', options.samples ?? 1);
  const concurrency = positiveInt('concurrency', options.concurrency ?? 8);
  const { teacher, cache } = options;
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  if (policy.maxRetryAfterMs !== undefined && !(policy.maxRetryAfterMs >= 0)) {
    throw new Error(`retry.maxRetryAfterMs must be >= 0, got ${policy.maxRetryAfterMs}`);
  }
  const deadlineMs = options.deadlineMs;
  if (deadlineMs !== undefined && !(Number.isFinite(deadlineMs) && deadlineMs > 0)) {
    throw new Error(`deadlineMs must be a positive number of milliseconds, got ${deadlineMs}`);
  }
  // The caller's signal, and the deadline's when there is one: either stops every request and wait.
  const deadline = deadlineMs !== undefined ? new AbortController() : undefined;
  const signal = deadline && options.signal ? anySignal(options.signal, deadline.signal) : (deadline?.signal ?? options.signal);
  const limiter = new RateLimiter(options.limits);
  const rationaleBase: SamplingParams = {
    temperature: samples > 1 ? 0.7 : 0,
    maxTokens: 256,
    ...options.rationale,
  };
  const answerBase: SamplingParams = { temperature: 0, maxTokens: 32, ...options.answer };
  const baseSeed = options.seed === undefined ? 0 : options.seed;
  // Every request in flight and every backoff wait listens on the caller's signal.
  if (signal) setMaxListeners(0, signal);

  const seen = new Set<string>();
  for (const q of options.questions) {
    if (seen.has(q.id)) throw new Error(`duplicate question id "${q.id}": ids must be unique to keep samples apart`);
    seen.add(q.id);
  }
  const units: Unit[] = [];
  options.questions.forEach((q, questionIndex) => {
    for (let sampleIndex = 0; sampleIndex < samples; sampleIndex++) units.push({ q, questionIndex, sampleIndex });
  });

  const started = performance.now();
  const stats: CollectStats = {
    total: units.length,
    completed: 0,
    failed: 0,
    requests: 0,
    responses: 0,
    cacheHits: 0,
    retries: 0,
    retriesByKind: {},
    usage: { promptTokens: 0, completionTokens: 0 },
    costUsd: options.pricing ? 0 : undefined,
    elapsedMs: 0,
  };
  let inFlight = 0;
  let next = 0;
  const results: Array<TeacherSample | undefined> = new Array(units.length);
  const failures: CollectFailure[] = [];
  // Without a cache file, still never ask twice within a run (duplicate question texts).
  const memory = new Map<string, CacheEntry>();
  const pendingRequests = new Map<string, Promise<CacheEntry>>();

  const report = (): void => {
    if (!options.onProgress) return;
    stats.elapsedMs = performance.now() - started;
    const done = stats.completed + stats.failed;
    const seconds = stats.elapsedMs / 1000;
    options.onProgress({
      ...stats,
      retriesByKind: { ...stats.retriesByKind },
      usage: { ...stats.usage },
      done,
      inFlight,
      pending: units.length - next,
      requestsPerSecond: seconds > 0 ? stats.responses / seconds : 0,
      etaMs: done > 0 ? (stats.elapsedMs / done) * (units.length - done) : undefined,
    });
  };

  const complete = (stage: CacheEntry['stage'], prompt: string, sampling: SamplingParams, unit: Unit): Promise<CacheEntry> => {
    const key = cacheKey({ model: teacher.model, api: teacher.api, prompt, sampling, sampleIndex: unit.sampleIndex });
    const hit = cache?.get(key) ?? memory.get(key);
    // An empty text (cached by an older version) is no answer: ask again.
    if (hit && usableText(hit.text)) {
      stats.cacheHits++;
      return Promise.resolve(hit);
    }
    const running = pendingRequests.get(key);
    if (running) return running;
    const estimate = estimateTokens(prompt) + sampling.maxTokens;
    const request = withRetry(
      async () => {
        await limiter.acquire(estimate, signal);
        stats.requests++;
        inFlight++;
        let result: CompletionResult;
        try {
          result = await teacher.complete(prompt, sampling, signal);
        } finally {
          inFlight--;
        }
        if (!usableText(result.text)) {
          throw new MalformedResponseError(`${stage} completion text is ${result.text === null ? 'null' : 'empty'}`);
        }
        return result;
      },
      policy,
      {
        ...(signal ? { signal } : {}),
        onRetry: (event) => {
          stats.retries++;
          stats.retriesByKind[event.error.kind] = (stats.retriesByKind[event.error.kind] ?? 0) + 1;
          if (options.onRetry) {
            const line = `${unit.q.id}#${unit.sampleIndex} ${stage}: ${describeRetry(event)}`;
            options.onRetry({ ...event, questionId: unit.q.id, sampleIndex: unit.sampleIndex, stage, line });
          }
          report();
        },
      },
    ).then((result) => {
      limiter.settle(estimate, result.usage.promptTokens + result.usage.completionTokens);
      const entry: CacheEntry = {
        key,
        model: teacher.model,
        stage,
        questionId: unit.q.id,
        sampleIndex: unit.sampleIndex,
        text: result.text,
        finishReason: result.finishReason,
        usage: result.usage,
        at: new Date().toISOString(),
      };
      // Appended the moment it exists: a kill after this line loses nothing.
      if (cache) cache.append(entry);
      else memory.set(key, entry);
      stats.responses++;
      addUsage(stats.usage, result.usage);
      if (options.pricing) stats.costUsd = costUsd(stats.usage, options.pricing);
      return entry;
    });
    pendingRequests.set(key, request);
    return request.finally(() => pendingRequests.delete(key));
  };

  const runUnit = async (unit: Unit, slot: number): Promise<void> => {
    const seed = baseSeed === null ? undefined : baseSeed + unit.sampleIndex;
    const withSeed = (s: SamplingParams): SamplingParams => (seed === undefined ? s : { ...s, seed });
    const stage1Prompt = rationalePrompt(unit.q.question);
    const rationale = await complete('rationale', stage1Prompt, withSeed(rationaleBase), unit);
    const stage2Prompt = answerPrompt(unit.q.question, rationale.text, task);
    const answer = await complete('answer', stage2Prompt, withSeed(answerBase), unit);
    const gold = normalizeGold(unit.q.answer, task);
    const prediction = extractAnswer(answer.text, task, { source: 'answer' }) ?? extractAnswer(rationale.text, task, { source: 'chain' });
    const sample: TeacherSample = {
      questionId: unit.q.id,
      question: unit.q.question,
      gold: unit.q.answer,
      sampleIndex: unit.sampleIndex,
      rationale: rationale.text,
      answerText: answer.text,
      prediction,
      correct: answersMatch(prediction, gold, task),
      finishReason: { rationale: rationale.finishReason, answer: answer.finishReason },
    };
    results[slot] = sample;
    stats.completed++;
    options.onSample?.(sample);
  };

  const worker = async (): Promise<void> => {
    while (next < units.length && !signal?.aborted) {
      const slot = next++;
      const unit = units[slot]!;
      try {
        await runUnit(unit, slot);
      } catch (err) {
        if (signal?.aborted) break;
        stats.failed++;
        failures.push({
          questionId: unit.q.id,
          sampleIndex: unit.sampleIndex,
          kind: err instanceof TeacherRequestError ? err.kind : 'fatal',
          attempts: err instanceof TeacherRequestError ? err.attempts : 1,
          message: err instanceof Error ? err.message : String(err),
        });
      }
      report();
    }
  };

  let timer: NodeJS.Timeout | undefined;
  if (deadline) timer = setTimeout(() => deadline.abort(new Error(`deadline of ${deadlineMs} ms passed`)), deadlineMs);
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, units.length) }, worker));
  } finally {
    clearTimeout(timer);
  }
  stats.elapsedMs = performance.now() - started;
  const result: CollectResult = {
    samples: results.filter((s): s is TeacherSample => s !== undefined),
    failures,
    stats,
    aborted: Boolean(signal?.aborted),
  };
  // The caller's own abort keeps its meaning (aborted: true); the deadline is an error.
  if (deadline?.signal.aborted && !options.signal?.aborted && stats.completed + stats.failed < stats.total) {
    throw new CollectDeadlineError(deadlineMs!, result, cache?.path);
  }
  return result;
}
