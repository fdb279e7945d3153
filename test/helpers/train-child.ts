/**
 * A training run in its own process, for the kill-and-resume test (train-resume): a fresh tiny
 * T5 with dropout on, gradient accumulation, a cosine schedule. Protocol: ./step-child.ts.
 */
import { setNumThreads } from '../../lib/native/index.js';
import { train } from '../../lib/train/index.js';
import { stepChildSettings, stepReporting, type StepChildSettings } from './step-child.js';
import { REVERSAL_RUN, reversalTask, tinyModel, toyTokenizer } from './train-fixtures.js';

const s = stepChildSettings<StepChildSettings & { max_steps: number; save_steps: number }>();
setNumThreads(2);
const tokenizer = toyTokenizer();
const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32, dropout: 0.1, seed: 5 });
await train({
  ...REVERSAL_RUN,
  model,
  tokenizer,
  train: reversalTask(40, 11),
  output_dir: s.output_dir,
  max_steps: s.max_steps,
  learning_rate: 2e-3,
  warmup_steps: 3,
  weight_decay: 0.01,
  save_steps: s.save_steps,
  save_total_limit: 5,
  ...stepReporting(s),
});
process.stdout.write('DONE\n');
