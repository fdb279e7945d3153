// The report's charts: Vega-Lite specs with the properties the report promises (smoothed, per
// objective, log axis, legend outside the plot, chance line, error bars), rendered to
// self-contained SVG in Node.
import { describe, expect, it } from 'vitest';
import { devAccuracyChart, ema, intervalChart, lossChart, renderSvg, seriesChart, thin } from '../lib/report/charts.js';

type Json = Record<string, unknown>;
const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as Json;

describe('smoothing and thinning', () => {
  it('EMA with bias correction, by hand', () => {
    // w = 0.5: s1 = 0.5·4 / (1-0.5) = 4; s2 = (0.5·2 + 0.5·2)/(1-0.25) = 2/0.75; s3 = (0.5·2 + 0.5·8)/(1-0.125)
    const s = ema([4, 2, 8], 0.5);
    expect(s[0]).toBeCloseTo(4, 12);
    expect(s[1]).toBeCloseTo(2 / 0.75, 12);
    expect(s[2]).toBeCloseTo((0.5 * 2 + 0.5 * 8) / 0.875, 12);
    expect(ema([3, 3, 3], 0.9)).toEqual([3, 3, 3].map(() => expect.closeTo(3, 12)));
    expect(() => ema([1], 1)).toThrow(/EMA weight must be in \[0, 1\), got 1/);
  });
  it('thin keeps at most max evenly spaced points and the last', () => {
    const xs = Array.from({ length: 1000 }, (_, i) => i);
    const t = thin(xs, 100);
    expect(t.length).toBeLessThanOrEqual(101);
    expect(t[0]).toBe(0);
    expect(t[t.length - 1]).toBe(999);
    expect(thin([1, 2], 10)).toEqual([1, 2]);
  });
});

describe('loss chart', () => {
  const steps = (n: number, kl: boolean) => Array.from({ length: n }, (_, i) => ({ step: i + 1, ce: 10 / (i + 1), kl: kl ? 2 / (i + 1) : 0 }));
  const chart = lossChart([
    { model: 'vanilla', steps: steps(50, false), withKd: false },
    { model: 'mentor-kd', steps: steps(80, true), withKd: true },
  ]);
  const spec = json(chart.spec);

  it('one panel per objective, log y, raw faint under the smoothed line', () => {
    expect((spec.facet as Json).column).toMatchObject({ field: 'objective' });
    expect(spec.resolve).toEqual({ scale: { y: 'independent' } });
    const layers = (spec.spec as Json).layer as Json[];
    expect(layers.map((l) => (l.encoding as Json).y)).toEqual([
      expect.objectContaining({ field: 'raw', scale: { type: 'log' } }),
      expect.objectContaining({ field: 'smoothed', scale: { type: 'log' } }),
    ]);
    expect((layers[0]!.mark as Json).opacity).toBeLessThan(0.5);
    const rows = (spec.data as { values: { model: string; objective: string }[] }).values;
    // The model without KD has no KD panel rows (its logged KL is 0, which a log axis cannot show).
    expect(new Set(rows.filter((r) => r.model === 'vanilla').map((r) => r.objective))).toEqual(new Set(['cross-entropy (CE)']));
    expect(new Set(rows.filter((r) => r.model === 'mentor-kd').map((r) => r.objective))).toEqual(
      new Set(['cross-entropy (CE)', 'KD divergence to the mentor']),
    );
  });

  it('renders to a standalone SVG with both panels and the legend right of the plots', async () => {
    const svg = await renderSvg(chart.spec);
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg).toMatch(/<svg[^>]+xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg).not.toMatch(/<script|<image|href="http/);
    for (const text of ['cross-entropy (CE)', 'KD divergence to the mentor', 'mentor-kd', 'vanilla', 'optimizer step']) expect(svg).toContain(text);
    // Log axis ticks: powers of ten appear as labels.
    expect(svg).toMatch(/>10<\/text>/);
    // The legend group sits right of both plot panels (x of its translate beyond their width).
    const legend = /class="mark-group role-legend"[\s\S]*?translate\((\d+(?:\.\d+)?),/.exec(svg);
    expect(legend).not.toBeNull();
    expect(Number(legend![1])).toBeGreaterThan(2 * 300);
  }, 60_000);
});

describe('dev accuracy and interval charts', () => {
  it('dev accuracy in % with a dashed chance line and its label', async () => {
    const c = devAccuracyChart(
      [
        {
          name: 'mentor',
          points: [
            [100, 0.4],
            [200, 0.8],
          ],
        },
      ],
      { accuracy: 0.5, label: 'random answer (1 of 2)' },
    );
    const layers = (json(c.spec).layer as Json[]).map((l) => l.mark as Json);
    expect(layers[1]).toMatchObject({ type: 'rule', strokeDash: [4, 4] });
    const svg = await renderSvg(c.spec);
    expect(svg).toContain('chance: random answer (1 of 2) 50%');
    expect(svg).toContain('100%');
  }, 60_000);

  it('intervals: a bar from lo to hi per method, the mean, per-seed dots, a zero line for differences', async () => {
    const c = intervalChart(
      [
        { group: 'coin_flip', label: 'mentor-kd − vanilla', mean: 0.178, lo: -0.024, hi: 0.38, values: [0.2, 0.3, -0.1, 0.25, 0.24] },
        { group: 'coin_flip', label: 'augment-only − vanilla', mean: 0.16, lo: 0.05, hi: 0.27 },
      ],
      { name: 'paired', title: 'Paired differences', subtitle: '95% t interval', axisTitle: 'difference', zeroRule: true },
    );
    const spec = json(c.spec);
    const values = (spec.data as { values: Json[] }).values;
    expect(values.filter((v) => v.kind === 'interval')).toHaveLength(2);
    expect(values.filter((v) => v.kind === 'seed').map((v) => v.value)).toEqual([0.2, 0.3, -0.1, 0.25, 0.24]);
    const layers = spec.layer as Json[];
    expect(layers[0]).toMatchObject({ mark: { type: 'rule' }, encoding: { x: { field: 'lo' }, x2: { field: 'hi' } } });
    expect(layers.some((l) => JSON.stringify(l.encoding) === JSON.stringify({ x: { datum: 0 } }))).toBe(true);
    const svg = await renderSvg(c.spec);
    for (const text of ['mentor-kd − vanilla', 'augment-only − vanilla', '17.8%', 'difference']) expect(svg).toContain(text);
  }, 60_000);

  it('the old series charts (sweep vs teacher fraction) render through Vega-Lite', async () => {
    const c = seriesChart(
      {
        title: 'Accuracy vs teacher data',
        xLabel: 'fraction',
        yLabel: 'accuracy',
        series: [
          {
            name: 'vanilla',
            points: [
              [0.5, 0.6],
              [1, 0.7],
            ],
          },
        ],
      },
      'chart-1',
    );
    expect(c.name).toBe('chart-1');
    expect(await renderSvg(c.spec)).toContain('Accuracy vs teacher data');
  }, 60_000);
});
