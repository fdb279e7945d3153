/** Stage `augment`: the mentor writes rationales for every training question, filtered like the teacher's. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accuracy, generateOver, type GeneratedRow } from '../generation.js';
import { loadPipelineModel, modelRecord, promptFormatFor, type ModelRecord } from '../model-family.js';
import { outcome, percent, type StageContext, type StageOutcome } from './context.js';
import { modelPlacement } from './shared.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import type { TokenizerOutput } from './tokenizer.js';
import type { TrainMentorOutput } from './train-mentor.js';

export interface AugmentInput {
  data: DataOutput;
  filter: FilterOutput;
  tokenizer: TokenizerOutput;
  mentor: TrainMentorOutput;
}

export interface AugmentSummary {
  samples: number;
  kept: number;
  /** The mentor's accuracy on its training questions. */
  mentorAccuracy: number;
  questionsCovered: number;
  teacherFailedQuestions: number;
  /** Its accuracy on the questions the teacher got wrong; null when there were none. */
  mentorAccuracyOnTeacherFailed: number | null;
  /** The mentor's family and, for a causal mentor, its prompt format (absent in runs made before causal models). */
  model?: ModelRecord;
}

export interface AugmentOutput extends StageOutcome<AugmentSummary> {
  /** The mentor's correct rationales. */
  keptRows: GeneratedRow[];
}

export async function augmentStage(ctx: StageContext, input: AugmentInput): Promise<AugmentOutput> {
  const c = ctx.config;
  const name = `augment${ctx.fractionTag}`;
  const tok = input.tokenizer.tokenizer;
  const run = await ctx.run.stage(
    name,
    { mentor: input.mentor.manifest.key, augment: c.augment, seed: c.seed },
    async (dir): Promise<AugmentSummary> => {
      const mentor = await loadPipelineModel(input.mentor.modelDir, modelPlacement(ctx, 'mentor'));
      const model = modelRecord(mentor, tok);
      const rows = await generateOver(
        mentor,
        tok,
        input.data.splits.train.map((r) => ({ id: r.id, question: r.question, answer: r.answer })),
        {
          task: c.task,
          batchSize: c.augment.batchSize,
          maxNewTokens: c.augment.maxNewTokens,
          maxSourceLength: c.mentor.train.maxSourceLength,
          samples: c.augment.samples,
          temperature: c.augment.temperature,
          seed: c.seed,
          outFile: join(dir, 'generated.jsonl'),
          label: 'augment',
          modelName: 'mentor',
          group: ctx.group,
          promptFormat: promptFormatFor(mentor, tok),
        },
      );
      mentor.dispose();
      const keptRows = rows.filter((r) => r.correct);
      if (ctx.isMain) writeFileSync(join(dir, 'kept.json'), JSON.stringify(keptRows));
      const onFailed = rows.filter((r) => input.filter.teacherFailed.has(r.id));
      return {
        samples: rows.length,
        kept: keptRows.length,
        mentorAccuracy: accuracy(rows),
        questionsCovered: new Set(keptRows.map((r) => r.id)).size,
        teacherFailedQuestions: new Set(onFailed.map((r) => r.id)).size,
        mentorAccuracyOnTeacherFailed: onFailed.length ? accuracy(onFailed) : null,
        ...(model.family === 't5' ? {} : { model }),
      };
    },
    { ranks: 'all' },
  );
  const s = run.manifest.summary;
  const onFailed =
    s.mentorAccuracyOnTeacherFailed === null ? '' : `, ${percent(s.mentorAccuracyOnTeacherFailed)} on the ${s.teacherFailedQuestions} the teacher got wrong`;
  const line = `mentor kept ${s.kept}/${s.samples} of its rationales (accuracy ${percent(s.mentorAccuracy)} on its training questions${onFailed})`;
  return { ...outcome(name, run, line), keptRows: JSON.parse(readFileSync(join(run.dir, 'kept.json'), 'utf8')) as GeneratedRow[] };
}
