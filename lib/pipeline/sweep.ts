/**
 * The paper's experiment grid as one command: modes × fraction of teacher data × mentor rationales
 * per question × seeds. Each seed has its own run directory; within it, stages that a grid point
 * shares with another (data, teacher, tokenizer, mentor, augmentation) are computed once and reused.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunConfig, StudentMode } from '../config/schema.js';
import { onMainShared } from '../parallel/sharded.js';
import { runPipeline, type PipelineOptions } from './pipeline.js';
import { writeReport, type Chart } from './report.js';
import { writeJsonAtomic } from './run-dir.js';

export interface SweepGrid {
  seeds: number[];
  fractions: number[];
  mentorSamples: number[];
  modes: StudentMode[];
}

export interface SweepCell {
  mode: StudentMode | 'mentor';
  fraction: number;
  mentorSamples: number;
  accuracies: number[];
  mean: number;
  std: number;
}

export const meanStd = (xs: readonly number[]): { mean: number; std: number } => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
};

export async function runSweep(
  base: RunConfig,
  grid: SweepGrid,
  options: PipelineOptions = {},
): Promise<{ cells: SweepCell[]; report: { markdown: string; html: string } }> {
  const acc = new Map<string, number[]>();
  const log = !options.group || options.group.isMain ? options.log : undefined;
  const push = (k: string, v: number) => acc.set(k, [...(acc.get(k) ?? []), v]);
  for (const seed of grid.seeds) {
    for (const fraction of grid.fractions) {
      for (const m of grid.mentorSamples) {
        const c: RunConfig = structuredClone(base);
        c.seed = seed;
        c.output_dir = join(base.output_dir, `seed-${seed}`);
        c.student = { ...c.student, teacherFraction: fraction, mentorSamples: m, modes: grid.modes };
        c.augment = { ...c.augment, samples: Math.max(c.augment.samples, m) };
        log?.(`[sweep] seed ${seed}, teacher fraction ${fraction}, mentor rationales ${m}`);
        const r = await runPipeline(c, options);
        push(JSON.stringify(['mentor', fraction, m]), r.mentor.testAccuracy ?? NaN);
        for (const s of r.students) push(JSON.stringify([s.mode, fraction, m]), s.testAccuracy);
      }
    }
  }
  const cells: SweepCell[] = [...acc].map(([k, xs]) => {
    const [mode, fraction, mentorSamples] = JSON.parse(k) as [SweepCell['mode'], number, number];
    return { mode, fraction, mentorSamples, accuracies: xs, ...meanStd(xs) };
  });
  // Under a process group every rank has the same cells; rank 0 writes the report.
  const report = await onMainShared(options.group, () => writeSweepReport(base, grid, cells), 'write the sweep report');
  return { cells, report };
}

function writeSweepReport(base: RunConfig, grid: SweepGrid, cells: SweepCell[]): { markdown: string; html: string } {
  const dir = join(base.output_dir, 'sweep');
  mkdirSync(dir, { recursive: true });
  writeJsonAtomic(join(dir, 'sweep.json'), { grid, cells });
  const columns = grid.fractions.flatMap((f) => grid.mentorSamples.map((m) => `${Math.round(f * 100)}% teacher data, ${m} mentor rationales`));
  const rowLabels: SweepCell['mode'][] = ['mentor', ...grid.modes];
  const pm = (cell: SweepCell | undefined) => (cell ? `${(100 * cell.mean).toFixed(1)} ± ${(100 * cell.std).toFixed(1)}` : '–');
  const charts: Chart[] = grid.mentorSamples.map((m) => ({
    title: `Test accuracy vs teacher data (${m} mentor rationales per question; mean over ${grid.seeds.length} seeds)`,
    xLabel: 'fraction of teacher data',
    yLabel: 'accuracy',
    series: rowLabels.map((mode) => ({
      name: mode,
      points: grid.fractions
        .map((f) => [f, cells.find((x) => x.mode === mode && x.fraction === f && x.mentorSamples === m)?.mean ?? NaN] as [number, number])
        .filter((p) => Number.isFinite(p[1])),
    })),
  }));
  return writeReport(dir, {
    title: `Mentor-KD sweep: ${base.task}, seeds ${grid.seeds.join(', ')}`,
    results: {
      columns,
      rows: rowLabels.map((mode) => ({
        label: mode,
        values: grid.fractions.flatMap((f) =>
          grid.mentorSamples.map((m) => pm(cells.find((x) => x.mode === mode && x.fraction === f && x.mentorSamples === m))),
        ),
      })),
    },
    stages: [],
    notes: ['Cells: test accuracy in %, mean ± sample standard deviation over seeds.'],
    charts,
    config: { base, grid },
  });
}
