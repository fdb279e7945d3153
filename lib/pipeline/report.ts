/**
 * The run report: Markdown and a self-contained HTML page (inline SVG charts, no scripts, no
 * network), from what the stages recorded.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Series {
  name: string;
  points: [number, number][];
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

export interface ReportInput {
  title: string;
  /** Rows of the results table: label → column → value (accuracy in [0,1] or text). */
  results: { columns: string[]; rows: { label: string; values: (number | string | undefined)[] }[] };
  /** Per stage: name, duration, skipped, one-line summary. */
  stages: { name: string; seconds: number; skipped: boolean; summary: string }[];
  notes: string[];
  charts: Chart[];
  config: unknown;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function formatCell(v: number | string | undefined): string {
  if (v === undefined) return '–';
  if (typeof v === 'number') return `${(100 * v).toFixed(1)}%`;
  return v;
}

/** A line chart as an SVG string. */
export function svgLineChart(chart: Chart, width = 560, height = 300): string {
  const m = { l: 56, r: 12, t: 28, b: 40 };
  const pts = chart.series.flatMap((s) => s.points);
  if (pts.length === 0)
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="60"><text x="8" y="30">${esc(chart.title)}: no data</text></svg>`;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (y: number) => height - m.b - ((y - y0) / (y1 - y0)) * (height - m.t - m.b);
  const ticks = (a: number, b: number) => [0, 0.25, 0.5, 0.75, 1].map((f) => a + f * (b - a));
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13">${esc(chart.title)}</text>`,
    `<rect x="${m.l}" y="${m.t}" width="${width - m.l - m.r}" height="${height - m.t - m.b}" fill="none" stroke="#999"/>`,
  ];
  for (const t of ticks(y0, y1))
    parts.push(
      `<text x="${m.l - 4}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text><line x1="${m.l}" x2="${width - m.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`,
    );
  for (const t of ticks(x0, x1)) parts.push(`<text x="${X(t)}" y="${height - m.b + 14}" text-anchor="middle">${fmt(t)}</text>`);
  parts.push(`<text x="${width / 2}" y="${height - 6}" text-anchor="middle">${esc(chart.xLabel)}</text>`);
  parts.push(`<text x="12" y="${height / 2}" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">${esc(chart.yLabel)}</text>`);
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.points.length > 0) {
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ')}"/>`,
      );
      if (s.points.length < 30) for (const p of s.points) parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    parts.push(
      `<rect x="${m.l + 8}" y="${m.t + 6 + i * 14}" width="10" height="3" fill="${color}"/><text x="${m.l + 22}" y="${m.t + 10 + i * 14}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

export function renderMarkdown(r: ReportInput, chartFiles: string[]): string {
  const lines = [`# ${r.title}`, '', '## Results (test accuracy)', ''];
  lines.push(`| | ${r.results.columns.join(' | ')} |`, `|---|${r.results.columns.map(() => '---').join('|')}|`);
  for (const row of r.results.rows) lines.push(`| ${row.label} | ${row.values.map(formatCell).join(' | ')} |`);
  lines.push('', '## Stages', '', '| stage | time | summary |', '|---|---|---|');
  for (const s of r.stages) lines.push(`| ${s.name} | ${s.skipped ? 'reused' : `${s.seconds.toFixed(1)} s`} | ${s.summary} |`);
  if (r.notes.length) lines.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  if (chartFiles.length) lines.push('', '## Curves', '', ...chartFiles.map((f) => `![${f}](${f})`));
  lines.push('', '## Configuration', '', '```json', JSON.stringify(r.config, null, 2), '```', '');
  return lines.join('\n');
}

export function renderHtml(r: ReportInput): string {
  const table = [
    '<table><tr><th></th>' + r.results.columns.map((c) => `<th>${esc(c)}</th>`).join('') + '</tr>',
    ...r.results.rows.map((row) => `<tr><th>${esc(row.label)}</th>${row.values.map((v) => `<td>${esc(formatCell(v))}</td>`).join('')}</tr>`),
    '</table>',
  ].join('\n');
  const stages = [
    '<table><tr><th>stage</th><th>time</th><th>summary</th></tr>',
    ...r.stages.map((s) => `<tr><td>${esc(s.name)}</td><td>${s.skipped ? 'reused' : `${s.seconds.toFixed(1)} s`}</td><td>${esc(s.summary)}</td></tr>`),
    '</table>',
  ].join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto}.charts svg{margin:6px}</style>
</head><body><h1>${esc(r.title)}</h1><h2>Results (test accuracy)</h2>${table}<h2>Stages</h2>${stages}
${r.notes.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<h2>Curves</h2><div class="charts">${r.charts.map((c) => svgLineChart(c)).join('\n')}</div>
<h2>Configuration</h2><pre>${esc(JSON.stringify(r.config, null, 2))}</pre></body></html>
`;
}

/** Writes report.md, report.html and one SVG per chart into dir; returns the HTML path. */
export function writeReport(dir: string, r: ReportInput): { markdown: string; html: string } {
  const chartFiles = r.charts.map((c, i) => {
    const f = `chart-${i + 1}.svg`;
    writeFileSync(join(dir, f), svgLineChart(c));
    return f;
  });
  const markdown = join(dir, 'report.md');
  const html = join(dir, 'report.html');
  writeFileSync(markdown, renderMarkdown(r, chartFiles));
  writeFileSync(html, renderHtml(r));
  return { markdown, html };
}
