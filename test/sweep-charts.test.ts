/**
 * The sweep's paired-difference chart: each method minus the baseline, per task, the mean with its
 * 95% t interval — the numbers of the tables (hand-computed here), drawn as an SVG.
 */
import { describe, expect, it } from 'vitest';
import { renderSvg } from '../lib/report/charts.js';
import { sweepCharts, sweepTables, type SweepCellValues } from '../lib/pipeline/sweep-tables.js';

const cell = (task: string, mode: string, budget: string, accuracies: number[]): SweepCellValues => ({
  task,
  mode,
  objective: '',
  budget,
  fraction: 1,
  mentorSamples: 3,
  seeds: accuracies.map((_, i) => i),
  accuracies,
});

describe('the paired-difference chart', () => {
  it('draws every method minus the baseline per task with the 95% t interval of the tables', async () => {
    const matched = 'steps matched to mentor-kd';
    const cells = [
      cell('coin_flip', 'vanilla', matched, [0.6, 0.7, 0.8]),
      cell('coin_flip', 'mentor-kd', '', [0.9, 0.9, 1.0]),
      cell('last_letter_concatenation', 'vanilla', matched, [0.2, 0.3, 0.3]),
      cell('last_letter_concatenation', 'mentor-kd', '', [0.3, 0.3, 0.5]),
    ];
    const tables = sweepTables(cells, { mode: 'vanilla', objective: '', budget: matched });
    // coin_flip: differences 0.3, 0.2, 0.2 → mean 0.2333, sd 0.0577, t(0.975, 2) = 4.302653 → ± 0.1434.
    const d = tables[0]!.differences.find((x) => x.task === 'coin_flip')!;
    expect(d.mean).toBeCloseTo(0.7 / 3, 12);
    expect(d.ci95![1] - d.mean).toBeCloseTo((4.302652729749464 * Math.sqrt(1 / 300)) / Math.sqrt(3), 9);
    const chart = sweepCharts(tables).find((c) => c.name === 'sweep-differences-1')!;
    expect(chart.title).toBe(`Paired difference against vanilla (${matched})`);
    const spec = chart.spec as unknown as { data: { values: Record<string, unknown>[] } };
    const drawn = spec.data.values.filter((v) => v.kind === 'interval');
    expect(drawn).toEqual(
      tables[0]!.differences.map((x) => ({ kind: 'interval', group: x.task, label: x.method, mean: x.mean, lo: x.ci95![0], hi: x.ci95![1] })),
    );
    expect(drawn.map((v) => v.group)).toEqual(['coin_flip', 'last_letter_concatenation']);
    const svg = await renderSvg(chart.spec);
    expect(svg).toMatch(/^(<\?xml[^>]*>\s*)?<svg/);
    for (const text of ['coin_flip', 'last_letter_concatenation', 'mentor-kd', `test accuracy − vanilla (${matched})`]) expect(svg).toContain(text);
  });
});
