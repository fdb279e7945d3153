/**
 * A LoRA training run in its own process, for the kill-and-resume test: the base model is loaded
 * from LORA_CHILD.base (a LoRA run needs a base directory), adapters from train.lora, dropout on
 * in the model and on the adapters' input. Every step prints "STEP <n> <loss>"; with slowAfter,
 * each later step waits so the parent's SIGKILL lands mid-run.
 */
import { setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { train } from '../../lib/train/index.js';
import { reversalTask, toyTokenizer } from './train-fixtures.js';

interface ChildSettings {
  base: string;
  output_dir: string;
  max_steps: number;
  save_steps: number;
  resume_from_checkpoint?: boolean;
  slowAfter?: number;
  activationCheckpointing?: 'none' | 'blocks';
}

const s = JSON.parse(process.env.LORA_CHILD ?? '{}') as ChildSettings;
setNumThreads(2);
const tokenizer = toyTokenizer();
const model = await T5Model.load(s.base);
await train({
  model,
  tokenizer,
  train: reversalTask(40, 11),
  output_dir: s.output_dir,
  max_steps: s.max_steps,
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 2,
  bucketBatches: 2,
  learning_rate: 5e-3,
  lr_scheduler_type: 'cosine',
  warmup_steps: 2,
  weight_decay: 0.01,
  save_steps: s.save_steps,
  save_total_limit: 5,
  seed: 123,
  activationCheckpointing: s.activationCheckpointing ?? 'none',
  lora: { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q', 'v', 'o', 'wi_0', 'wo'] },
  resume_from_checkpoint: s.resume_from_checkpoint,
  progress: false,
  logger: () => {},
  onStep: async (log) => {
    process.stdout.write(`STEP ${log.step} ${JSON.stringify(log.loss)}\n`);
    if (s.slowAfter !== undefined && log.step > s.slowAfter) await new Promise((r) => setTimeout(r, 1000));
  },
});
process.stdout.write('DONE\n');
