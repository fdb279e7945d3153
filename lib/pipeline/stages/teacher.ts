/**
 * Stages `collect` (teacher rationales, n per training question) and `filter` (keep those whose
 * extracted answer equals the gold one). With no teacher URL configured, the built-in simulated
 * teacher is started on loopback for the stage's duration.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompletionCache } from '../../teacher/cache.js';
import { TeacherClient } from '../../teacher/client.js';
import { collectRationales, type TeacherSample } from '../../teacher/collector.js';
import { createProgressBar } from '../../teacher/progress.js';
import { startTeacherServer } from '../../teacher/server/server.js';
import type { TaskRecord } from '../../tasks/records.js';
import type { RunConfig } from '../config.js';

export async function runCollectStage(c: RunConfig, train: readonly TaskRecord[], dir: string, log: (s: string) => void): Promise<Record<string, unknown>> {
  const server = c.teacher.url ? undefined : await startTeacherServer({ seed: c.seed, errorRate: c.teacher.embedded.errorRate, latencyMs: c.teacher.embedded.latencyMs });
  const url = c.teacher.url ?? server!.url;
  if (server) log(`collect: built-in simulated teacher at ${url} (error rate ${c.teacher.embedded.errorRate})`);
  const cache = CompletionCache.open(join(dir, 'teacher.cache.jsonl'));
  const progress = createProgressBar(train.length * c.teacher.samples);
  try {
    const result = await collectRationales({
      task: c.task,
      questions: train.map((r) => ({ id: r.id, question: r.question, answer: r.answer })),
      teacher: new TeacherClient({ model: c.teacher.model, baseURL: url, api: c.teacher.api, apiKeyEnv: c.teacher.apiKeyEnv }),
      samples: c.teacher.samples,
      seed: c.seed,
      concurrency: c.teacher.concurrency,
      cache,
      onProgress: progress?.onProgress,
    });
    progress?.stop();
    if (result.failures.length) {
      throw new Error(`collect: ${result.failures.length} samples failed after retries (first: ${result.failures[0]!.questionId}#${result.failures[0]!.sampleIndex}: ${result.failures[0]!.message}); rerun to retry only those`);
    }
    writeFileSync(join(dir, 'samples.json'), JSON.stringify(result.samples));
    return { questions: train.length, samples: result.samples.length, requests: result.stats.requests, cacheHits: result.stats.cacheHits, retries: result.stats.retries, costUsd: result.stats.costUsd ?? null };
  } finally {
    cache.close();
    await server?.close();
  }
}

export interface FilteredRationale {
  questionId: string;
  question: string;
  answer: string;
  rationale: string;
}

/** Keeps the correct samples; returns the kept ones and the questions with none. */
export function filterSamples(samples: readonly TeacherSample[]): { kept: FilteredRationale[]; questionsWithoutCorrect: string[] } {
  const byQuestion = new Map<string, boolean>();
  const kept: FilteredRationale[] = [];
  for (const s of samples) {
    byQuestion.set(s.questionId, (byQuestion.get(s.questionId) ?? false) || s.correct);
    if (s.correct) kept.push({ questionId: s.questionId, question: s.question, answer: s.gold, rationale: s.rationale.trim() });
  }
  return { kept, questionsWithoutCorrect: [...byQuestion].filter(([, ok]) => !ok).map(([id]) => id) };
}
