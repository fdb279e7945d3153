/**
 * Stage `report` (rank 0's): the Markdown/HTML report (lib/report/) — per model accuracy beside the
 * chance line and the faithfulness of its rationales, size, steps, tokens, time and final path, a
 * sample of rationales; the teacher's tokens and cost; loss and dev-accuracy charts; stage timings;
 * the configuration — and `results.json` with each model's faithfulness. Not cached: it is cheap and
 * reflects every stage's latest manifest, so `mentor-kd report` rebuilds it from a finished run.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chanceLine } from '../../report/chance.js';
import { devAccuracyChart, lossChart, type ChartSpec } from '../../report/charts.js';
import { writeReport, type ReportInput } from '../../report/document.js';
import { modelFacts, type ModelFacts, type ModelSource } from '../../report/model-facts.js';
import { teacherUsage } from '../../report/teacher-usage.js';
import type { PipelineResult } from '../pipeline.js';
import { describeEnvironment } from '../reproducibility.js';
import { writeJsonAtomic, type StageManifest } from '../run-dir.js';
import type { AugmentOutput } from './augment.js';
import type { StageContext } from './context.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import type { TrainMentorOutput } from './train-mentor.js';
import type { TrainStudentOutput } from './train-student.js';

export interface ReportStageInput {
  /** What the pipeline found, test accuracies filled in; `students` may list earlier commands' students too. */
  result: PipelineResult;
  /** The splits (for the chance line). */
  data?: DataOutput;
  filter: FilterOutput;
  mentor: TrainMentorOutput;
  augment: AugmentOutput;
  /** This invocation's student stages (used for students of `result` that do not name their stage). */
  students: readonly TrainStudentOutput[];
  /** Every stage run so far, in order. */
  stages: ReportInput['stages'];
}

export interface ReportSummary {
  markdown: string;
  html: string;
}

/** The evaluate stage's predictions of a training stage (stages/evaluate-<stage>/predictions.jsonl), if evaluated. */
function predictionsOf(stagesDir: string, stage: string): string | undefined {
  const f = join(stagesDir, `evaluate-${stage}`, 'predictions.jsonl');
  return existsSync(f) ? f : undefined;
}

type TrainingSummary = { examples: number; steps: number; devAccuracy: number | null; seconds?: number };

function sourceOf(stagesDir: string, label: string, stage: string, manifest: StageManifest<TrainingSummary>): ModelSource {
  const dir = join(stagesDir, stage);
  return {
    label,
    stage,
    stageDir: dir,
    modelDir: join(dir, 'model'),
    metricsFile: join(dir, 'train', 'metrics.jsonl'),
    predictionsFile: predictionsOf(stagesDir, stage),
    summary: manifest.summary,
    durationMs: manifest.durationMs,
  };
}

/** Mentor first, then every student of the result (its stage read from the run directory). */
function modelSources(ctx: StageContext, input: ReportStageInput): ModelSource[] {
  const stagesDir = join(ctx.config.output_dir, 'stages');
  const sources = [sourceOf(stagesDir, 'mentor', input.mentor.name, input.mentor.manifest)];
  for (const st of input.result.students) {
    const own = input.students.find((s) => (st.stage !== undefined ? s.name === st.stage : s.mode === st.mode));
    const stage = st.stage ?? own?.name;
    const manifest = own?.manifest ?? (stage !== undefined ? ctx.run.manifest<TrainingSummary>(stage) : undefined);
    if (stage !== undefined && manifest) sources.push(sourceOf(stagesDir, st.label ?? st.mode, stage, manifest));
  }
  return sources;
}

export function reportCharts(models: readonly ModelFacts[], chance: ReturnType<typeof chanceLine>): ChartSpec[] {
  const charts: ChartSpec[] = [];
  if (models.some((m) => m.loss.length))
    charts.push(lossChart(models.filter((m) => m.loss.length).map((m) => ({ model: m.label, steps: m.loss, withKd: m.withKd }))));
  if (models.some((m) => m.dev.length))
    charts.push(
      devAccuracyChart(
        models.filter((m) => m.dev.length).map((m) => ({ name: m.label, points: m.dev })),
        chance ?? undefined,
      ),
    );
  return charts;
}

export async function reportStage(ctx: StageContext, input: ReportStageInput): Promise<ReportSummary> {
  const c = ctx.config;
  const { result } = input;
  const f = input.filter.manifest.summary;
  const a = input.augment.manifest.summary;
  const models = modelSources(ctx, input).map((m) => modelFacts(c.task, m));
  const chance = input.data ? chanceLine(c.task, input.data.splits.train, input.data.splits.test) : null;
  const teacher = teacherUsage(join(c.output_dir, 'stages', 'collect', 'teacher.cache.jsonl'), c.teacher.model);
  const reportDir = join(c.output_dir, `report${ctx.fractionTag}`);
  mkdirSync(reportDir, { recursive: true });
  const report = await writeReport(reportDir, {
    title: `Mentor-KD run: ${c.task}`,
    subtitle: `run directory ${c.output_dir}; seed ${c.seed}; teacher data fraction ${c.student.teacherFraction}`,
    models,
    chance,
    teacher,
    stages: input.stages,
    notes: [
      `teacher: ${c.teacher.url ?? 'built-in simulated teacher'} (${c.teacher.model}), ${c.teacher.samples} rationales per question; kept ${f.kept}/${f.total}`,
      `mentor rationales: ${a.kept}/${a.samples} kept; mentor accuracy on its training questions ${(100 * a.mentorAccuracy).toFixed(1)}%`,
      `KD: λ=${c.student.lambda}, τ=${c.student.tau}, D=${describeObjective(c.student.objective)}${describeOnPolicy(c.student.onPolicy)}, soft labels ${c.student.softLabels}; teacher data fraction ${c.student.teacherFraction}; mentor rationales per question ${c.student.mentorSamples}`,
      ...result.students.filter((s) => s.settings).map((s) => `student ${s.settings}`),
      ...(result.environment
        ? [`environment: ${describeEnvironment(result.environment)} (results are bitwise repeatable under the same threads and BLAS)`]
        : []),
      'Tokens seen: source + target tokens of every optimizer step (padding excluded). Training time: the training stage’s wall time.',
    ],
    charts: reportCharts(models, chance),
    config: c,
  });
  ctx.log(`[report] ${report.html}`);
  // Faithfulness beside accuracy in the returned result and results.json.
  const byLabel = new Map(models.map((m) => [m.label, m.faithfulness]));
  result.mentor.faithfulness = byLabel.get('mentor') ?? null;
  for (const s of result.students) s.faithfulness = byLabel.get(s.label ?? s.mode) ?? null;
  writeJsonAtomic(join(c.output_dir, `results${ctx.fractionTag}.json`), { ...result, chance, teacher, report });
  return report;
}

/** `forward-kl`, `jsd(β=0.5)`, `skew-kl(α=0.1)`: the objective as the report and logs show it. */
export function describeObjective(o: { divergence: string; beta: number; alpha: number }): string {
  if (o.divergence === 'jsd') return `jsd(β=${o.beta})`;
  if (o.divergence.startsWith('skew')) return `${o.divergence}(α=${o.alpha})`;
  return o.divergence;
}

/** '' when off; `, on-policy 50% of rows (resampled every 1 step)`: the student's on-policy share as the report and sweep show it. */
export function describeOnPolicy(o: { fraction: number; refreshEvery: number }): string {
  if (!(o.fraction > 0)) return '';
  return `, on-policy ${Math.round(100 * o.fraction)}% of rows (resampled every ${o.refreshEvery} step${o.refreshEvery === 1 ? '' : 's'})`;
}
