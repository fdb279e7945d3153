/**
 * Stage `train-student`, one per mode: the student fine-tuned on the teacher's rationales, plus the
 * mentor's (augment-only, mentor-kd), with the mentor's soft labels as a KD term (kd-only,
 * mentor-kd) — online (the mentor runs in every step) or offline (a top-k cache the mentor writes
 * once, in the stage folder, read by every rank).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { StudentMode } from '../../config/schema.js';
import { T5Model } from '../../model/t5-model.js';
import { manualSeed } from '../../native/index.js';
import { onMain } from '../../parallel/sharded.js';
import { normalizeGold } from '../../tasks/cleansing.js';
import { tokenizeDataset, train, type Seq2SeqExample } from '../../train/index.js';
import { buildSoftLabelCache, SoftLabelCache } from '../../train/soft-labels.js';
import { budgetKey, resolveBudget, studentBudget, studentLabel, tokensSeen, type StudentBudget } from '../budget.js';
import { splitTarget } from '../generation.js';
import type { AugmentOutput } from './augment.js';
import { baselineData, isBaselineMode } from './baselines.js';
import { exampleUnits } from '../../train/example-groups.js';
import { outcome, percent, type StageContext, type StageOutcome } from './context.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import { devExamples, modelPlacement, publishModel, target, teacherExamples, trainArgs } from './shared.js';
import { initModel, loadPipelineModel, modelRecord, promptFormatFor, type ModelRecord } from '../model-family.js';
import type { TokenizerOutput } from './tokenizer.js';
import type { TrainMentorOutput } from './train-mentor.js';

export interface TrainStudentInput {
  mode: StudentMode;
  data: DataOutput;
  filter: FilterOutput;
  tokenizer: TokenizerOutput;
  mentor: TrainMentorOutput;
  augment: AugmentOutput;
}

export interface TrainStudentSummary {
  mode: StudentMode;
  examples: number;
  steps: number;
  /** Best dev accuracy over the checkpoints; null without a dev split. */
  devAccuracy: number | null;
  seconds: number;
  /** Source + target tokens trained on (the trainer's tokens_seen); absent in runs made before it was recorded. */
  tokens?: number;
  /** The mode and its budget as results and reports name it: `vanilla`, `vanilla (1720 steps)`. */
  label?: string;
  /** What test questions are prefixed with (step-by-step: `[label] `, answering without a rationale); absent: none. */
  questionPrefix?: string;
  /** What the training length was given in, and the settings it trained with (max_steps filled in for a tokens budget). */
  budget?: { kind: StudentBudget['kind']; description: string; targetTokens?: number; train: StudentBudget['train'] };
  /** A causal student's family and prompt format (chat template or plain Q/A); absent for T5. */
  model?: ModelRecord;
}

export interface TrainStudentOutput extends StageOutcome<TrainStudentSummary> {
  mode: StudentMode;
  /** The published HF model directory. */
  modelDir: string;
  /** The training run's metrics.jsonl. */
  metricsFile: string;
}

/** The mentor's kept rationales as training examples, `mentorSamples` per question at most. */
function mentorExamples(augment: AugmentOutput, mentorSamples: number, task: StageContext['config']['task']): Seq2SeqExample[] {
  return augment.keptRows
    .filter((r) => r.sample < mentorSamples)
    .map((r) => ({
      id: `${r.id}#m${r.sample}`,
      source: r.question,
      target: target(splitTarget(r.output).rationale, normalizeGold(r.answer, task)),
      answer: r.answer,
    }));
}

export async function trainStudentStage(ctx: StageContext, input: TrainStudentInput): Promise<TrainStudentOutput> {
  const c = ctx.config;
  const s = c.student;
  const { mode } = input;
  const tok = input.tokenizer.tokenizer;
  const withMentorData = mode === 'mentor-kd' || mode === 'augment-only';
  const withKd = mode === 'mentor-kd' || mode === 'kd-only';
  const budget = studentBudget(c, mode);
  // The paper's baselines (step-by-step, mcc-kd): their own data and loss (./baselines.ts).
  const baseline = isBaselineMode(mode) ? baselineData(mode, c, input.filter.kept, input.augment, input.data.splits.dev) : undefined;
  const name = `student-${mode}${ctx.fractionTag}${withMentorData ? `-m${s.mentorSamples}` : ''}${baseline?.tag ?? ''}${budget.tag}${withKd ? objectiveTag(s) : ''}`;
  const key = {
    tok: input.tokenizer.manifest.key,
    filter: input.filter.manifest.key,
    fraction: s.teacherFraction,
    mode,
    student: s.init,
    device: s.device,
    ...budgetKey(budget),
    seed: c.seed,
    evaluate: c.evaluate,
    ...(withMentorData ? { augment: input.augment.manifest.key, mentorSamples: s.mentorSamples } : {}),
    ...baseline?.key,
    ...(withKd
      ? {
          mentor: input.mentor.manifest.key,
          lambda: s.lambda,
          tau: s.tau,
          ...objectiveKey(s.objective),
          ...(s.onPolicy.fraction > 0 ? { onPolicy: onPolicyOptions(c) } : {}),
          softLabels: s.softLabels,
          topK: s.softLabels === 'offline' ? s.topK : undefined,
        }
      : {}),
  };
  const run = await ctx.run.stage(
    name,
    key,
    async (dir): Promise<TrainStudentSummary> => {
      const teacher = teacherExamples(input.filter.kept, c.task);
      const examples = baseline ? baseline.train : withMentorData ? [...teacher, ...mentorExamples(input.augment, s.mentorSamples, c.task)] : teacher;
      const settings = resolveBudget(
        budget,
        () => {
          const d = tokenizeDataset(examples, tok, {
            maxSourceLength: budget.train.maxSourceLength,
            maxTargetLength: budget.train.maxTargetLength,
            name: 'train',
          });
          // Per unit of a batch: a grouped mode's question brings all its rows (lib/train/example-groups.ts).
          return d.examples.reduce((n, e) => n + e.sourceIds.length + e.targetIds.length, 0) / exampleUnits(d.examples).length;
        },
        ctx.group?.worldSize ?? 1,
      );
      manualSeed(c.seed);
      const model = await initModel(s.init, tok, c.seed + 1, modelPlacement(ctx, 'student'));
      const mentor = withKd ? await loadPipelineModel(input.mentor.modelDir, modelPlacement(ctx, 'mentor')) : undefined;
      const promptFormat = promptFormatFor(model, tok);
      if (mentor && !(mentor instanceof T5Model) && s.softLabels === 'offline')
        throw new Error('student.softLabels: offline soft labels are not supported for causal models yet; use online');
      let softLabels: SoftLabelCache | undefined;
      if (mentor && s.softLabels === 'offline') {
        const cacheDir = join(dir, 'soft-labels');
        // Built once, by rank 0; every rank then reads it. The cache is renamed into place when complete: its folder existing means done.
        await onMain(
          ctx.group,
          async () => {
            // A build killed half-way left a temporary folder: the writer removes it (it owns the naming rule).
            if (existsSync(cacheDir)) return;
            const dataset = tokenizeDataset(examples, tok, {
              maxSourceLength: settings.maxSourceLength,
              maxTargetLength: settings.maxTargetLength,
              name: 'train',
            });
            await buildSoftLabelCache({ mentor: mentor as T5Model, dataset, dir: cacheDir, k: s.topK, tau: s.tau, padId: tok.padId });
          },
          'build the soft-label cache',
        );
        softLabels = await SoftLabelCache.open(cacheDir);
      }
      const r = await train({
        model,
        tokenizer: tok,
        train: examples,
        dev: baseline ? baseline.dev : devExamples(input.data.splits.dev),
        ...(await trainArgs(settings, ctx, join(dir, 'train'))),
        ...(withKd ? { kd: { lambda: s.lambda, tau: s.tau, ...s.objective } } : {}),
        ...(withKd && s.softLabels === 'online' ? { mentor } : {}),
        ...(withKd && s.onPolicy.fraction > 0 ? { onPolicy: onPolicyOptions(c) } : {}),
        ...(softLabels ? { softLabels } : {}),
        ...(promptFormat ? { promptFormat } : {}),
        ...baseline?.options,
      });
      await onMain(ctx.group, () => publishModel(r, dir, tok), `publish the ${mode} student`);
      const record = modelRecord(model, tok);
      model.dispose();
      mentor?.dispose();
      return {
        mode,
        examples: examples.length,
        steps: r.globalStep,
        devAccuracy: r.bestMetric,
        seconds: r.seconds,
        ...(await tokensSeen(r.lastCheckpoint)),
        label: studentLabel(mode, budget) + (baseline?.labelNote ?? ''),
        ...(record.family === 't5' ? {} : { model: { ...record, ...(r.promptFormat ? { promptFormat: r.promptFormat } : {}) } }),
        ...(baseline?.questionPrefix ? { questionPrefix: baseline.questionPrefix } : {}),
        budget: {
          kind: budget.kind,
          description: budget.description,
          ...(budget.targetTokens !== undefined ? { targetTokens: budget.targetTokens } : {}),
          train: settings,
        },
      };
    },
    { ranks: 'all' },
  );
  const sum = run.manifest.summary;
  const line = `${sum.label ?? mode} student on ${sum.examples} rationales, ${sum.steps} steps, dev accuracy ${percent(sum.devAccuracy)}`;
  return { ...outcome(name, run, line), mode, modelDir: join(run.dir, 'model'), metricsFile: join(run.dir, 'train', 'metrics.jsonl') };
}

/** The objective in a stage key: absent for the paper's forward KL, so the stages of such runs keep their keys. */
function objectiveKey(o: { divergence: string; beta: number; alpha: number }): Record<string, unknown> {
  if (o.divergence === 'forward-kl') return {};
  return {
    objective: {
      divergence: o.divergence,
      ...(o.divergence === 'jsd' ? { beta: o.beta } : {}),
      ...(o.divergence.startsWith('skew') ? { alpha: o.alpha } : {}),
    },
  };
}

/** train()'s onPolicy: the configured fraction and refresh, sampling with the mentor's augmentation settings. */
function onPolicyOptions(c: StageContext['config']): { fraction: number; refreshEvery: number; temperature: number; maxNewTokens: number } {
  return { ...c.student.onPolicy, temperature: c.augment.temperature, maxNewTokens: c.augment.maxNewTokens };
}

/**
 * The objective in a KD stage's name: '' for the paper's forward KL off-policy (names unchanged),
 * else e.g. `-jsd0.5`, `-reverse-kl`, `-op0.5`, so a sweep over objectives keeps one stage each.
 */
export function objectiveTag(s: StageContext['config']['student']): string {
  const o = s.objective;
  const d = o.divergence === 'forward-kl' ? '' : `-${o.divergence}${o.divergence === 'jsd' ? o.beta : o.divergence.startsWith('skew') ? o.alpha : ''}`;
  const p = s.onPolicy.fraction > 0 ? `-op${s.onPolicy.fraction}${s.onPolicy.refreshEvery !== 1 ? `r${s.onPolicy.refreshEvery}` : ''}` : '';
  return d + p;
}
