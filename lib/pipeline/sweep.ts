/**
 * The paper's experiment grid as one command: modes × fraction of teacher data × mentor rationales
 * per question × seeds. Each seed has its own run directory; within it, stages that a grid point
 * shares with another (data, teacher, tokenizer, mentor, augmentation) are computed once and reused.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunConfig, StudentMode } from '../config/schema.js';
import { KD_DIVERGENCES, type KdDivergence } from '../config/train-settings.js';
import { onMainShared } from '../parallel/sharded.js';
import { summarizeFaithfulness } from '../eval/faithfulness.js';
import { readPredictions } from '../report/model-facts.js';
import { isTaskName, TASK_NAMES, type TaskName } from '../tasks/registry.js';
import { runPipeline, type PipelineOptions, type PipelineResult, type StudentResult } from './pipeline.js';
import { methodName, sweepCharts, sweepTables, sweepTablesMarkdown } from './sweep-tables.js';
import { describeEnvironment, runEnvironment } from './reproducibility.js';
import { formatDifference, meanStd } from './statistics.js';
import { writeReport, type Chart } from './report.js';
import { describeObjective, describeOnPolicy } from './stages/report.js';
import { writeJsonAtomic } from './run-dir.js';

export interface SweepGrid {
  seeds: number[];
  fractions: number[];
  mentorSamples: number[];
  modes: StudentMode[];
  /** KD objectives to compare (the KD modes train once per objective); absent: the config's. */
  objectives?: SweepObjective[];
  /** Tasks, each in its own run directories (`<output_dir>/<task>/seed-<seed>`); absent: the configuration's task. */
  tasks?: TaskName[];
  /**
   * Train every baseline mode for mentor-kd's optimizer steps (tokens, under student.budget: tokens)
   * at the same seed and grid point: `also` beside the baselines at their own budget, `only` instead of them.
   */
  computeMatched?: 'also' | 'only';
  /** The mode paired differences are taken against (its compute-matched run under computeMatched); absent: none. */
  baseline?: StudentMode;
}

/** One KD objective of a sweep: the divergence (with jsd's β or a skew's α) and the on-policy fraction. */
export interface SweepObjective {
  divergence: KdDivergence;
  /** β for jsd, α for skew-kl / skew-reverse-kl. */
  coef?: number;
  /** student.onPolicy.fraction (0: off-policy). */
  onPolicy: number;
}

const KD_MODES: readonly StudentMode[] = ['mentor-kd', 'kd-only'];

/**
 * `forward-kl`, `reverse-kl`, `jsd:0.5`, `skew-kl:0.1`, `tvd`, each optionally followed by
 * `+on-policy:<fraction>` (e.g. `forward-kl+on-policy:0.5`): the sweep's --objectives entries.
 */
export function parseSweepObjective(spec: string): SweepObjective {
  const bad = (why: string) => new Error(`--objectives: ${JSON.stringify(spec)}: ${why}`);
  const [head, ...rest] = spec.trim().split('+');
  const [name, coefText, ...extra] = head!.split(':');
  if (!(KD_DIVERGENCES as readonly string[]).includes(name!)) throw bad(`the divergence must be one of ${KD_DIVERGENCES.join(', ')}`);
  const divergence = name as KdDivergence;
  const takesCoef = divergence === 'jsd' || divergence.startsWith('skew');
  if (extra.length || (coefText !== undefined && !takesCoef))
    throw bad(`${divergence} takes no parameter (jsd:<beta>, skew-kl:<alpha>, skew-reverse-kl:<alpha>)`);
  let coef: number | undefined;
  if (coefText !== undefined) {
    coef = Number(coefText);
    const ok = divergence === 'jsd' ? coef >= 0 && coef <= 1 : coef >= 0 && coef < 1;
    if (!Number.isFinite(coef) || !ok) throw bad(`${divergence === 'jsd' ? 'beta must be in [0, 1]' : 'alpha must be in [0, 1)'}, got ${coefText}`);
  }
  let onPolicy = 0;
  for (const part of rest) {
    const m = /^on-policy:(.+)$/.exec(part);
    const f = m ? Number(m[1]) : NaN;
    if (!(f >= 0 && f <= 1)) throw bad(`expected +on-policy:<fraction in [0, 1]>, got +${part}`);
    onPolicy = f;
  }
  return { divergence, ...(coef !== undefined ? { coef } : {}), onPolicy };
}

/** `0-4`, `0,2,5-7`: a list of non-negative integers with ranges (the sweep's --seeds). */
export function parseIntegerList(spec: string, what = '--seeds'): number[] {
  const out: number[] = [];
  for (const part of spec.split(',').map((x) => x.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`${what}: ${JSON.stringify(part)} is not an integer or a range like 0-4`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (b < a) throw new Error(`${what}: the range ${part} is empty`);
    for (let x = a; x <= b; x++) out.push(x);
  }
  if (new Set(out).size !== out.length) throw new Error(`${what}: ${spec} repeats a value`);
  return out;
}

/** `coin_flip,last_letter_concatenation`: the sweep's --tasks, each a known task. */
export function parseTaskList(spec: string): TaskName[] {
  return spec.split(',').map((x) => {
    const t = x.trim();
    if (!isTaskName(t)) throw new Error(`--tasks: unknown task ${JSON.stringify(t)} (one of: ${TASK_NAMES.join(', ')})`);
    return t;
  });
}

/** The run config's student settings with one sweep objective in place. */
function withObjective(student: RunConfig['student'], o: SweepObjective): RunConfig['student'] {
  const objective = { ...student.objective, divergence: o.divergence };
  if (o.coef !== undefined) {
    if (o.divergence === 'jsd') objective.beta = o.coef;
    else objective.alpha = o.coef;
  }
  return { ...student, objective, onPolicy: { ...student.onPolicy, fraction: o.onPolicy } };
}

/** `jsd(β=0.5)`, `forward-kl, on-policy 50% of rows (resampled every 1 step)`: a row label. */
function objectiveLabel(student: RunConfig['student']): string {
  return `${describeObjective(student.objective)}${describeOnPolicy(student.onPolicy)}`;
}

export interface SweepCell {
  mode: StudentMode | 'mentor';
  fraction: number;
  mentorSamples: number;
  /** The KD objective of a KD mode's cell when the sweep compares objectives; '' otherwise. */
  objective: string;
  /** The task (grid.tasks, else the configuration's). */
  task: string;
  /** '' for the configured budget; `steps matched to mentor-kd` (or tokens) for a compute-matched baseline. */
  budget: string;
  /** Per seed, in the order of `seeds`. */
  seeds: number[];
  accuracies: number[];
  /** Fraction of faithful test rationales per seed (lib/eval/faithfulness.ts). */
  faithfulness: (number | null)[];
  mean: number;
  std: number;
}

export { meanStd } from './statistics.js';

const MENTOR_KD: StudentMode = 'mentor-kd';

/** The fraction of faithful rationales among a model's test predictions (its evaluate stage's predictions.jsonl), or null. */
function faithfulnessOf(runDir: string, task: string, trainStage: string): number | null {
  const file = join(runDir, 'stages', `evaluate-${trainStage}`, 'predictions.jsonl');
  if (!existsSync(file)) return null;
  // A model that answers without a rationale (step-by-step's label task) has none to check.
  const manifest = join(runDir, 'stages', trainStage, 'manifest.json');
  if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { summary?: { questionPrefix?: string } }).summary?.questionPrefix) return null;
  const f = summarizeFaithfulness(task, readPredictions(file)).faithful;
  return Number.isFinite(f) ? f : null;
}

/**
 * With `computeMatched`, each baseline mode (every listed mode but mentor-kd) is trained for the
 * optimizer steps — or, under student.budget: tokens, the tokens — that mentor-kd took at the same
 * seed and grid point: mentor-kd trains first, then the baselines with that budget as their
 * per-mode override (student.modeSettings), in stages of their own (`student-vanilla-steps1720`).
 */
function matchedToMentorKd(c: RunConfig, baselines: StudentMode[], mentorKd: StudentResult): RunConfig {
  const m: RunConfig = structuredClone(c);
  m.student.modes = baselines;
  for (const mode of baselines) {
    const own = m.student.modeSettings[mode] ?? {};
    if (c.student.budget === 'tokens') {
      if (mentorKd.tokens === undefined)
        throw new Error(`sweep: compute-matched by tokens needs mentor-kd's tokens, which its stage ${mentorKd.stage} did not record; delete it to retrain`);
      m.student.modeSettings[mode] = { ...own, targetTokens: mentorKd.tokens };
    } else m.student.modeSettings[mode] = { ...own, train: { ...own.train, max_steps: mentorKd.steps } };
  }
  return m;
}

export interface SweepOptions extends PipelineOptions {
  /** false: train and evaluate only, no sweep report (a `--jobs` child: the parent writes it). Default true. */
  report?: boolean;
}

export interface SweepReportFiles {
  markdown: string;
  html: string;
}

export async function runSweep(
  base: RunConfig,
  grid: SweepGrid,
  options?: SweepOptions & { report?: true },
): Promise<{ cells: SweepCell[]; report: SweepReportFiles }>;
export async function runSweep(base: RunConfig, grid: SweepGrid, options: SweepOptions): Promise<{ cells: SweepCell[]; report: SweepReportFiles | null }>;
export async function runSweep(base: RunConfig, grid: SweepGrid, options: SweepOptions = {}): Promise<{ cells: SweepCell[]; report: SweepReportFiles | null }> {
  const acc = new Map<string, { seed: number; accuracy: number; faithful: number | null }[]>();
  const log = !options.group || options.group.isMain ? options.log : undefined;
  const push = (k: unknown[], seed: number, accuracy: number, faithful: number | null) => {
    const key = JSON.stringify(k);
    acc.set(key, [...(acc.get(key) ?? []), { seed, accuracy, faithful }]);
  };
  const objectives = grid.objectives?.length ? grid.objectives : [undefined];
  for (const o of objectives)
    if (o && o.onPolicy > 0 && base.student.softLabels !== 'online')
      throw new Error(`sweep: ${o.divergence}+on-policy:${o.onPolicy} needs student.softLabels: online (the mentor scores the student's own samples)`);
  if (grid.computeMatched && !grid.modes.includes(MENTOR_KD))
    throw new Error('sweep: compute-matched needs mentor-kd among the modes (its budget is the one matched)');
  const tasks = grid.tasks?.length ? grid.tasks : [base.task];
  if (tasks.some((t) => t !== base.task) && !base.data.synthetic)
    throw new Error(
      `sweep: --tasks ${tasks.join(',')} needs data.synthetic (each task generated locally); data files belong to the configuration's task ${base.task}`,
    );
  const matchedLabel = grid.computeMatched ? matchedBudget(base) : '';
  for (const task of tasks) {
    for (const seed of grid.seeds) {
      for (const fraction of grid.fractions) {
        for (const m of grid.mentorSamples) {
          // The first objective runs every mode; the others only the KD modes (the rest do not depend on it).
          for (const [i, o] of objectives.entries()) {
            const modes = i === 0 ? grid.modes : grid.modes.filter((x) => KD_MODES.includes(x));
            if (modes.length === 0) continue;
            const c: RunConfig = structuredClone(base);
            c.task = task;
            c.seed = seed;
            c.output_dir = grid.tasks?.length ? join(base.output_dir, task, `seed-${seed}`) : join(base.output_dir, `seed-${seed}`);
            c.student = { ...(o ? withObjective(c.student, o) : c.student), teacherFraction: fraction, mentorSamples: m, modes };
            c.augment = { ...c.augment, samples: Math.max(c.augment.samples, m) };
            const label = o ? objectiveLabel(c.student) : '';
            const where = `${tasks.length > 1 ? `${task}, ` : ''}seed ${seed}, teacher fraction ${fraction}, mentor rationales ${m}${o ? `, objective ${label}` : ''}`;
            const record = (r: PipelineResult, budget: string, only?: (s: StudentResult) => boolean) => {
              // Only this invocation's students: the run directory may hold others (results accumulate).
              for (const s of r.students.filter((x) => x.current && (!only || only(x))))
                push(
                  [task, s.mode, fraction, m, KD_MODES.includes(s.mode) ? label : '', budget],
                  seed,
                  s.testAccuracy,
                  faithfulnessOf(c.output_dir, task, s.stage!),
                );
            };
            const baselines = modes.filter((x) => x !== MENTOR_KD);
            const matched = grid.computeMatched && modes.includes(MENTOR_KD) && baselines.length > 0;
            log?.(`[sweep] ${where}`);
            const r = await runPipeline(matched && grid.computeMatched === 'only' ? { ...c, student: { ...c.student, modes: [MENTOR_KD] } } : c, options);
            if (i === 0)
              push(
                [task, 'mentor', fraction, m, '', ''],
                seed,
                r.mentor.testAccuracy ?? NaN,
                faithfulnessOf(c.output_dir, task, `train-mentor${fraction === 1 ? '' : `-f${fraction}`}`),
              );
            record(r, '');
            if (matched) {
              const mk = r.students.find((s) => s.current && s.mode === MENTOR_KD)!;
              // A baseline that already took mentor-kd's steps at its own budget (augment-only trains on the same data) is its own matched run.
              const same = (s: StudentResult) => baselines.includes(s.mode) && base.student.budget !== 'tokens' && s.steps === mk.steps;
              record(r, matchedLabel, same);
              const rest = baselines.filter((mode) => !r.students.some((s) => s.current && s.mode === mode && same(s)));
              if (rest.length) {
                log?.(`[sweep] ${where}: ${rest.join(', ')} for mentor-kd's ${base.student.budget === 'tokens' ? `${mk.tokens} tokens` : `${mk.steps} steps`}`);
                record(await runPipeline(matchedToMentorKd(c, rest, mk), options), matchedLabel);
              }
            }
          }
        }
      }
    }
  }
  const cells: SweepCell[] = [...acc].map(([k, xs]) => {
    const [task, mode, fraction, mentorSamples, objective, budget] = JSON.parse(k) as [string, SweepCell['mode'], number, number, string, string];
    const accuracies = xs.map((x) => x.accuracy);
    const { mean, std } = meanStd(accuracies);
    return {
      mode,
      fraction,
      mentorSamples,
      objective,
      task,
      budget,
      seeds: xs.map((x) => x.seed),
      accuracies,
      faithfulness: xs.map((x) => x.faithful),
      mean,
      std,
    };
  });
  // Under a process group every rank has the same cells; rank 0 writes the report.
  if (options.report === false) return { cells, report: null };
  const report = await onMainShared(options.group, () => writeSweepReport(base, grid, cells), 'write the sweep report');
  return { cells, report };
}

async function writeSweepReport(base: RunConfig, grid: SweepGrid, cells: SweepCell[]): Promise<{ markdown: string; html: string }> {
  const dir = join(base.output_dir, 'sweep');
  mkdirSync(dir, { recursive: true });
  const tasks = [...new Set(cells.map((x) => x.task))];
  // The statistics tables (tasks × methods, paired differences against the baseline): Markdown and JSON.
  // Under compute-matching the baseline is its matched run: the comparison at equal compute.
  const baseline = grid.baseline
    ? { mode: grid.baseline, objective: '', budget: grid.computeMatched && grid.baseline !== MENTOR_KD ? matchedBudget(base) : '' }
    : null;
  const tables = sweepTables(cells, baseline);
  const tablesMd = sweepTablesMarkdown(tables, grid.seeds);
  writeFileSync(join(dir, 'tables.md'), tablesMd);
  writeJsonAtomic(join(dir, 'tables.json'), tables);
  writeJsonAtomic(join(dir, 'sweep.json'), { grid, cells });
  const columns = tasks.flatMap((t) =>
    grid.fractions.flatMap((f) =>
      grid.mentorSamples.map((m) => `${tasks.length > 1 ? `${t}: ` : ''}${Math.round(f * 100)}% teacher data, ${m} mentor rationales`),
    ),
  );
  // One row per mode, and per objective for the KD modes when the sweep compares objectives, and per budget when baselines are compute-matched.
  const objectiveLabels = [...new Set(cells.filter((x) => x.objective).map((x) => x.objective))];
  type Row = { mode: SweepCell['mode']; objective: string; budget: string };
  const budgets = (mode: SweepCell['mode']) => [...new Set(cells.filter((x) => x.mode === mode).map((x) => x.budget))];
  const rowKeys: Row[] = [
    { mode: 'mentor', objective: '', budget: '' },
    ...grid.modes.flatMap((mode) =>
      (KD_MODES.includes(mode) && objectiveLabels.length ? objectiveLabels : ['']).flatMap((objective) =>
        budgets(mode).map((budget) => ({ mode, objective, budget })),
      ),
    ),
  ];
  const find = (r: Row, t: string, f: number, m: number) =>
    cells.find((x) => x.task === t && x.mode === r.mode && x.objective === r.objective && x.budget === r.budget && x.fraction === f && x.mentorSamples === m);
  const pm = (cell: SweepCell | undefined) => (cell ? `${(100 * cell.mean).toFixed(1)} ± ${(100 * cell.std).toFixed(1)}` : '–');
  const lines: Chart[] =
    grid.fractions.length > 1
      ? tasks.flatMap((t) =>
          grid.mentorSamples.map((m) => ({
            title: `${tasks.length > 1 ? `${t}: ` : ''}Test accuracy vs teacher data (${m} mentor rationales per question; mean over ${grid.seeds.length} seeds)`,
            xLabel: 'fraction of teacher data',
            yLabel: 'accuracy',
            series: rowKeys.map((r) => ({
              name: methodName(r),
              points: grid.fractions.map((f) => [f, find(r, t, f, m)?.mean ?? NaN] as [number, number]).filter((p) => Number.isFinite(p[1])),
            })),
          })),
        )
      : [];
  const differences = tables.flatMap((t) => t.differences.map((d) => `${d.task}: ${d.method} − ${t.baseline}: ${formatDifference(d)} (n = ${d.n})`));
  return writeReport(dir, {
    title: `Mentor-KD sweep: ${tasks.join(', ')}, seeds ${grid.seeds.join(', ')}`,
    results: {
      columns,
      rows: rowKeys.map((r) => ({
        label: methodName(r),
        values: tasks.flatMap((t) => grid.fractions.flatMap((f) => grid.mentorSamples.map((m) => pm(find(r, t, f, m))))),
      })),
    },
    stages: [],
    notes: [
      'Cells: test accuracy in %, mean ± sample standard deviation over seeds; sweep/tables.md and tables.json hold the tables per task with faithfulness and paired differences.',
      `KD: λ=${base.student.lambda}, τ=${base.student.tau}${objectiveLabels.length ? '' : `, D=${objectiveLabel(base.student)}`}, soft labels ${base.student.softLabels}`,
      `Student budget: ${base.student.budget}${grid.computeMatched ? `; every baseline ${grid.computeMatched === 'also' ? 'also ' : ''}trained for mentor-kd's ${base.student.budget === 'tokens' ? 'tokens' : 'optimizer steps'} at the same seed (rows "${matchedName(base)}")` : ''}`,
      ...(differences.length ? [`Paired differences (points, 95% t interval, two-sided paired t-test p):`, ...differences] : []),
      `environment of this report: ${describeEnvironment(runEnvironment())}; each stage manifest records its own`,
    ],
    charts: [...sweepCharts(tables), ...lines],
    config: { base, grid },
  });
}

/** How a compute-matched baseline's budget is named: `steps matched to mentor-kd`. */
const matchedBudget = (c: RunConfig) => `${c.student.budget === 'tokens' ? 'tokens' : 'steps'} matched to mentor-kd`;
const matchedName = (c: RunConfig) => `… (${matchedBudget(c)})`;
