/**
 * Stage `report` (rank 0's): the Markdown/HTML report — results table, stage timings, notes, loss
 * and dev-accuracy curves, the configuration — and `results.json`. Not cached: it is cheap and
 * reflects every stage's latest manifest.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PipelineResult } from '../pipeline.js';
import { writeReport, type Chart, type ReportInput } from '../report.js';
import { writeJsonAtomic } from '../run-dir.js';
import type { AugmentOutput } from './augment.js';
import type { StageContext } from './context.js';
import type { FilterOutput } from './filter.js';
import type { TrainMentorOutput } from './train-mentor.js';
import type { TrainStudentOutput } from './train-student.js';

export interface ReportStageInput {
  /** What the pipeline found, test accuracies filled in. */
  result: PipelineResult;
  filter: FilterOutput;
  mentor: TrainMentorOutput;
  augment: AugmentOutput;
  students: readonly TrainStudentOutput[];
  /** Every stage run so far, in order. */
  stages: ReportInput['stages'];
}

export interface ReportSummary {
  markdown: string;
  html: string;
}

/** One metrics.jsonl row; a torn or foreign line (a kill mid-write) is no row rather than a SyntaxError. */
function parseRow(line: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The training loss per step from a metrics.jsonl (resumed runs may repeat steps: the last value of each). */
export function lossCurve(metricsFile: string): [number, number][] {
  if (!existsSync(metricsFile)) return [];
  const pts: [number, number][] = [];
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = parseRow(line) as { step?: number; loss?: number; event?: string };
    if (e.event === undefined && typeof e.step === 'number' && typeof e.loss === 'number') pts.push([e.step, e.loss]);
  }
  return [...new Map(pts).entries()].sort((a, b) => a[0] - b[0]);
}

/** Dev accuracy per evaluated step from a metrics.jsonl. */
export function devCurve(metricsFile: string): [number, number][] {
  if (!existsSync(metricsFile)) return [];
  const pts = new Map<number, number>();
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = parseRow(line) as { step?: number; eval_accuracy?: number };
    if (typeof e.step === 'number' && typeof e.eval_accuracy === 'number') pts.set(e.step, e.eval_accuracy);
  }
  return [...pts.entries()].sort((a, b) => a[0] - b[0]);
}

export function reportStage(ctx: StageContext, input: ReportStageInput): ReportSummary {
  const c = ctx.config;
  const { result, students } = input;
  const f = input.filter.manifest.summary;
  const a = input.augment.manifest.summary;
  const mentorMetrics = join(input.mentor.dir, 'train', 'metrics.jsonl');
  const curves = (title: string, yLabel: string, curve: (file: string) => [number, number][]): Chart => ({
    title,
    xLabel: 'step',
    yLabel,
    series: [{ name: 'mentor', points: curve(mentorMetrics) }, ...students.map((st) => ({ name: st.mode, points: curve(st.metricsFile) }))],
  });
  const reportDir = join(c.output_dir, `report${ctx.fractionTag}`);
  mkdirSync(reportDir, { recursive: true });
  const report = writeReport(reportDir, {
    title: `Mentor-KD run: ${c.task}`,
    results: {
      columns: [c.task],
      rows: [
        { label: 'mentor', values: [result.mentor.testAccuracy ?? undefined] },
        ...result.students.map((st) => ({ label: st.mode, values: [st.testAccuracy] })),
      ],
    },
    stages: input.stages,
    notes: [
      `teacher: ${c.teacher.url ?? 'built-in simulated teacher'} (${c.teacher.model}), ${c.teacher.samples} rationales per question; kept ${f.kept}/${f.total}`,
      `mentor rationales: ${a.kept}/${a.samples} kept; mentor accuracy on its training questions ${(100 * a.mentorAccuracy).toFixed(1)}%`,
      `KD: λ=${c.student.lambda}, τ=${c.student.tau}, D=${describeObjective(c.student.objective)}, soft labels ${c.student.softLabels}; teacher data fraction ${c.student.teacherFraction}; mentor rationales per question ${c.student.mentorSamples}`,
    ],
    charts: [curves('Training loss', 'loss', lossCurve), curves('Dev accuracy', 'accuracy', devCurve)],
    config: c,
  });
  ctx.log(`[report] ${report.html}`);
  writeJsonAtomic(join(c.output_dir, `results${ctx.fractionTag}.json`), { ...result, report });
  return report;
}

/** `forward-kl`, `jsd(β=0.5)`, `skew-kl(α=0.1)`: the objective as the report and logs show it. */
export function describeObjective(o: { divergence: string; beta: number; alpha: number }): string {
  if (o.divergence === 'jsd') return `jsd(β=${o.beta})`;
  if (o.divergence.startsWith('skew')) return `${o.divergence}(α=${o.alpha})`;
  return o.divergence;
}
