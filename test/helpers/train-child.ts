/**
 * A training run in its own process, for the kill-and-resume test. Settings come as JSON in
 * TRAIN_CHILD; every step prints "STEP <n> <loss>" (JSON numbers round-trip exactly).
 * With slowAfter, each step past that one waits, so the parent's SIGKILL lands mid-run.
 */
import { setNumThreads } from '../../lib/native.js';
import { train } from '../../lib/train/index.js';
import { reversalTask, tinyModel, toyTokenizer } from './train-fixtures.js';

interface ChildSettings {
  outputDir: string;
  maxSteps: number;
  saveEvery: number;
  resume?: boolean;
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
  outputDir: s.outputDir,
  maxSteps: s.maxSteps,
  batchSize: 4,
  gradientAccumulation: 2,
  bucketBatches: 2,
  lr: 2e-3,
  schedule: 'cosine',
  warmupSteps: 3,
  weightDecay: 0.01,
  saveEvery: s.saveEvery,
  keepLast: 5,
  seed: 123,
  resume: s.resume,
  progress: false,
  logger: () => {},
  onStep: async (log) => {
    process.stdout.write(`STEP ${log.step} ${JSON.stringify(log.loss)}\n`);
    if (s.slowAfter !== undefined && log.step > s.slowAfter) await new Promise((r) => setTimeout(r, 1000));
  },
});
process.stdout.write('DONE\n');
