/** The collector against the built-in teacher server, over real HTTP. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCoinFlip, generateLastLetterConcatenation, loadTaskFile, loadTeacherOutputs, type TaskRecord } from '../lib/tasks/index.js';
import {
  collectRationales,
  CompletionCache,
  ReplayBook,
  startTeacherServer,
  TeacherClient,
  writeSamples,
  type CollectProgress,
  type CollectResult,
} from '../lib/teacher/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-teacher-http-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fastRetry = { baseDelayMs: 5, maxDelayMs: 50, maxRetries: 12 };

function samplesPerQuestion(result: CollectResult): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const s of result.samples) by.set(s.questionId, [...(by.get(s.questionId) ?? []), s.sampleIndex]);
  return by;
}

describe('collection under injected faults (20%)', () => {
  it('every question gets exactly its n samples, none duplicated, nothing asked twice; the key stays secret', async () => {
    const secret = `sk-test-${Math.random().toString(36).slice(2)}-secret`;
    process.env.MENTOR_KD_HTTP_TEST_KEY = secret;
    const server = await startTeacherServer({
      seed: 11,
      latencyMs: 2,
      errorRate: 0.2,
      apiKey: secret,
      recordRequests: true,
      faults: { rateLimited: 0.04, serverError: 0.04, dropped: 0.04, malformed: 0.04, slow: 0.04, retryAfterMs: 20, slowMs: 1500 },
    });
    const logs: string[] = [];
    try {
      const n = 3;
      const runs: Array<[string, TaskRecord[], 'chat' | 'completions']> = [
        ['last_letter_concatenation', generateLastLetterConcatenation({ count: 30, seed: 21 }), 'chat'],
        ['coin_flip', generateCoinFlip({ count: 30, seed: 22 }), 'completions'],
      ];
      for (const [task, questions, api] of runs) {
        const cachePath = join(tmp, `faults-${task}.jsonl`);
        const cache = CompletionCache.open(cachePath);
        const client = new TeacherClient({ model: 'sim', baseURL: server.url, api, apiKeyEnv: 'MENTOR_KD_HTTP_TEST_KEY', timeoutMs: 1000 });
        const progress: CollectProgress[] = [];
        const result = await collectRationales({
          task,
          questions,
          teacher: client,
          samples: n,
          concurrency: 16,
          cache,
          retry: fastRetry,
          pricing: { inputPerMillion: 1, outputPerMillion: 2 },
          onProgress: (p) => progress.push(p),
        });
        cache.close();
        client.close();
        logs.push(JSON.stringify(result.stats), JSON.stringify(progress.at(-1)));

        expect(result.failures).toEqual([]);
        const by = samplesPerQuestion(result);
        expect(by.size).toBe(questions.length);
        for (const q of questions) expect(by.get(q.id)!.sort()).toEqual([0, 1, 2]);
        expect(result.samples).toHaveLength(questions.length * n);

        // The cache holds each completion once: 2 stages × n samples × questions, unique keys.
        const lines = readFileSync(cachePath, 'utf8')
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l));
        expect(lines).toHaveLength(2 * n * questions.length);
        expect(new Set(lines.map((l) => l.key)).size).toBe(lines.length);
        expect(result.stats.responses).toBe(lines.length);

        // Faults were met and retried, of every kind.
        for (const kind of ['rate_limit', 'server', 'connection', 'malformed', 'timeout']) {
          expect(result.stats.retriesByKind[kind as 'server'], kind).toBeGreaterThan(0);
        }
        expect(result.stats.requests).toBe(result.stats.responses + result.stats.retries);
        expect(result.stats.costUsd).toBeCloseTo((result.stats.usage.promptTokens + 2 * result.stats.usage.completionTokens) / 1e6, 12);
        expect(progress.at(-1)).toMatchObject({ done: questions.length * n, total: questions.length * n, pending: 0 });

        // Samples distinct per index, and the simulated teacher is wrong about 20% of the time.
        const accuracy = result.samples.filter((s) => s.correct).length / result.samples.length;
        expect(accuracy).toBeGreaterThan(0.65);
        expect(accuracy).toBeLessThan(0.95);
        const out = join(tmp, `${task}.json`);
        writeSamples(out, result.samples);
        logs.push(readFileSync(out, 'utf8'), readFileSync(cachePath, 'utf8'));
        expect(loadTaskFile(out).records.filter((r) => r.initialCorrect).length).toBe(result.samples.filter((s) => s.correct).length);
      }
      // Server side: each answer delivered was asked for exactly once (no duplicates). The client
      // timeout (1 s) is far above normal latency, so only the slow faults time out.
      const ok = server.requests.filter((r) => r.outcome === 'ok');
      expect(new Set(ok.map((r) => `${r.endpoint}|${r.seed}|${r.prompt}`)).size).toBe(ok.length);
      expect(ok).toHaveLength(2 * 3 * 60);
      for (const kind of ['rate_limited', 'server_error', 'dropped', 'malformed', 'slow'] as const) {
        expect(server.stats.byOutcome[kind], kind).toBeGreaterThan(0);
      }
      expect(server.stats.byOutcome.unauthorized).toBe(0);
      for (const text of logs) expect(text).not.toContain(secret);
    } finally {
      await server.close();
      delete process.env.MENTOR_KD_HTTP_TEST_KEY;
    }
  });

  it('a wrong key fails at once (401 is not retried)', async () => {
    const server = await startTeacherServer({ apiKey: 'sk-right' });
    process.env.MENTOR_KD_HTTP_WRONG_KEY = 'sk-wrong';
    try {
      const client = new TeacherClient({ model: 'sim', baseURL: server.url, apiKeyEnv: 'MENTOR_KD_HTTP_WRONG_KEY' });
      const result = await collectRationales({
        task: 'coin_flip',
        questions: generateCoinFlip({ count: 2, seed: 1 }),
        teacher: client,
        retry: fastRetry,
      });
      client.close();
      expect(result.samples).toEqual([]);
      expect(result.failures.map((f) => [f.kind, f.attempts])).toEqual([
        ['fatal', 1],
        ['fatal', 1],
      ]);
      expect(result.failures[0]!.message).toMatch(/HTTP 401/);
      expect(result.failures[0]!.message).not.toContain('sk-wrong');
      expect(server.stats.byOutcome.unauthorized).toBe(2);
    } finally {
      await server.close();
      delete process.env.MENTOR_KD_HTTP_WRONG_KEY;
    }
  });
});

describe('Retry-After and rate limits', () => {
  it('waits as long as Retry-After says before retrying', async () => {
    const arrivals: number[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        arrivals.push(performance.now());
        if (arrivals.length === 1) {
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': '300', 'retry-after': '1' });
          res.end(JSON.stringify({ error: { message: 'slow down', type: 'requests' } }));
          return;
        }
        const body = JSON.stringify({
          id: 'c',
          object: 'chat.completion',
          created: 0,
          model: 'm',
          choices: [{ index: 0, message: { role: 'assistant', content: ' So the answer is "ab".' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const client = new TeacherClient({ model: 'm', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` });
      const result = await collectRationales({
        task: 'last_letter_concatenation',
        questions: [{ id: 'q', question: 'Take the last letters of each words in "Bob Ada" and concatenate them.', answer: 'ba' }],
        teacher: client,
        retry: { baseDelayMs: 1, maxDelayMs: 5 },
      });
      client.close();
      expect(arrivals).toHaveLength(3); // 429, then rationale, then answer
      const waited = arrivals[1]! - arrivals[0]!;
      expect(waited).toBeGreaterThanOrEqual(295);
      expect(waited).toBeLessThan(900);
      expect(result.stats.retriesByKind).toEqual({ rate_limit: 1 });
      expect(result.samples[0]).toMatchObject({ prediction: 'ab', correct: false });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('paces requests under a requests-per-minute limit', async () => {
    const server = await startTeacherServer({ recordRequests: true });
    try {
      const client = new TeacherClient({ model: 'sim', baseURL: server.url });
      const t0 = performance.now();
      await collectRationales({
        task: 'coin_flip',
        questions: generateCoinFlip({ count: 12, seed: 3 }),
        teacher: client,
        concurrency: 8,
        limits: { requestsPerMinute: 3600, burstSeconds: 0.05 }, // 60/s, 3 at once
      });
      client.close();
      const elapsed = performance.now() - t0;
      expect(server.stats.requests).toBe(24);
      expect(elapsed).toBeGreaterThan(((24 - 3) / 60) * 1000 * 0.9);
    } finally {
      await server.close();
    }
  });
});

describe('replayed teacher', () => {
  const replayFile = join(__dirname, 'fixtures', 'tasks', 'replay_6.json');
  const recorded = loadTeacherOutputs(replayFile).entries;

  it('plays back recorded outputs, distinct per sample, the same on every run with the same seed', async () => {
    const questions = recorded.slice(0, 2).map((e, i) => ({ id: `r${i}`, question: e.question, answer: e.label! }));
    const collect = async (seed: number): Promise<CollectResult> => {
      const server = await startTeacherServer({ seed, replay: ReplayBook.fromFile(replayFile, 'last_letter_concatenation') });
      try {
        const client = new TeacherClient({ model: 'replay', baseURL: server.url, api: 'completions' });
        const result = await collectRationales({ task: 'last_letter_concatenation', questions, teacher: client, samples: 2 });
        client.close();
        return result;
      } finally {
        await server.close();
      }
    };
    const a = await collect(0);
    const b = await collect(0);
    expect(a.samples.map((s) => s.rationale)).toEqual(b.samples.map((s) => s.rationale));
    for (const s of a.samples) expect(recorded[Number(s.questionId.slice(1))]!.outputs).toContain(s.rationale);
    const first = a.samples.filter((s) => s.questionId === 'r0').map((s) => s.rationale);
    expect(new Set(first).size).toBe(2);
    // The answer stage states what the recorded rationale concluded; "yajk" is wrong.
    for (const s of a.samples) expect(s.correct).toBe(!s.rationale.includes('yajk'));
    const seeds = await Promise.all([1, 2, 3, 4].map((seed) => collect(seed)));
    const variants = new Set(seeds.map((r) => r.samples.map((s) => s.rationale).join('|')));
    expect(variants.size).toBeGreaterThan(1);
  });

  it('a question it has no recording for fails without retries', async () => {
    const server = await startTeacherServer({ replay: ReplayBook.fromFile(replayFile, 'last_letter_concatenation') });
    try {
      const client = new TeacherClient({ model: 'replay', baseURL: server.url });
      const result = await collectRationales({
        task: 'last_letter_concatenation',
        questions: [
          { id: 'none', question: recorded[2]!.question, answer: 'yds' },
          { id: 'math', question: 'What is 2 + 2?', answer: '4' },
        ],
        teacher: client,
        retry: fastRetry,
      });
      client.close();
      expect(result.failures.map((f) => [f.questionId, f.kind, f.attempts])).toEqual([
        ['none', 'fatal', 1],
        ['math', 'fatal', 1],
      ]);
      expect(result.failures[0]!.message).toMatch(/HTTP 404.*no recorded output/);
    } finally {
      await server.close();
    }
  });
});

describe('the server speaks the OpenAI API', () => {
  it('lists its model, returns n choices, truncates at max_tokens, rejects what it cannot answer', async () => {
    const server = await startTeacherServer({ model: 'teacher-x' });
    try {
      const models = (await (await fetch(`${server.url}/models`)).json()) as { data: Array<{ id: string }> };
      expect(models.data[0]!.id).toBe('teacher-x');
      const q = 'Take the last letters of each words in "Ada Bob Cy Dee" and concatenate them.';
      const post = (path: string, body: unknown) =>
        fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const three = (await (
        await post('/chat/completions', { model: 'm', n: 3, seed: 4, messages: [{ role: 'user', content: `Q: ${q}\nA: Let's think step by step.` }] })
      ).json()) as {
        choices: Array<{ message: { content: string }; finish_reason: string }>;
        usage: { completion_tokens: number };
      };
      expect(three.choices).toHaveLength(3);
      expect(three.choices.every((c) => c.finish_reason === 'stop' && c.message.content.includes('aby'))).toBe(true);
      const short = (await (await post('/completions', { model: 'm', max_tokens: 3, prompt: `Q: ${q}\nA: Let's think step by step.` })).json()) as {
        choices: Array<{ text: string; finish_reason: string }>;
      };
      expect(short.choices[0]!.finish_reason).toBe('length');
      expect(short.choices[0]!.text.length).toBeLessThanOrEqual(12);
      expect((await post('/completions', { model: 'm', prompt: 'Hello there' })).status).toBe(400);
      expect((await post('/completions', 'not an object')).status).toBe(400);
      expect((await post('/embeddings', {})).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
