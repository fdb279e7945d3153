/** Stage `evaluate`, one per model: greedy decoding on the test split, per-example outputs saved to `predictions.jsonl`. */
import { basename, join } from 'node:path';
import { accuracy, generateOver } from '../generation.js';
import { loadPipelineModel, modelRecord, promptFormatFor, type ModelRecord } from '../model-family.js';
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
  /** The model's family and, for a causal model, its prompt format (absent in runs made before causal models). */
  model?: ModelRecord;
}

export interface EvaluateOutput extends StageOutcome<EvaluateSummary> {
  label: string;
}

export async function evaluateStage(ctx: StageContext, input: EvaluateInput): Promise<EvaluateOutput> {
  const c = ctx.config;
  const name = `evaluate-${basename(input.model.dir)}`;
  // A student trained with task prefixes (step-by-step) is tested on its answer task: `[label] {question}`.
  const prefix = (input.model.manifest.summary as { questionPrefix?: string } | undefined)?.questionPrefix ?? '';
  const run = await ctx.run.stage(
    name,
    { model: input.model.manifest.key, data: input.data.manifest.key, evaluate: c.evaluate },
    async (dir): Promise<EvaluateSummary> => {
      const model = await loadPipelineModel(join(input.model.dir, 'model'), modelPlacement(ctx, input.label === 'mentor' ? 'mentor' : 'student'));
      const record = modelRecord(model, input.tokenizer.tokenizer);
      const rows = await generateOver(
        model,
        input.tokenizer.tokenizer,
        input.data.splits.test.map((r) => ({ id: r.id, question: prefix + r.question, answer: r.answer })),
        {
          task: c.task,
          batchSize: c.evaluate.batchSize,
          maxNewTokens: c.evaluate.maxNewTokens,
          maxSourceLength: c.student.train.maxSourceLength,
          seed: c.seed,
          outFile: join(dir, 'predictions.jsonl'),
          label: `test ${input.label}`,
          group: ctx.group,
          promptFormat: promptFormatFor(model, input.tokenizer.tokenizer),
        },
      );
      model.dispose();
      return {
        accuracy: accuracy(rows),
        correct: rows.filter((r) => r.correct).length,
        total: rows.length,
        ...(record.family === 't5' ? {} : { model: record }),
      };
    },
    { ranks: 'all' },
  );
  const s = run.manifest.summary;
  return { ...outcome(name, run, `${input.label}: test accuracy ${percent(s.accuracy)} (${s.correct}/${s.total})`), label: input.label };
}
