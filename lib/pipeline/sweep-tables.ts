/**
 * The sweep's tables, shaped like the paper's: tasks × methods (test accuracy, mean ± sd over
 * seeds, with the rationales' faithfulness beside it when measured) and, against a chosen baseline,
 * the paired difference per task with its 95% t interval and p-value (lib/pipeline/statistics.ts).
 * One table pair per grid point (teacher-data fraction × mentor rationales per question); written
 * as Markdown and JSON, with interval charts for the report.
 */
import { intervalChart, type ChartSpec } from '../report/charts.js';
import { formatDifference, meanStd, pairedDifference, type PairedDifference } from './statistics.js';

/** One method of the sweep: a mode, and where it varies, its KD objective and its training budget. */
export interface SweepMethod {
  mode: string;
  /** The KD objective when the sweep compares objectives; '' otherwise. */
  objective: string;
  /** '' for the configured budget, else e.g. `steps matched to mentor-kd`. */
  budget: string;
}

/** A method's results on one task at one grid point, one value per seed. */
export interface SweepCellValues extends SweepMethod {
  task: string;
  fraction: number;
  mentorSamples: number;
  seeds: number[];
  accuracies: number[];
  /** Fraction of faithful test rationales per seed (lib/eval/faithfulness.ts); absent where not measured. */
  faithfulness?: (number | null)[];
}

export const methodName = (m: SweepMethod): string => `${m.mode}${m.objective ? `, ${m.objective}` : ''}${m.budget ? ` (${m.budget})` : ''}`;

const pm = (xs: readonly number[]) => {
  const s = meanStd(xs);
  return `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
};

/** The paired difference of two cells over the seeds both have. */
export function cellDifference(a: SweepCellValues, b: SweepCellValues): PairedDifference {
  const bySeed = new Map(b.seeds.map((s, i) => [s, b.accuracies[i]!]));
  const pairs = a.seeds.flatMap((s, i) =>
    bySeed.has(s) && Number.isFinite(a.accuracies[i]!) && Number.isFinite(bySeed.get(s)!) ? [[a.accuracies[i]!, bySeed.get(s)!]] : [],
  );
  return pairedDifference(
    pairs.map((p) => p[0]!),
    pairs.map((p) => p[1]!),
  );
}

export interface SweepTable {
  fraction: number;
  mentorSamples: number;
  tasks: string[];
  methods: string[];
  /** methods × tasks: mean, sd, n, per-seed values, mean faithfulness (null where not measured). */
  accuracy: { method: string; task: string; mean: number; std: number; n: number; seeds: number[]; values: number[]; faithful: number | null }[];
  /** Against `baseline`, per method and task: the paired difference (a − baseline). */
  baseline: string | null;
  differences: ({ method: string; task: string } & PairedDifference)[];
}

/** The tables of a sweep's cells; `baseline` is a method name (e.g. `vanilla`), or null for none. */
export function sweepTables(cells: readonly SweepCellValues[], baseline: SweepMethod | null): SweepTable[] {
  const points = [...new Map(cells.map((c) => [`${c.fraction}/${c.mentorSamples}`, c])).values()];
  return points.map(({ fraction, mentorSamples }) => {
    const here = cells.filter((c) => c.fraction === fraction && c.mentorSamples === mentorSamples);
    const tasks = [...new Set(here.map((c) => c.task))];
    const methods = [...new Set(here.map(methodName))];
    const accuracy = here.map((c) => {
      const finite = c.accuracies.filter(Number.isFinite);
      const faith = (c.faithfulness ?? []).filter((x): x is number => x !== null && Number.isFinite(x));
      return {
        method: methodName(c),
        task: c.task,
        ...meanStd(finite),
        seeds: c.seeds,
        values: c.accuracies,
        faithful: faith.length ? meanStd(faith).mean : null,
      };
    });
    const base = baseline ? methodName(baseline) : null;
    const differences = base
      ? here.flatMap((c) => {
          const b = here.find((x) => x.task === c.task && methodName(x) === base);
          return b && methodName(c) !== base ? [{ method: methodName(c), task: c.task, ...cellDifference(c, b) }] : [];
        })
      : [];
    return { fraction, mentorSamples, tasks, methods, accuracy, baseline: base, differences };
  });
}

/** The tables as Markdown: accuracy (mean ± sd, faithful %) and differences against the baseline. */
export function sweepTablesMarkdown(tables: readonly SweepTable[], seeds: readonly number[]): string {
  const lines: string[] = [];
  for (const t of tables) {
    lines.push(`### ${Math.round(t.fraction * 100)}% teacher data, ${t.mentorSamples} mentor rationales per question`, '');
    lines.push(`Test accuracy (%), mean ± sd over seeds ${seeds.join(', ')}; in brackets, the share of faithful test rationales.`, '');
    lines.push(`| method | ${t.tasks.join(' | ')} |`, `|---|${t.tasks.map(() => '---').join('|')}|`);
    for (const m of t.methods) {
      const cells = t.tasks.map((task) => {
        const a = t.accuracy.find((x) => x.method === m && x.task === task);
        if (!a || a.n === 0) return '–';
        return `${pm(a.values.filter(Number.isFinite))}${a.faithful !== null ? ` [${(100 * a.faithful).toFixed(0)}% faithful]` : ''}`;
      });
      lines.push(`| ${m} | ${cells.join(' | ')} |`);
    }
    if (t.baseline) {
      lines.push('', `Paired difference against ${t.baseline} (points; same seeds), 95% t interval, two-sided paired t-test:`, '');
      lines.push(`| method − ${t.baseline} | ${t.tasks.join(' | ')} |`, `|---|${t.tasks.map(() => '---').join('|')}|`);
      for (const m of t.methods.filter((x) => x !== t.baseline)) {
        const cells = t.tasks.map((task) => {
          const d = t.differences.find((x) => x.method === m && x.task === task);
          return d ? formatDifference(d) : '–';
        });
        lines.push(`| ${m} | ${cells.join(' | ')} |`);
      }
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Interval charts: accuracy (mean ± sd, per-seed dots) and, with a baseline, the paired differences (95% CI). */
export function sweepCharts(tables: readonly SweepTable[]): ChartSpec[] {
  const charts: ChartSpec[] = [];
  tables.forEach((t, i) => {
    const where = tables.length > 1 ? `, ${Math.round(t.fraction * 100)}% teacher data, ${t.mentorSamples} mentor rationales` : '';
    charts.push(
      intervalChart(
        t.accuracy
          .filter((a) => a.n > 0)
          .map((a) => ({ group: a.task, label: a.method, mean: a.mean, lo: a.mean - a.std, hi: a.mean + a.std, values: a.values.filter(Number.isFinite) })),
        { name: `sweep-accuracy-${i + 1}`, title: `Test accuracy${where}`, subtitle: 'mean ± sd over seeds; dots: seeds', axisTitle: 'test accuracy' },
      ),
    );
    const diffs = t.differences.filter((d) => d.ci95);
    if (t.baseline && diffs.length)
      charts.push(
        intervalChart(
          diffs.map((d) => ({ group: d.task, label: d.method, mean: d.mean, lo: d.ci95![0], hi: d.ci95![1] })), // the title names the baseline
          {
            name: `sweep-differences-${i + 1}`,
            title: `Paired difference against ${t.baseline}${where}`,
            subtitle: 'mean over seeds with its 95% t interval',
            axisTitle: `test accuracy − ${t.baseline}`,
            zeroRule: true,
          },
        ),
      );
  });
  return charts;
}
