/**
 * A training run in its own process, for the kill-and-resume test. Settings come as JSON in
 * TRAIN_CHILD; every step prints "STEP <n> <loss>" (JSON numbers round-trip exactly).
 * With slowAfter, each step past that one waits, so the parent's SIGKILL lands mid-run.
 */
import { setNumThreads } from '../../lib/native/index.js';
import { train } from '../../lib/train/index.js';
import { reversalTask, tinyModel, toyTokenizer } from './train-fixtures.js';

interface ChildSettings {
  output_dir: string;
  max_steps: number;
  save_steps: number;
  resume_from_checkpoint?: boolean;
  slowAfter?: number;
}

const s = JSON.parse(process.env.TRAIN_CHILD ?? '{}') as ChildSettings;
setNumThreads(2);
const tokenizer = toyTokenizer();
const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32, dropout: 0.1, seed: 5 });
await train({
  model,
  tokenizer,
  train: reversalTask(40, 11),
  output_dir: s.output_dir,
  max_steps: s.max_steps,
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 2,
  bucketBatches: 2,
  learning_rate: 2e-3,
  lr_scheduler_type: 'cosine',
  warmup_steps: 3,
  weight_decay: 0.01,
  save_steps: s.save_steps,
  save_total_limit: 5,
  seed: 123,
  resume_from_checkpoint: s.resume_from_checkpoint,
  progress: false,
  logger: () => {},
  onStep: async (log) => {
    process.stdout.write(`STEP ${log.step} ${JSON.stringify(log.loss)}\n`);
    if (s.slowAfter !== undefined && log.step > s.slowAfter) await new Promise((r) => setTimeout(r, 1000));
  },
});
process.stdout.write('DONE\n');
