/** Stage `train-mentor`: the mentor fine-tuned on the kept teacher rationales; its best checkpoint is published to `<dir>/model`. */
import { join } from 'node:path';
import { manualSeed } from '../../native/index.js';
import { onMain } from '../../parallel/sharded.js';
import { train } from '../../train/index.js';
import { outcome, percent, type StageContext, type StageOutcome } from './context.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import { devExamples, modelPlacement, publishModel, teacherExamples, trainArgs } from './shared.js';
import { initModel, modelRecord, promptFormatFor, type ModelRecord } from '../model-family.js';
import type { TokenizerOutput } from './tokenizer.js';

export interface TrainMentorInput {
  data: DataOutput;
  filter: FilterOutput;
  tokenizer: TokenizerOutput;
}

export interface TrainMentorSummary {
  examples: number;
  steps: number;
  /** Best dev accuracy over the checkpoints; null without a dev split. */
  devAccuracy: number | null;
  seconds: number;
  /** A causal mentor's family and prompt format (chat template or plain Q/A); absent for T5. */
  model?: ModelRecord;
}

export interface TrainMentorOutput extends StageOutcome<TrainMentorSummary> {
  /** The published HF model directory. */
  modelDir: string;
}

export async function trainMentorStage(ctx: StageContext, input: TrainMentorInput): Promise<TrainMentorOutput> {
  const c = ctx.config;
  const name = `train-mentor${ctx.fractionTag}`;
  const tok = input.tokenizer.tokenizer;
  const key = {
    tok: input.tokenizer.manifest.key,
    filter: input.filter.manifest.key,
    fraction: c.student.teacherFraction,
    mentor: c.mentor,
    seed: c.seed,
    evaluate: c.evaluate,
  };
  const run = await ctx.run.stage(
    name,
    key,
    async (dir): Promise<TrainMentorSummary> => {
      manualSeed(c.seed);
      const model = await initModel(c.mentor.init, tok, c.seed, modelPlacement(ctx, 'mentor'));
      const examples = teacherExamples(input.filter.kept, c.task);
      // A causal mentor's prompts: the run tokenizer's chat template, else plain Q/A (lib/pipeline/model-family.ts).
      const promptFormat = promptFormatFor(model, tok);
      // A stage killed half-way continues from its last checkpoint.
      const r = await train({
        model,
        tokenizer: tok,
        train: examples,
        dev: devExamples(input.data.splits.dev),
        ...(await trainArgs(c.mentor.train, ctx, join(dir, 'train'))),
        ...(promptFormat ? { promptFormat } : {}),
      });
      await onMain(ctx.group, () => publishModel(r, dir, tok), 'publish the mentor');
      const record = modelRecord(model, tok);
      model.dispose();
      return {
        examples: examples.length,
        steps: r.globalStep,
        devAccuracy: r.bestMetric,
        seconds: r.seconds,
        ...(record.family === 't5' ? {} : { model: { ...record, ...(r.promptFormat ? { promptFormat: r.promptFormat } : {}) } }),
      };
    },
    { ranks: 'all' },
  );
  const s = run.manifest.summary;
  const line = `mentor trained on ${s.examples} teacher rationales, ${s.steps} steps, dev accuracy ${percent(s.devAccuracy)}`;
  return { ...outcome(name, run, line), modelDir: join(run.dir, 'model') };
}
