/**
 * A worker running the training engine's loop (lib/train) data-parallel: `train({dist})` on a toy
 * task. Job from MKD_TEST_JOB; rank 0 writes the result to <out>/result.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessGroup } from '../../lib/parallel/process-group.js';
import { train } from '../../lib/train/trainer.js';
import { reversalTask, tinyModel, toyTokenizer } from './train-fixtures.js';

export interface TrainJob {
  out: string;
  steps: number;
  accumulation: number;
  saveEvery?: number;
  dropout?: number;
  /** outputDir per rank instead of `out` (different folders stand for a filesystem not shared between nodes). */
  outByRank?: string[];
  /** Continue from the latest checkpoint in `out`. */
  resume?: boolean;
}

export async function runTrainJob(job: TrainJob, group?: ProcessGroup): Promise<Awaited<ReturnType<typeof train>>> {
  const tokenizer = toyTokenizer();
  // Rank-dependent init: the parameter broadcast at the start is what makes the replicas equal.
  const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: job.dropout ?? 0, seed: 1 + (group?.rank ?? 0) });
  try {
    return await train({
      model,
      tokenizer,
      train: reversalTask(24, 3, 2, 7),
      dev: reversalTask(5, 9),
      output_dir: job.outByRank?.[group?.rank ?? 0] ?? job.out,
      max_steps: job.steps,
      per_device_train_batch_size: 3,
      gradient_accumulation_steps: job.accumulation,
      learning_rate: 1e-2,
      seed: 5,
      save_steps: job.saveEvery ?? 0,
      resume_from_checkpoint: job.resume ?? false,
      progress: false,
      eval: { maxNewTokens: 8 },
      logger: () => undefined,
      ...(group ? { parallel: { group, bucketBytes: 8192 } } : {}),
    });
  } finally {
    model.dispose();
  }
}

if (process.env.MKD_TEST_JOB) {
  (async () => {
    const job = JSON.parse(process.env.MKD_TEST_JOB!) as TrainJob;
    const group = await ProcessGroup.init({ timeoutMs: 20_000 });
    const r = await runTrainJob(job, group);
    if (group.isMain) writeFileSync(join(job.out, 'result.json'), JSON.stringify(r));
    await group.destroy();
  })().catch((err: unknown) => {
    process.stderr.write(`dist-train-worker rank ${process.env.RANK}: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
