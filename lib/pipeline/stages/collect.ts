/**
 * Stage `collect`: teacher rationales, n per training question. With no teacher URL configured,
 * the built-in simulated teacher is started on loopback for the stage's duration. Answers are
 * cached per request in the stage folder, so a rerun after a failure asks only for what is missing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompletionCache } from '../../teacher/cache.js';
import { TeacherClient } from '../../teacher/client.js';
import { collectRationales } from '../../teacher/collector.js';
import { createProgressBar } from '../../teacher/progress.js';
import { logIntervalSecondsFromEnv } from '../../runtime/env.js';
import { startTeacherServer } from '../../teacher/server/server.js';
import { outcome, type StageContext, type StageOutcome } from './context.js';
import type { DataOutput } from './data.js';

export interface CollectInput {
  data: DataOutput;
}

export interface CollectSummary {
  questions: number;
  samples: number;
  requests: number;
  cacheHits: number;
  retries: number;
  costUsd: number | null;
}

/** The samples are in `<dir>/samples.json` (TeacherSample[]). */
export type CollectOutput = StageOutcome<CollectSummary>;

export async function collectStage(ctx: StageContext, input: CollectInput): Promise<CollectOutput> {
  const c = ctx.config;
  const train = input.data.splits.train;
  // How long to wait and how much to accept are not part of the answers: changing them keeps the stage.
  const { timeoutMs, maxRetryAfterMs, deadlineMs, maxResponseBytes, ...teacherKey } = c.teacher;
  const key = { data: input.data.manifest.key, teacher: teacherKey, seed: c.seed };
  const run = await ctx.run.stage('collect', key, async (dir): Promise<CollectSummary> => {
    const server = c.teacher.url
      ? undefined
      : await startTeacherServer({ seed: c.seed, errorRate: c.teacher.embedded!.errorRate, latencyMs: c.teacher.embedded!.latencyMs });
    const url = c.teacher.url ?? server!.url;
    if (server) ctx.log(`collect: built-in simulated teacher at ${url} (error rate ${c.teacher.embedded!.errorRate})`);
    const cache = CompletionCache.open(join(dir, 'teacher.cache.jsonl'));
    // Off a terminal (nohup, Slurm) too: one line per MENTOR_KD_LOG_INTERVAL, so hours of teacher calls are not silent.
    const progress = createProgressBar(train.length * c.teacher.samples, { force: ctx.isMain, intervalMs: 1000 * logIntervalSecondsFromEnv() });
    let teacher: TeacherClient | undefined;
    try {
      teacher = new TeacherClient({ model: c.teacher.model, baseURL: url, api: c.teacher.api, apiKeyEnv: c.teacher.apiKeyEnv, timeoutMs, maxResponseBytes });
      const result = await collectRationales({
        task: c.task,
        questions: train.map((r) => ({ id: r.id, question: r.question, answer: r.answer })),
        teacher,
        samples: c.teacher.samples,
        seed: c.seed,
        concurrency: c.teacher.concurrency,
        cache,
        retry: { maxRetryAfterMs },
        ...(deadlineMs !== undefined ? { deadlineMs } : {}),
        onProgress: progress?.onProgress,
        onRetry: (e) => ctx.log(`collect: ${e.line}`),
      });
      progress?.stop();
      if (result.failures.length) {
        const f = result.failures[0]!;
        throw new Error(
          `collect: ${result.failures.length} samples failed after retries (first: ${f.questionId}#${f.sampleIndex}: ${f.message}); rerun to retry only those`,
        );
      }
      writeFileSync(join(dir, 'samples.json'), JSON.stringify(result.samples));
      return {
        questions: train.length,
        samples: result.samples.length,
        requests: result.stats.requests,
        cacheHits: result.stats.cacheHits,
        retries: result.stats.retries,
        costUsd: result.stats.costUsd ?? null,
      };
    } finally {
      teacher?.close();
      cache.close();
      await server?.close();
    }
  });
  const s = run.manifest.summary;
  return outcome(
    'collect',
    run,
    `${s.samples} rationales for ${s.questions} questions (${s.requests} requests, ${s.retries} retries, ${s.cacheHits} from cache)`,
  );
}
