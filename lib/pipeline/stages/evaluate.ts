/** Stage `evaluate`, one per model: greedy decoding on the test split, per-example outputs saved to `predictions.jsonl`. */
import { basename, join } from 'node:path';
import { T5Model } from '../../model/t5-model.js';
import { accuracy, generateOver } from '../generation.js';
import { outcome, percent, type StageContext, type StageOutcome } from './context.js';
import { modelPlacement } from './shared.js';
import type { DataOutput } from './data.js';
import type { TokenizerOutput } from './tokenizer.js';

export interface EvaluateInput {
  /** 'mentor' or the student's mode. */
  label: string;
  /** The training stage whose published model (`<dir>/model`) is evaluated. */
  model: StageOutcome<unknown>;
  data: DataOutput;
  tokenizer: TokenizerOutput;
}

export interface EvaluateSummary {
  accuracy: number;
  correct: number;
  total: number;
}

export interface EvaluateOutput extends StageOutcome<EvaluateSummary> {
  label: string;
}

export async function evaluateStage(ctx: StageContext, input: EvaluateInput): Promise<EvaluateOutput> {
  const c = ctx.config;
  const name = `evaluate-${basename(input.model.dir)}`;
  const run = await ctx.run.stage(
    name,
    { model: input.model.manifest.key, data: input.data.manifest.key, evaluate: c.evaluate },
    async (dir): Promise<EvaluateSummary> => {
      const model = await T5Model.load(join(input.model.dir, 'model'), modelPlacement(ctx, input.label === 'mentor' ? 'mentor' : 'student'));
      const rows = await generateOver(
        model,
        input.tokenizer.tokenizer,
        input.data.splits.test.map((r) => ({ id: r.id, question: r.question, answer: r.answer })),
        {
          task: c.task,
          batchSize: c.evaluate.batchSize,
          maxNewTokens: c.evaluate.maxNewTokens,
          maxSourceLength: c.student.train.maxSourceLength,
          seed: c.seed,
          outFile: join(dir, 'predictions.jsonl'),
          label: `test ${input.label}`,
          group: ctx.group,
        },
      );
      model.dispose();
      return { accuracy: accuracy(rows), correct: rows.filter((r) => r.correct).length, total: rows.length };
    },
    { ranks: 'all' },
  );
  const s = run.manifest.summary;
  return { ...outcome(name, run, `${input.label}: test accuracy ${percent(s.accuracy)} (${s.correct}/${s.total})`), label: input.label };
}
