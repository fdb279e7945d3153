/**
 * A mixed on-policy training run in its own process, for test/train-on-policy.test.ts's
 * SIGKILL-and-resume check: the test's in-process run (ON_POLICY_RUN) with on-policy rows and a
 * checkpoint every 3 steps. Protocol: ./step-child.ts.
 */
import { T5Model } from '../../lib/model/t5-model.js';
import { setNumThreads } from '../../lib/native/index.js';
import { train } from '../../lib/train/index.js';
import { stepChildSettings, stepReporting } from './step-child.js';
import { ON_POLICY_RUN, reversalTask, tinyConfig, tinyModel, toyTokenizer } from './train-fixtures.js';

const s = stepChildSettings();
setNumThreads(2);
const tokenizer = toyTokenizer();
const mentor = await T5Model.fromConfig(tinyConfig({ vocabSize: tokenizer.vocabSize, dropout: 0 }), { seed: 9 });
const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32, dropout: 0.1, seed: 5 });
await train({
  ...ON_POLICY_RUN,
  model,
  tokenizer,
  train: reversalTask(40, 11),
  mentor,
  output_dir: s.output_dir,
  save_steps: 3,
  onPolicy: { fraction: 0.5, refreshEvery: 2, maxNewTokens: 12 },
  ...stepReporting(s),
});
process.stdout.write('DONE\n');
