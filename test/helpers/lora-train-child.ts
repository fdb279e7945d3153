/**
 * A LoRA training run in its own process, for the kill-and-resume test: the base model is loaded
 * from settings.base (a LoRA run needs a base directory), adapters from train.lora, dropout on
 * in the model and on the adapters' input. Protocol: ./step-child.ts.
 */
import { setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { train } from '../../lib/train/index.js';
import { stepChildSettings, stepReporting, type StepChildSettings } from './step-child.js';
import { REVERSAL_RUN, reversalTask, toyTokenizer } from './train-fixtures.js';

interface LoraChildSettings extends StepChildSettings {
  base: string;
  max_steps: number;
  save_steps: number;
  activationCheckpointing?: 'none' | 'blocks';
}

const s = stepChildSettings<LoraChildSettings>();
setNumThreads(2);
const tokenizer = toyTokenizer();
const model = await T5Model.load(s.base);
await train({
  ...REVERSAL_RUN,
  model,
  tokenizer,
  train: reversalTask(40, 11),
  output_dir: s.output_dir,
  max_steps: s.max_steps,
  learning_rate: 5e-3,
  warmup_steps: 2,
  weight_decay: 0.01,
  save_steps: s.save_steps,
  save_total_limit: 5,
  activationCheckpointing: s.activationCheckpointing ?? 'none',
  lora: { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q', 'v', 'o', 'wi_0', 'wo'] },
  ...stepReporting(s),
});
process.stdout.write('DONE\n');
