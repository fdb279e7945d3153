/**
 * The Mentor-KD pipeline: data → collect → filter → tokenizer → train-mentor → augment →
 * train-student (per mode) → evaluate → report, one stage per file in stages/. Every stage writes
 * into the run directory (output_dir) and is skipped on rerun when its inputs are unchanged; a
 * killed stage resumes from its own checkpoints.
 *
 * Under `mentor-kd launch` (a process group) the same pipeline runs data-parallel: rank 0 alone
 * makes the data, calls the teacher, builds the tokenizer and writes the report while the others
 * wait; training is DDP (lib/parallel) and generation (augment, evaluate) is sharded by batch, with the
 * same outputs for any number of ranks. Only rank 0 writes into the run directory.
 */
import { join } from 'node:path';
import type { RunConfig, StudentMode } from '../config/schema.js';
import { setNumThreads } from '../native/index.js';
import type { ProcessGroup } from '../parallel/process-group.js';
import { checkSharedDirectory } from '../parallel/shared-fs.js';
import type { ReportInput } from './report.js';
import { environmentWarning, readEnvironment, runEnvironment, type RunEnvironment } from './reproducibility.js';
import { collectStudents, writeResults } from './results.js';
import { RunDir, writeJsonAtomic } from './run-dir.js';
import { RunLock } from './run-lock.js';
import { progressLabel } from '../train/progress.js';
import { localizeHubIds } from './stages/shared.js';
import { augmentStage } from './stages/augment.js';
import { collectStage } from './stages/collect.js';
import type { StageContext, StageOutcome } from './stages/context.js';
import { dataStage } from './stages/data.js';
import { evaluateStage } from './stages/evaluate.js';
import { filterStage } from './stages/filter.js';
import { reportStage } from './stages/report.js';
import { tokenizerStage } from './stages/tokenizer.js';
import { checkKdVocabulary, checkKdVocabularyWith, describeModels, runTokenizerInfo, type ModelRecord } from './model-family.js';
import { trainMentorStage } from './stages/train-mentor.js';
import { trainStudentStage, type TrainStudentOutput } from './stages/train-student.js';

export interface PipelineOptions {
  /** One line per stage start/end; default console.log. */
  log?: (line: string) => void;
  /** Stop after this stage (for running stages one at a time). */
  until?: StageName;
  /**
   * Run data-parallel over this process group (every rank calls runPipeline with the same config).
   * Training stages use DDP, generation stages shard batches; rank 0 writes every file.
   */
  group?: ProcessGroup;
  /**
   * Reuse finished stages only, never run one (`mentor-kd report`): the first stage that is not
   * finished for this configuration throws StageNotFinishedError (lib/pipeline/run-dir.ts), and the
   * run directory is left as it was apart from the report and results files.
   */
  readOnly?: boolean;
}

export const STAGES = ['data', 'collect', 'filter', 'tokenizer', 'train-mentor', 'augment', 'train-student', 'evaluate', 'report'] as const;
export type StageName = (typeof STAGES)[number];

export interface StudentResult {
  mode: StudentMode;
  testAccuracy: number;
  devAccuracy: number | null;
  trainExamples: number;
  steps: number;
  /** The mode and, when not the shared one, its budget: `vanilla (1720 steps)` (lib/pipeline/results.ts). */
  label?: string;
  /** Its stage folder under stages/. */
  stage?: string;
  /** Source + target tokens trained on. */
  tokens?: number;
  teacherFraction?: number;
  /** Mentor rationales per question (augmenting modes). */
  mentorSamples?: number;
  /** '' for the shared training length, else `1720 steps`, `40 epochs`, `200000 tokens`. */
  budget?: string;
  /** The settings it was trained with, in one line. */
  settings?: string;
  /** True for the students of this invocation's configuration (the others were trained in the run directory before). */
  current?: boolean;
  /** How faithful its test rationales are to their questions (lib/eval/faithfulness.ts); filled in by the report stage. */
  faithfulness?: import('../eval/faithfulness.js').FaithfulnessSummary | null;
}

export interface PipelineResult {
  output_dir: string;
  task: string;
  mentor: { devAccuracy: number | null; testAccuracy: number | null; faithfulness?: import('../eval/faithfulness.js').FaithfulnessSummary | null };
  students: StudentResult[];
  report?: { markdown: string; html: string };
  /** Threads, CPU, libtorch and BLAS of this invocation (lib/pipeline/reproducibility.ts). */
  environment?: RunEnvironment;
  /** Each model's family (t5 or causal, its model_type) and, for a causal one, its prompt format (chat template or plain Q/A). */
  models?: { mentor?: ModelRecord; student?: ModelRecord };
}

export async function runPipeline(c: RunConfig, options: PipelineOptions = {}): Promise<PipelineResult> {
  const group = options.group && options.group.worldSize > 1 ? options.group : undefined;
  const isMain = !group || group.isMain;
  const log = isMain ? (options.log ?? ((line: string) => console.log(line))) : () => undefined;
  if (c.threads > 0) setNumThreads(c.threads, { setting: 'config threads' });
  // One writer per run directory (rank 0 under a group): a second process is refused, naming the holder.
  const lock = isMain ? RunLock.acquire(c.output_dir, { log }) : undefined;
  try {
    // Hub ids become their local snapshot folders (downloaded once, into HF's cache) before any stage.
    const local = options.readOnly ? c : await localizeHubIds(c, group, log);
    return await runLocked(local, options, group, isMain, log);
  } finally {
    lock?.release();
  }
}

async function runLocked(
  c: RunConfig,
  options: PipelineOptions,
  group: ProcessGroup | undefined,
  isMain: boolean,
  log: (line: string) => void,
): Promise<PipelineResult> {
  const environment = runEnvironment();
  const run = new RunDir(c.output_dir, group, options.readOnly, environment);
  if (!options.readOnly) {
    await checkSharedDirectory(group, c.output_dir, 'run directory');
    if (isMain) writeJsonAtomic(join(c.output_dir, 'config.json'), c);
    // Stages reused from an invocation under other threads / CPU / BLAS may not match what this one would compute.
    const envFile = join(c.output_dir, 'environment.json');
    const warning = environmentWarning(readEnvironment(envFile), environment);
    if (warning) log(warning);
    if (isMain) writeJsonAtomic(envFile, environment);
  }
  const ctx: StageContext = { config: c, run, group, isMain, log, fractionTag: c.student.teacherFraction === 1 ? '' : `-f${c.student.teacherFraction}` };
  const result: PipelineResult = { output_dir: c.output_dir, task: c.task, mentor: { devAccuracy: null, testAccuracy: null }, students: [], environment };
  const stageLog: ReportInput['stages'] = [];
  /** Logs a stage and tells whether the run stops after it. */
  const done = (stage: StageName, s: StageOutcome<unknown>) => {
    const seconds = s.manifest.durationMs / 1000;
    stageLog.push({ name: s.name, seconds, skipped: s.skipped, summary: s.line });
    log(`[${s.name}] ${s.skipped ? '(reused) ' : ''}${s.line}${s.skipped ? '' : ` — ${seconds.toFixed(1)} s`}`);
    return options.until === stage;
  };

  // Model families (HF Auto-style) and the one-vocabulary rule of KD, before any work.
  // (`mentor-kd report` reads Hub ids unresolved: its stages are only looked up, with what can be described.)
  const models = options.readOnly ? await describeModels(c).catch(() => undefined) : await describeModels(c);
  if (models && !options.readOnly) await checkKdVocabulary(c, models, await runTokenizerInfo(c, models));
  const data = await dataStage(ctx, { task: c.task, seed: c.seed, data: c.data });
  if (done('data', data)) return result;
  const collect = await collectStage(ctx, { data });
  if (done('collect', collect)) return result;
  const filter = await filterStage(ctx, { collect });
  if (done('filter', filter)) return result;
  const tokenizer = await tokenizerStage(ctx, { data, filter, ...(models ? { models } : {}) });
  if (models && !options.readOnly) await checkKdVocabularyWith(c, models, tokenizer.tokenizer, tokenizer.dir);
  if (done('tokenizer', tokenizer)) return result;
  const mentor = await progressLabel.run('mentor', () => trainMentorStage(ctx, { data, filter, tokenizer }));
  result.mentor.devAccuracy = mentor.manifest.summary.devAccuracy;
  if (models) result.models = { mentor: mentor.manifest.summary.model ?? { family: models.mentor.family, modelType: models.mentor.modelType } };
  if (done('train-mentor', mentor)) return result;
  const augment = await augmentStage(ctx, { data, filter, tokenizer, mentor });
  if (done('augment', augment)) return result;
  // Each model is evaluated as soon as it is trained and results.json rewritten, so a run killed
  // during a later student keeps the test results of the earlier ones; results list every student
  // of the run directory (earlier commands' too), read back from the stage manifests.
  const evaluateNow = options.until !== 'train-student';
  const refresh = (current: readonly string[]) => {
    result.students = collectStudents(run, c, current);
    if (isMain && !options.readOnly) writeResults(c, ctx.fractionTag, result);
  };
  if (evaluateNow) {
    const evaluation = await evaluateStage(ctx, { label: 'mentor', model: mentor, data, tokenizer });
    done('evaluate', evaluation);
    result.mentor.testAccuracy = evaluation.manifest.summary.accuracy;
  }
  const students: TrainStudentOutput[] = [];
  for (const mode of c.student.modes) {
    const student = await progressLabel.run(`student ${mode}`, () => trainStudentStage(ctx, { mode, data, filter, tokenizer, mentor, augment }));
    done('train-student', student);
    students.push(student);
    if (models)
      result.models = { ...result.models, student: student.manifest.summary.model ?? { family: models.student.family, modelType: models.student.modelType } };
    if (evaluateNow) done('evaluate', await evaluateStage(ctx, { label: student.manifest.summary.label ?? mode, model: student, data, tokenizer }));
    refresh(students.map((s) => s.name));
  }
  if (options.until === 'train-student') return result;
  if (options.until === 'evaluate' || !isMain) return result; // the report is rank 0's
  result.report = await reportStage(ctx, { result, data, filter, mentor, augment, students, stages: stageLog });
  return result;
}
