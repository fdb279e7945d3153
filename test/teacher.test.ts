import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng, generateCoinFlip, generateLastLetterConcatenation, isCorrect } from '../lib/tasks/index.js';
import {
  answerFromRationale,
  answerPrompt,
  backoffDelay,
  cacheKey,
  classifyError,
  CompletionCache,
  costUsd,
  drawFault,
  evenFaults,
  MalformedResponseError,
  parseRetryAfter,
  parseZeroShotCotPrompt,
  rationalePrompt,
  ReplayBook,
  resolveApiKey,
  simulateRationale,
  TeacherClient,
  TeacherRequestError,
  TokenBucket,
  validateFaults,
  withRetry,
  type CacheEntry,
} from '../lib/teacher/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-teacher-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('Zero-shot-CoT prompts', () => {
  it('builds the two stages and reads them back', () => {
    const q = 'Take the last letters of each words in "Lucky Mireya" and concatenate them.\n';
    const p1 = rationalePrompt(q);
    expect(p1).toBe(`Q: Take the last letters of each words in "Lucky Mireya" and concatenate them.\nA: Let's think step by step.`);
    const p2 = answerPrompt(q, ' Lucky - y, Mireya - a.', 'last_letter_concatenation');
    expect(p2).toBe(`${p1} Lucky - y, Mireya - a.\nTherefore, the answer is`);
    expect(answerPrompt('Q?', ' r', 'svamp')).toMatch(/\nTherefore, the answer \(arabic numerals\) is$/);
    expect(answerPrompt('Q?', ' r', 'commonsense_qa')).toMatch(/\nTherefore, among A through E, the answer is$/);
    expect(answerPrompt('Q?', ' r', 'coin_flip')).toMatch(/\nTherefore, the answer \(Yes or No\) is$/);
    expect(parseZeroShotCotPrompt(p1)).toEqual({ stage: 'rationale', question: q.trim() });
    expect(parseZeroShotCotPrompt(answerPrompt('Is it?', ' Yes.\nNo doubt.', 'strategy_qa'))).toEqual({
      stage: 'answer',
      question: 'Is it?',
      rationale: ' Yes.\nNo doubt.',
      trigger: 'Therefore, the answer (Yes or No) is',
    });
    expect(parseZeroShotCotPrompt('Hello')).toBeUndefined();
  });
});

describe('retries', () => {
  const headers = (h: Record<string, string>) => new Headers(h);

  it('reads Retry-After as seconds or a date, and OpenAI retry-after-ms first', () => {
    expect(parseRetryAfter(headers({ 'retry-after': '2' }))).toBe(2000);
    expect(parseRetryAfter(headers({ 'retry-after': '0.5', 'retry-after-ms': '120' }))).toBe(120);
    expect(parseRetryAfter(headers({ 'retry-after': new Date(10_000 + 3000).toUTCString() }), 10_000)).toBe(3000);
    expect(parseRetryAfter(headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(parseRetryAfter({ 'retry-after': '1' })).toBe(1000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('classifies: 429/5xx/timeouts/resets/malformed retry, 4xx do not', () => {
    const apiError = (status: number, h: Record<string, string> = {}) => APIError.generate(status, { message: 'x' }, 'x', headers(h));
    expect(classifyError(apiError(429, { 'retry-after': '3' }))).toEqual({ kind: 'rate_limit', retryable: true, status: 429, retryAfterMs: 3000 });
    expect(classifyError(apiError(503))).toMatchObject({ kind: 'server', retryable: true });
    expect(classifyError(apiError(400))).toMatchObject({ kind: 'fatal', retryable: false, status: 400 });
    expect(classifyError(apiError(401))).toMatchObject({ retryable: false });
    expect(classifyError(new APIConnectionTimeoutError())).toMatchObject({ kind: 'timeout', retryable: true });
    expect(classifyError(new APIConnectionError({ message: 'reset' }))).toMatchObject({ kind: 'connection', retryable: true });
    expect(classifyError(new SyntaxError('Unexpected end of JSON input'))).toMatchObject({ kind: 'malformed', retryable: true });
    expect(classifyError(new MalformedResponseError('no choices'))).toMatchObject({ kind: 'malformed', retryable: true });
    expect(classifyError(new TypeError('terminated'))).toMatchObject({ kind: 'connection', retryable: true });
    expect(classifyError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toMatchObject({ kind: 'connection' });
    expect(classifyError(new Error('bug'))).toMatchObject({ kind: 'fatal', retryable: false });
  });

  it('backs off exponentially with jitter, capped, and never waits less than Retry-After', () => {
    const policy = { maxRetries: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(0, policy, undefined, () => 0)).toBe(50);
    expect(backoffDelay(0, policy, undefined, () => 0.999)).toBeCloseTo(99.95, 1);
    expect(backoffDelay(3, policy, undefined, () => 0)).toBe(400);
    expect(backoffDelay(9, policy, undefined, () => 1)).toBe(1000);
    expect(backoffDelay(0, policy, 2500, () => 0)).toBe(2500);
    expect(backoffDelay(0, policy, 2500, () => 1)).toBe(2750);
  });

  it('retries until success, fails fast on fatal errors, and gives up after maxRetries', async () => {
    const policy = { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 2 };
    let calls = 0;
    const retried: string[] = [];
    const value = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new SyntaxError('bad json');
        return 'ok';
      },
      policy,
      { onRetry: (e) => retried.push(e.error.kind) },
    );
    expect([value, calls, retried]).toEqual(['ok', 3, ['malformed', 'malformed']]);

    calls = 0;
    const fatal = withRetry(async () => {
      calls++;
      throw APIError.generate(404, { message: 'no model' }, 'no model', new Headers());
    }, policy);
    await expect(fatal).rejects.toThrow(TeacherRequestError);
    await expect(fatal).rejects.toThrow(/fatal \(HTTP 404\) after 1 attempt/);
    expect(calls).toBe(1);

    calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw new APIConnectionTimeoutError();
      }, policy),
    ).rejects.toMatchObject({ kind: 'timeout', attempts: 4 });
    expect(calls).toBe(4);
  });
});

describe('rate limits', () => {
  it('a token bucket paces takes at the per-minute rate after its burst', async () => {
    const bucket = new TokenBucket(6000, 0.1); // 100/s, holds 10
    const t0 = performance.now();
    for (let i = 0; i < 30; i++) await bucket.take(1);
    const elapsed = performance.now() - t0;
    // 10 at once, then 20 at 100/s
    expect(elapsed).toBeGreaterThan(170);
    expect(elapsed).toBeLessThan(600);
  });

  it('a cost above the capacity still goes through, leaving debt that later takes wait for', async () => {
    let now = 0;
    const bucket = new TokenBucket(60_000, 1, () => now); // 1 per ms, holds 1000
    await bucket.take(1500);
    expect(bucket.available()).toBe(-500);
    now += 400;
    expect(bucket.available()).toBe(-100);
    bucket.charge(-300); // the request used fewer tokens than estimated
    expect(bucket.available()).toBe(200);
  });
});

describe('completion cache', () => {
  const entry = (key: string, text = `text of ${key}`): CacheEntry => ({
    key,
    model: 'm',
    stage: 'rationale',
    sampleIndex: 0,
    text,
    finishReason: 'stop',
    usage: { promptTokens: 1, completionTokens: 2 },
    at: '2024-01-01T00:00:00.000Z',
  });

  it('keys by model, endpoint, prompt, sampling and sample index', () => {
    const base = { model: 'm', api: 'chat' as const, prompt: 'p', sampling: { temperature: 0.7, maxTokens: 256, seed: 1 }, sampleIndex: 0 };
    const k = cacheKey(base);
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey({ ...base })).toBe(k);
    for (const changed of [
      { ...base, model: 'm2' },
      { ...base, api: 'completions' as const },
      { ...base, prompt: 'p ' },
      { ...base, sampling: { ...base.sampling, temperature: 0.8 } },
      { ...base, sampling: { ...base.sampling, maxTokens: 255 } },
      { ...base, sampling: { ...base.sampling, seed: 2 } },
      { ...base, sampleIndex: 1 },
    ]) {
      expect(cacheKey(changed)).not.toBe(k);
    }
  });

  it('appends one line per entry and reloads them', () => {
    const path = join(tmp, 'reload.jsonl');
    const cache = CompletionCache.open(path);
    cache.append(entry('a'));
    cache.append(entry('b', 'multi\nline "text"'));
    cache.close();
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(3);
    const again = CompletionCache.open(path);
    expect([again.loaded, again.tornLines, again.get('b')?.text]).toEqual([2, 0, 'multi\nline "text"']);
    again.close();
  });

  it('detects a torn last line, ignores it and cuts it off so later appends stay clean', () => {
    const path = join(tmp, 'torn.jsonl');
    const cache = CompletionCache.open(path);
    cache.append(entry('a'));
    cache.close();
    appendFileSync(path, JSON.stringify(entry('b')).slice(0, 40)); // killed mid-write
    const reopened = CompletionCache.open(path);
    expect([reopened.loaded, reopened.tornLines, reopened.has('b')]).toEqual([1, 1, false]);
    reopened.append(entry('c'));
    reopened.close();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).key)).toEqual(['a', 'c']);
  });

  it('keeps a whole last entry that only lacks its newline', () => {
    const path = join(tmp, 'nonewline.jsonl');
    writeFileSync(path, JSON.stringify(entry('a')));
    const cache = CompletionCache.open(path);
    expect([cache.loaded, cache.tornLines]).toEqual([1, 0]);
    cache.append(entry('b'));
    cache.close();
    expect(readFileSync(path, 'utf8').trimEnd().split('\n')).toHaveLength(2);
  });

  it('a corrupt line before the last is an error naming file and line, unless skipped', () => {
    const path = join(tmp, 'corrupt.jsonl');
    writeFileSync(path, `${JSON.stringify(entry('a'))}\n{oops\n${JSON.stringify(entry('b'))}\n`);
    expect(() => CompletionCache.open(path)).toThrow(`${path}:2: corrupt cache line`);
    const cache = CompletionCache.open(path, { skipCorrupt: true });
    expect([cache.loaded, cache.skippedLines]).toEqual([2, 1]);
    cache.close();
  });

  it("one collector at a time: a live lock is refused, a dead owner's lock is taken over", () => {
    const path = join(tmp, 'locked.jsonl');
    const first = CompletionCache.open(path);
    writeFileSync(`${path}.lock`, '1'); // pid 1 is alive
    expect(() => CompletionCache.open(path)).toThrow(/in use by process 1/);
    writeFileSync(`${path}.lock`, '999999999'); // no such process
    const second = CompletionCache.open(path);
    second.close();
    first.close();
  });
});

describe('API key', () => {
  it('comes from the named environment variable only; a missing one names the variable', () => {
    process.env.MENTOR_KD_TEST_KEY_A = 'sk-from-env';
    expect(resolveApiKey('MENTOR_KD_TEST_KEY_A', 'https://api.openai.com/v1')).toBe('sk-from-env');
    delete process.env.MENTOR_KD_TEST_KEY_B;
    expect(() => resolveApiKey('MENTOR_KD_TEST_KEY_B', 'https://api.openai.com/v1')).toThrow(/set the environment variable MENTOR_KD_TEST_KEY_B/);
    expect(resolveApiKey('MENTOR_KD_TEST_KEY_B', 'http://127.0.0.1:8000/v1')).not.toBe('');
    expect(() => resolveApiKey('not a name', 'http://localhost/v1')).toThrow(/not an environment variable name/);
  });

  it('never shows up when a client is printed', () => {
    const secret = 'sk-test-do-not-print-0123456789';
    process.env.MENTOR_KD_TEST_KEY_C = secret;
    const client = new TeacherClient({ model: 'gpt-x', baseURL: 'https://example.invalid/v1', apiKeyEnv: 'MENTOR_KD_TEST_KEY_C' });
    expect(JSON.stringify(client)).not.toContain(secret);
    expect(inspect(client, { depth: 10, showHidden: true })).not.toContain(secret);
    expect(JSON.stringify(client)).toContain('gpt-x');
    client.close();
  });
});

describe('usage and cost', () => {
  it('prices prompt and completion tokens per million', () => {
    expect(costUsd({ promptTokens: 1_000_000, completionTokens: 500_000 }, { inputPerMillion: 1.5, outputPerMillion: 2 })).toBeCloseTo(2.5);
    expect(costUsd({ promptTokens: 10, completionTokens: 10 }, undefined)).toBeUndefined();
  });
});

describe('simulated teacher', () => {
  it('is right without errors, deterministic by seed, and varies its phrasing', () => {
    const qs = [...generateLastLetterConcatenation({ count: 40, seed: 1 }), ...generateCoinFlip({ count: 40, seed: 1 })];
    const phrasings = new Set<string>();
    for (const q of qs) {
      const a = simulateRationale(q.question, createRng(5), 0)!;
      const b = simulateRationale(q.question, createRng(5), 0)!;
      expect(a).toEqual(b);
      expect(a.mistake).toBe('none');
      const task = a.task;
      expect(isCorrect(a.text, q.answer, task)).toBe(true);
      expect(isCorrect(answerFromRationale(a.text, task), q.answer, task, { source: 'answer' })).toBe(true);
      phrasings.add(`${task}:${a.text.slice(0, 8)}`);
    }
    expect(phrasings.size).toBeGreaterThanOrEqual(6);
  });

  it('makes mistakes at the configured rate, both wrong steps and wrong final answers', () => {
    const qs = generateLastLetterConcatenation({ count: 400, seed: 2 });
    const rng = createRng(9);
    const outcomes = qs.map((q) => {
      const r = simulateRationale(q.question, rng, 0.3)!;
      return { mistake: r.mistake, correct: isCorrect(r.text, q.answer, 'last_letter_concatenation') };
    });
    const wrong = outcomes.filter((o) => !o.correct).length;
    expect(wrong).toBeGreaterThan(90);
    expect(wrong).toBeLessThan(150);
    expect(outcomes.every((o) => o.correct === (o.mistake === 'none'))).toBe(true);
    expect(outcomes.some((o) => o.mistake === 'step')).toBe(true);
    expect(outcomes.some((o) => o.mistake === 'final')).toBe(true);
  });

  it('does not answer questions of other tasks', () => {
    expect(simulateRationale('What is 2 + 2?', createRng(1), 0)).toBeUndefined();
  });
});

describe('replay', () => {
  it('serves recorded outputs by question, distinct per sample, fixed by seed', () => {
    const book = ReplayBook.fromFile(join(__dirname, 'fixtures', 'tasks', 'replay_6.json'), 'last_letter_concatenation');
    const q = 'Take the last letters of each words in "Lucky Mireya Jj Kc" and concatenate them.';
    const picks = [0, 1, 2].map((s) => book.rationale(q, 0, s));
    expect(new Set(picks).size).toBe(3);
    expect([0, 1, 2].map((s) => book.rationale(q, 0, s))).toEqual(picks);
    expect(book.rationale(`${q}\n`, 0, 0)).toBe(picks[0]); // trailing blank of release questions
    expect(book.rationale('unknown question', 0, 0)).toBeUndefined();
    expect(book.rationale('Take the last letters of each words in "Nobody Recorded This" and concatenate them.', 0, 0)).toBeUndefined();
    expect(() => ReplayBook.fromFile(join(__dirname, 'fixtures', 'tasks', 'replay_6.json'))).toThrow(/cannot tell the task/);
  });
});

describe('fault injection', () => {
  it('draws each fault at its rate', () => {
    const faults = evenFaults(0.5);
    validateFaults(faults);
    const rng = createRng(4);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const f = drawFault(faults, rng) ?? 'none';
      counts[f] = (counts[f] ?? 0) + 1;
    }
    expect(counts.none! / 10_000).toBeCloseTo(0.5, 1);
    for (const k of ['rate_limited', 'server_error', 'dropped', 'malformed', 'slow']) expect(counts[k]! / 10_000).toBeCloseTo(0.1, 1);
    expect(() => validateFaults({ rateLimited: 0.7, serverError: 0.7 })).toThrow(/sum to 1.4/);
    expect(() => validateFaults({ dropped: -0.1 })).toThrow(/dropped must be in \[0, 1\]/);
  });
});
