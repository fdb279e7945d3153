/**
 * The run directory's results: every student trained in it (any invocation, any modes, any
 * budget), each with its settings and — once its evaluate stage has finished — its test accuracy.
 * Read from the stage manifests, so a student trained by an earlier command stays in results.json
 * and the report; written after each evaluation, so a run killed during a later student keeps the
 * test results of those before it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunConfig, StudentMode } from '../config/schema.js';
import type { PipelineResult, StudentResult } from './pipeline.js';
import { writeJsonAtomic, type RunDir, type StageManifest } from './run-dir.js';
import type { TrainStudentSummary } from './stages/train-student.js';

/** The student stage's key material (train-student.ts), as far as results need it. */
interface StudentInputs {
  fraction?: number;
  mentorSamples?: number;
  train?: Record<string, unknown>;
  lambda?: number;
  tau?: number;
  objective?: { divergence: string; beta?: number; alpha?: number };
  softLabels?: string;
  budget?: string;
  targetTokens?: number;
  /** The baselines' own settings (stages/baselines.ts). */
  stepByStep?: { rationale_weight: number };
  mccKd?: { consistency_weight: number; rationales_per_question: number };
}

/** The fraction of teacher data a student stage used: recorded in its inputs, else read from its name (`-f0.5`). */
function fractionOf(name: string, inputs: StudentInputs | undefined): number {
  if (inputs?.fraction !== undefined) return inputs.fraction;
  const m = /-f([0-9.]+)(?:-|$)/.exec(name);
  return m ? Number(m[1]) : 1;
}

/** The evaluation of a training stage, if it evaluated this very model (same key; before inputs were recorded: finished after it). */
export function evaluationOf(run: RunDir, stageName: string, trained: StageManifest<unknown>): StageManifest<{ accuracy: number }> | undefined {
  const ev = run.manifest<{ accuracy: number }>(`evaluate-${stageName}`);
  if (!ev) return undefined;
  const model = (ev.inputs as { model?: string } | undefined)?.model;
  if (model !== undefined) return model === trained.key ? ev : undefined;
  return ev.finishedAt >= trained.finishedAt ? ev : undefined;
}

/**
 * The settings a student differs by, in one line: `λ=0.3, τ=2, forward-kl, online soft labels, 2 mentor rationales, 800 steps`;
 * a baseline's own: `α=0.1 (consistency_weight), K=2 rationales per question` (mcc-kd), `rationale_weight 1` (step-by-step).
 */
function describeSettings(mode: StudentMode, inputs: StudentInputs | undefined, s: TrainStudentSummary): string {
  const parts: string[] = [];
  if (inputs?.lambda !== undefined) {
    parts.push(`λ=${inputs.lambda}`, `τ=${inputs.tau}`, inputs.objective?.divergence ?? 'forward-kl', `${inputs.softLabels} soft labels`);
  }
  if (inputs?.mentorSamples !== undefined) parts.push(`${inputs.mentorSamples} mentor rationales per question`);
  if (inputs?.stepByStep) parts.push(`rationale_weight ${inputs.stepByStep.rationale_weight}`);
  if (inputs?.mccKd)
    parts.push(`α=${inputs.mccKd.consistency_weight} (consistency_weight)`, `K=${inputs.mccKd.rationales_per_question} rationales per question`);
  const train = s.budget?.train ?? inputs?.train;
  if (train?.learning_rate !== undefined) parts.push(`learning_rate ${String(train.learning_rate)}`);
  parts.push(`${s.steps} steps${s.tokens !== undefined ? `, ${s.tokens} tokens` : ''}`);
  return `${mode}: ${parts.join(', ')}`;
}

/**
 * Every student stage of the run directory with the configuration's teacher-data fraction: the
 * configuration's own modes first (in its order), then the others by stage name.
 */
export function collectStudents(run: RunDir, c: RunConfig, current: readonly string[] = []): StudentResult[] {
  const stagesDir = join(run.root, 'stages');
  if (!existsSync(stagesDir)) return [];
  const out: (StudentResult & { stage: string })[] = [];
  for (const name of readdirSync(stagesDir).sort()) {
    if (!name.startsWith('student-')) continue;
    const m = run.manifest<TrainStudentSummary>(name);
    if (!m || m.summary.mode === undefined) continue;
    const inputs = m.inputs as StudentInputs | undefined;
    const fraction = fractionOf(name, inputs);
    if (fraction !== c.student.teacherFraction) continue;
    const s = m.summary;
    const ev = evaluationOf(run, name, m);
    let label = s.label ?? s.mode;
    if (inputs?.mentorSamples !== undefined && inputs.mentorSamples !== c.student.mentorSamples) label += ` [${inputs.mentorSamples} mentor rationales]`;
    out.push({
      mode: s.mode,
      label,
      stage: name,
      testAccuracy: ev ? ev.summary.accuracy : NaN,
      devAccuracy: s.devAccuracy,
      trainExamples: s.examples,
      steps: s.steps,
      ...(s.tokens !== undefined ? { tokens: s.tokens } : {}),
      teacherFraction: fraction,
      ...(inputs?.mentorSamples !== undefined ? { mentorSamples: inputs.mentorSamples } : {}),
      budget: s.budget?.description ?? '',
      settings: describeSettings(s.mode, inputs, s),
      current: current.includes(name),
    });
  }
  const rank = (stage: string) => {
    const i = current.indexOf(stage);
    return i < 0 ? current.length : i;
  };
  return out.sort((a, b) => rank(a.stage) - rank(b.stage) || a.stage.localeCompare(b.stage));
}

/** `results.json` (`results-f<fraction>.json` for a teacher-data fraction): written as results come in; the report stage rewrites it with the report's paths. */
export function writeResults(c: RunConfig, fractionTag: string, result: PipelineResult): void {
  writeJsonAtomic(join(c.output_dir, `results${fractionTag}.json`), result);
}
