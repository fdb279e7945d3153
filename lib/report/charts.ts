/**
 * The report's charts as Vega-Lite specifications, rendered to self-contained SVG in Node (vega's
 * headless View: no browser, no canvas, no network; text widths are estimated). The same specs
 * make the README's images, so what a user sees in a run's report is what the README shows.
 */
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

export interface ChartSpec {
  /** File name without extension (the report writes `<name>.svg`). */
  name: string;
  title: string;
  spec: TopLevelSpec;
}

/** A curve of one model: [step, value] points. */
export interface Curve {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** A line chart in the report's old shape (several named series over x), kept for callers such as the sweep. */
export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: { name: string; points: [number, number][] }[];
}

// Okabe–Ito: distinguishable for colour-blind readers and in greyscale print.
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee', titleFontWeight: 'normal' as const },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'right' as const, labelLimit: 220 },
  title: { fontSize: 14, anchor: 'start' as const, offset: 10 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  range: { category: PALETTE },
};

// The legend shows the smoothed line, not the faint raw one drawn first.
const SOLID_LEGEND = { symbolOpacity: 1, symbolStrokeWidth: 2.5 };

const color = (models: readonly string[]) => ({ field: 'model', type: 'nominal' as const, title: 'model', scale: { domain: [...models], range: PALETTE } });

/** Renders a Vega-Lite spec to a standalone SVG document. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Warnings (e.g. about faceted independent scales) are about layout guesses, not errors: not printed.
  const compiled = vegaLite.compile(spec, { logger: vega.logger(vega.Error) }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  try {
    const svg = await view.toSVG();
    return svg.startsWith('<?xml') ? svg : `<?xml version="1.0" encoding="UTF-8"?>\n${svg}`;
  } finally {
    view.finalize();
  }
}

/**
 * Exponential moving average with bias correction (TensorBoard's smoothing): s_t = w s_{t-1} +
 * (1-w) x_t, divided by (1 - w^t) so the start is not pulled towards 0.
 */
export function ema(values: readonly number[], weight: number): number[] {
  if (!(weight >= 0 && weight < 1)) throw new Error(`EMA weight must be in [0, 1), got ${weight}`);
  let s = 0;
  return values.map((x, i) => {
    s = weight * s + (1 - weight) * x;
    return s / (1 - weight ** (i + 1));
  });
}

/** At most `max` evenly spaced points, the last one kept (an SVG with 5000-point paths is slow and large). */
export function thin<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs];
  const stride = xs.length / max;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.floor(i * stride)]!);
  if (out[out.length - 1] !== xs[xs.length - 1]) out.push(xs[xs.length - 1]!);
  return out;
}

export interface LossCurves {
  model: string;
  /** One row per optimizer step. */
  steps: readonly { step: number; ce: number; kl: number }[];
  /** False for models trained without the KD term (their KL column is 0). */
  withKd: boolean;
}

/**
 * Training loss per objective: a panel for the cross-entropy and one for the KD divergence (they
 * have different scales and meanings), log y axis, EMA-smoothed lines over the raw values drawn faint.
 */
export function lossChart(models: readonly LossCurves[], options: { smoothing?: number; maxPoints?: number } = {}): ChartSpec {
  const smoothing = options.smoothing ?? 0.9;
  const maxPoints = options.maxPoints ?? 400;
  const rows: { model: string; objective: string; step: number; raw: number; smoothed: number }[] = [];
  for (const m of models) {
    const objectives: [string, (r: { ce: number; kl: number }) => number][] = [['cross-entropy (CE)', (r) => r.ce]];
    if (m.withKd) objectives.push(['KD divergence to the mentor', (r) => r.kl]);
    for (const [objective, pick] of objectives) {
      const steps = m.steps.filter((r) => Number.isFinite(pick(r)) && pick(r) > 0); // log axis: positive values only
      const smooth = ema(
        steps.map((r) => pick(r)),
        smoothing,
      );
      const idx = thin(
        steps.map((_, i) => i),
        maxPoints,
      );
      for (const i of idx) rows.push({ model: m.model, objective, step: steps[i]!.step, raw: pick(steps[i]!), smoothed: smooth[i]! });
    }
  }
  const names = models.map((m) => m.model);
  const x = { field: 'step', type: 'quantitative' as const, title: 'optimizer step' };
  const y = (field: string, title: string | null) => ({ field, type: 'quantitative' as const, title, scale: { type: 'log' as const } });
  return {
    name: 'loss',
    title: 'Training loss per objective',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Training loss per objective', subtitle: `EMA-smoothed (weight ${smoothing}), raw values faint; log scale` },
      data: { values: rows },
      facet: { column: { field: 'objective', type: 'nominal', title: null, sort: ['cross-entropy (CE)', 'KD divergence to the mentor'] } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 300,
        height: 220,
        layer: [
          {
            mark: { type: 'line', opacity: 0.2, strokeWidth: 1 },
            encoding: { x, y: y('raw', 'loss per token'), color: { ...color(names), legend: SOLID_LEGEND } },
          },
          { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y: y('smoothed', 'loss per token'), color: { ...color(names), legend: SOLID_LEGEND } } },
        ],
      },
      config: CONFIG,
    },
  };
}

/** Dev accuracy at each evaluation, with the chance line (majority class / random answer). */
export function devAccuracyChart(curves: readonly Curve[], chance?: { accuracy: number; label: string }): ChartSpec {
  const rows = curves.flatMap((c) => c.points.map(([step, accuracy]) => ({ model: c.name, step, accuracy })));
  const names = curves.map((c) => c.name);
  const layers: object[] = [
    {
      mark: { type: 'line', point: { size: 18 }, strokeWidth: 1.6 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
        y: { field: 'accuracy', type: 'quantitative', title: 'dev accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: color(names),
      },
    },
  ];
  if (chance) {
    layers.push(
      {
        data: { values: [{ chance: chance.accuracy }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#777' },
        encoding: { y: { field: 'chance', type: 'quantitative' } },
      },
      {
        data: { values: [{ chance: chance.accuracy, text: `chance: ${chance.label} ${(100 * chance.accuracy).toFixed(0)}%` }] },
        mark: { type: 'text', align: 'right', dx: -4, dy: 12, color: '#555', fontSize: 11 },
        encoding: { x: { value: 'width' }, y: { field: 'chance', type: 'quantitative' }, text: { field: 'text' } },
      },
    );
  }
  return {
    name: 'dev-accuracy',
    title: 'Dev accuracy during training',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Dev accuracy during training', subtitle: 'at each evaluation; the dashed line is chance' },
      width: 460,
      height: 240,
      data: { values: rows },
      layer: layers,
      config: CONFIG,
    } as TopLevelSpec,
  };
}

export interface IntervalRow {
  /** Panel (e.g. the task or the grid point). */
  group: string;
  /** Bar label (the method, or "mentor-kd − vanilla"). */
  label: string;
  mean: number;
  lo: number;
  hi: number;
  /** The per-seed values, drawn as dots. */
  values?: readonly number[];
}

/**
 * Mean with an interval per method (e.g. test accuracy over seeds, mean ± sd or a 95% CI), the
 * per-seed values as dots beside it; one panel per group.
 */
export function intervalChart(
  rows: readonly IntervalRow[],
  o: { name: string; title: string; subtitle: string; axisTitle: string; percent?: boolean; zeroRule?: boolean; domain?: [number, number] },
): ChartSpec {
  const fmt = o.percent === false ? '.2f' : '.0%';
  const labels = [...new Set(rows.map((r) => r.label))];
  const groups = [...new Set(rows.map((r) => r.group))];
  // Per-seed dots sit 11 px above the interval (yOffset counts from the band start of a 44 px band).
  // One data source (intervals and per-seed dots told apart by `kind`), so a facet can split both.
  const values = [
    ...rows.map((r) => ({ kind: 'interval', group: r.group, label: r.label, mean: r.mean, lo: r.lo, hi: r.hi })),
    ...rows.flatMap((r) => (r.values ?? []).map((v) => ({ kind: 'seed', group: r.group, label: r.label, value: v }))),
  ];
  const only = (kind: string) => [{ filter: `datum.kind === '${kind}'` }];
  const y = { field: 'label', type: 'nominal' as const, title: null, sort: labels, axis: { labelLimit: 320 } };
  const hue = { field: 'label', type: 'nominal' as const, legend: null, scale: { domain: labels, range: PALETTE } };
  const layers: object[] = [
    {
      transform: only('interval'),
      mark: { type: 'rule', strokeWidth: 2 },
      encoding: {
        y,
        x: { field: 'lo', type: 'quantitative', title: o.axisTitle, axis: { format: fmt }, ...(o.domain ? { scale: { domain: o.domain } } : {}) },
        x2: { field: 'hi' },
        color: hue,
      },
    },
    { transform: only('interval'), mark: { type: 'tick', thickness: 2, size: 14 }, encoding: { y, x: { field: 'lo', type: 'quantitative' }, color: hue } },
    { transform: only('interval'), mark: { type: 'tick', thickness: 2, size: 14 }, encoding: { y, x: { field: 'hi', type: 'quantitative' }, color: hue } },
    {
      transform: only('interval'),
      mark: { type: 'point', filled: true, size: 80, opacity: 1 },
      encoding: { y, x: { field: 'mean', type: 'quantitative' }, color: hue },
    },
    {
      transform: only('interval'),
      mark: { type: 'text', align: 'center', dy: 15, fontSize: 10, color: '#333' },
      encoding: { y, x: { field: 'mean', type: 'quantitative' }, text: { field: 'mean', type: 'quantitative', format: o.percent === false ? '+.2f' : '.1%' } },
    },
  ];
  if (values.some((v) => v.kind === 'seed'))
    layers.push({
      transform: only('seed'),
      mark: { type: 'point', size: 24, opacity: 0.6, color: '#666' },
      encoding: { y, yOffset: { value: 11 }, x: { field: 'value', type: 'quantitative' } },
    });
  if (o.zeroRule) layers.push({ transform: only('interval'), mark: { type: 'rule', color: '#999', strokeDash: [3, 3] }, encoding: { x: { datum: 0 } } });
  const layered = { width: 360, height: { step: 44 }, layer: layers };
  const body =
    groups.length > 1
      ? {
          data: { values },
          facet: {
            row: {
              field: 'group',
              type: 'nominal',
              title: null,
              sort: groups,
              header: { labelOrient: 'top', labelAngle: 0, labelAnchor: 'start', labelFontWeight: 'bold' },
            },
          },
          spec: layered,
          resolve: { scale: { y: 'independent' } },
        }
      : { data: { values }, ...layered };
  return {
    name: o.name,
    title: o.title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: o.title, subtitle: o.subtitle },
      ...body,
      config: CONFIG,
    } as TopLevelSpec,
  };
}

/** The old series-over-x line chart through Vega-Lite (e.g. accuracy vs fraction of teacher data). */
export function seriesChart(chart: Chart, name: string): ChartSpec {
  const rows = chart.series.flatMap((s) => s.points.map(([x, y]) => ({ model: s.name, x, y })));
  return {
    name,
    title: chart.title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: chart.title,
      width: 460,
      height: 240,
      data: { values: rows },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: chart.xLabel },
        y: { field: 'y', type: 'quantitative', title: chart.yLabel },
        color: color(chart.series.map((s) => s.name)),
      },
      config: CONFIG,
    },
  };
}
