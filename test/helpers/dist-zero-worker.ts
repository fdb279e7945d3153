/**
 * A worker for test/dist-zero.test.ts: `train({parallel, sharding})` on the toy reversal task
 * (as test/helpers/dist-train-worker.ts), plus a measurement of the optimizer state each rank
 * holds under each train.sharding. Job from MKD_TEST_JOB; rank 0 writes <out>/result.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sharding } from '../../lib/config/train-settings.js';
import { DataParallel } from '../../lib/parallel/data-parallel.js';
import { ProcessGroup } from '../../lib/parallel/process-group.js';
import { collate } from '../../lib/train/batches.js';
import { tokenizeDataset } from '../../lib/train/data.js';
import { TrainEngine } from '../../lib/train/engine.js';
import { train } from '../../lib/train/trainer.js';
import { reversalTask, tinyModel, toyTokenizer } from './train-fixtures.js';

export interface ZeroJob {
  out: string;
  steps: number;
  sharding: Sharding;
  accumulation?: number;
  saveEvery?: number;
  dropout?: number;
  resume?: boolean;
  /** Rank 1 dies (SIGKILL) right after this step, as a crashed node would. */
  dieAfterStep?: number;
  /** Instead of training: each rank's optimizer state bytes under none, zero1 and zero2 (<out>/bytes.json). */
  measure?: boolean;
}

async function runTrain(job: ZeroJob, group: ProcessGroup): Promise<void> {
  const tokenizer = toyTokenizer();
  const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: job.dropout ?? 0, seed: 1 + group.rank });
  try {
    const r = await train({
      model,
      tokenizer,
      train: reversalTask(48, 3, 2, 7),
      dev: reversalTask(5, 9),
      output_dir: job.out,
      max_steps: job.steps,
      per_device_train_batch_size: 3,
      gradient_accumulation_steps: job.accumulation ?? 1,
      learning_rate: 1e-2,
      weight_decay: 0.01,
      seed: 5,
      save_steps: job.saveEvery ?? 0,
      resume_from_checkpoint: job.resume ?? false,
      sharding: job.sharding,
      progress: false,
      eval: { maxNewTokens: 8 },
      logger: () => undefined,
      onStep: (s) => {
        if (s.step === job.dieAfterStep && group.rank === 1) process.kill(process.pid, 'SIGKILL');
      },
      // Small buckets: several reduces per step, and buckets that straddle the two ranks' slices.
      parallel: { group, bucketBytes: 8192 },
    });
    if (group.isMain) writeFileSync(join(job.out, 'result.json'), JSON.stringify(r));
  } finally {
    model.dispose();
  }
}

async function measure(job: ZeroJob, group: ProcessGroup): Promise<void> {
  const tokenizer = toyTokenizer();
  const data = tokenizeDataset(reversalTask(6, 3), tokenizer, { maxSourceLength: 32, maxTargetLength: 32, name: 'train' });
  const mine = data.examples.slice(3 * group.rank, 3 * group.rank + 3);
  const out: Record<string, { rank: number; optimizerStateBytes: number }[]> = {};
  for (const sharding of ['none', 'zero1', 'zero2'] as const) {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0, seed: 1 });
    const engine = await TrainEngine.create(model, { sharding, seed: 5 });
    try {
      engine.setDistributed(DataParallel.create(group, model, { bucketBytes: 8192 }));
      const r = await engine.step([collate(mine, tokenizer.padId)]);
      if (r.status !== 'ok') throw new Error(`${sharding}: step ${r.status}`);
      out[sharding] = await group.allgatherObject({ rank: group.rank, optimizerStateBytes: engine.info().optimizerStateBytes });
    } finally {
      engine.dispose();
      model.dispose();
    }
  }
  if (group.isMain) {
    mkdirSync(job.out, { recursive: true });
    writeFileSync(join(job.out, 'bytes.json'), JSON.stringify(out));
  }
}

if (process.env.MKD_TEST_JOB) {
  (async () => {
    const job = JSON.parse(process.env.MKD_TEST_JOB!) as ZeroJob;
    const group = await ProcessGroup.init({ timeoutMs: 30_000 });
    await (job.measure ? measure(job, group) : runTrain(job, group));
    await group.destroy();
  })().catch((err: unknown) => {
    process.stderr.write(`dist-zero-worker rank ${process.env.RANK}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
