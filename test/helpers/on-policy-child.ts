/**
 * A mixed on-policy training run in its own process, for test/train-on-policy.test.ts's
 * SIGKILL-and-resume check. Settings come as JSON in ON_POLICY_CHILD; every step prints
 * "STEP <n> <loss>". With slowAfter, each step past that one waits, so the parent's SIGKILL lands mid-run.
 */
import { T5Model } from '../../lib/model/t5-model.js';
import { setNumThreads } from '../../lib/native/index.js';
import { train } from '../../lib/train/index.js';
import { reversalTask, tinyConfig, tinyModel, toyTokenizer } from './train-fixtures.js';

interface ChildSettings {
  output_dir: string;
  resume_from_checkpoint?: boolean;
  slowAfter?: number;
}

const s = JSON.parse(process.env.ON_POLICY_CHILD ?? '{}') as ChildSettings;
setNumThreads(2);
const tokenizer = toyTokenizer();
const mentor = await T5Model.fromConfig(tinyConfig({ vocabSize: tokenizer.vocabSize, dropout: 0 }), { seed: 9 });
const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32, dropout: 0.1, seed: 5 });
await train({
  model,
  tokenizer,
  train: reversalTask(40, 11),
  mentor,
  output_dir: s.output_dir,
  max_steps: 8,
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 2,
  bucketBatches: 2,
  learning_rate: 3e-3,
  lr_scheduler_type: 'cosine',
  seed: 123,
  maxTargetLength: 16,
  save_steps: 3,
  kd: { lambda: 0.5, tau: 2 },
  onPolicy: { fraction: 0.5, refreshEvery: 2, maxNewTokens: 12 },
  resume_from_checkpoint: s.resume_from_checkpoint,
  progress: false,
  logger: () => {},
  onStep: async (log) => {
    process.stdout.write(`STEP ${log.step} ${JSON.stringify(log.loss)}\n`);
    if (s.slowAfter !== undefined && log.step > s.slowAfter) await new Promise((r) => setTimeout(r, 1000));
  },
});
process.stdout.write('DONE\n');
