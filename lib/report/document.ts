/**
 * The run report as two documents from one input: `report.md` (charts beside it as SVG files) and
 * a self-contained `report.html` (charts inlined as SVG: no scripts, no network). Per model it
 * says what a user decides on: accuracy against the chance line, how faithful the rationales are,
 * size, steps, tokens, time and where the final model is, with a fixed sample of rationales marked
 * correct/incorrect and faithful or not.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChanceLine } from './chance.js';
import { renderSvg, seriesChart, type Chart, type ChartSpec } from './charts.js';
import type { ModelFacts, SampledRationale } from './model-facts.js';
import type { TeacherUsage } from './teacher-usage.js';

export interface ReportInput {
  title: string;
  /** One line under the title (task, run directory). */
  subtitle?: string;
  /** Per trained model (mentor first), when the report is a run's. */
  models?: readonly ModelFacts[];
  chance?: ChanceLine | null;
  teacher?: TeacherUsage | null;
  /** A free table: row label → column values (accuracy in [0,1] or text), e.g. the sweep's cells. */
  results?: { columns: string[]; rows: { label: string; values: (number | string | undefined)[] }[] };
  /** Per stage: name, duration, reused, one-line summary. */
  stages: { name: string; seconds: number; skipped: boolean; summary: string }[];
  notes: string[];
  charts: readonly (Chart | ChartSpec)[];
  config: unknown;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n+/g, ' ');

export function formatCell(v: number | string | undefined): string {
  if (v === undefined) return '–';
  if (typeof v === 'number') return Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '–';
  return v;
}

const pct = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(1)}%`);

/** 1234567 → "1.23M", 45210 → "45.2k". */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)}B`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)}k`;
  return String(n);
}

/** 95.2 → "1 min 35 s", 7.25 → "7.3 s", 5400 → "1 h 30 min". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '–';
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

const isSpec = (c: Chart | ChartSpec): c is ChartSpec => 'spec' in c;
const specOf = (c: Chart | ChartSpec, i: number): ChartSpec => (isSpec(c) ? c : seriesChart(c, `chart-${i + 1}`));

interface ModelRow {
  label: string;
  cells: string[];
}

const MODEL_COLUMNS = [
  'test accuracy',
  'faithful rationales',
  'names only from the question',
  'best dev accuracy',
  'parameters',
  'optimizer steps',
  'tokens seen',
  'training time',
  'final model',
];

function modelRows(models: readonly ModelFacts[]): ModelRow[] {
  return models.map((m) => ({
    label: m.label,
    cells: [
      m.test ? `${pct(m.test.accuracy)} (${m.test.correct}/${m.test.total})` : 'not evaluated',
      pct(m.faithfulness?.faithful),
      pct(m.faithfulness?.byCheck.entities),
      pct(m.devAccuracy),
      formatCount(m.parameters),
      m.steps.toLocaleString('en-US'),
      m.tokens ? formatCount(m.tokens.source + m.tokens.target) : '–',
      formatSeconds(m.trainSeconds),
      m.modelDir,
    ],
  }));
}

function chanceText(c: ChanceLine): string {
  const parts = [];
  if (c.majority) parts.push(`always "${c.majority.answer}" (the training set's most frequent answer) scores ${pct(c.majority.accuracy)} on the test set`);
  if (c.random !== null) parts.push(`a random answer ${pct(c.random)}`);
  return `Chance: ${parts.join('; ')}.`;
}

function teacherText(t: TeacherUsage): string {
  const cost =
    t.costUsd !== null
      ? `$${t.costUsd.toFixed(t.costUsd < 1 ? 4 : 2)} at list price ($${t.pricing!.inputPerMillion} / $${t.pricing!.outputPerMillion} per million input / output tokens)`
      : `unknown (no list price known for ${t.model})`;
  return `${t.model}: ${t.requests.toLocaleString('en-US')} requests, ${t.promptTokens.toLocaleString('en-US')} prompt + ${t.completionTokens.toLocaleString('en-US')} completion tokens; cost ${cost}.`;
}

const FAITHFULNESS_NOTE =
  'Faithful: the rationale names only people/words of the question, its steps match the question, and its conclusion follows (lib/eval/faithfulness.ts). ' +
  '"Names only from the question" is the entity check alone.';

export function renderMarkdown(r: ReportInput, chartFiles: readonly { file: string; title: string }[]): string {
  const lines = [`# ${r.title}`, ''];
  if (r.subtitle) lines.push(r.subtitle, '');
  if (r.models?.length) {
    lines.push('## Models', '', `| model | ${MODEL_COLUMNS.join(' | ')} |`, `|---|${MODEL_COLUMNS.map(() => '---').join('|')}|`);
    for (const row of modelRows(r.models)) lines.push(`| ${row.label} | ${row.cells.map((c, i) => (i === 8 ? `\`${c}\`` : mdCell(c))).join(' | ')} |`);
    lines.push('');
    if (r.chance) lines.push(chanceText(r.chance), '');
    lines.push(FAITHFULNESS_NOTE, '');
  }
  if (r.teacher) lines.push('## Teacher', '', teacherText(r.teacher), '');
  if (r.results) {
    lines.push('## Results', '', `| | ${r.results.columns.join(' | ')} |`, `|---|${r.results.columns.map(() => '---').join('|')}|`);
    for (const row of r.results.rows) lines.push(`| ${row.label} | ${row.values.map(formatCell).join(' | ')} |`);
    lines.push('');
  }
  if (chartFiles.length) lines.push('## Charts', '', ...chartFiles.map((f) => `![${f.title}](${f.file})`), '');
  if (r.models?.some((m) => m.samples.length)) {
    lines.push(
      '## Sample rationales',
      '',
      'Test questions in one fixed order (a hash of their ids), the same for every model: each model’s first 5 answered correctly, then its first 5 answered wrong.',
      '',
    );
    for (const m of r.models) {
      if (!m.samples.length) continue;
      lines.push(`### ${m.label}`, '', '| | faithful | question | output | gold | why not faithful |', '|---|---|---|---|---|---|');
      for (const s of m.samples)
        lines.push(
          `| ${s.correct ? '✓' : '✗'} | ${s.faithful ? 'yes' : 'no'} | ${mdCell(s.question)} | ${mdCell(s.output)} | ${mdCell(s.answer)} | ${mdCell(s.reasons.join('; '))} |`,
        );
      lines.push('');
    }
  }
  if (r.stages.length) {
    lines.push('## Stages', '', '| stage | time | summary |', '|---|---|---|');
    for (const s of r.stages) lines.push(`| ${s.name} | ${s.skipped ? 'reused' : formatSeconds(s.seconds)} | ${mdCell(s.summary)} |`);
    lines.push('');
  }
  if (r.notes.length) lines.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  lines.push('## Configuration', '', '```json', JSON.stringify(r.config, null, 2), '```', '');
  return lines.join('\n');
}

function sampleHtml(s: SampledRationale): string {
  const mark = s.correct ? '<span class="ok">✓ correct</span>' : '<span class="bad">✗ incorrect</span>';
  const faith = s.faithful ? '<span class="ok">faithful</span>' : `<span class="warn">not faithful</span>: ${esc(s.reasons.join('; '))}`;
  return `<li><div class="q">${esc(s.question)}</div><div class="out">${esc(s.output)}</div><div class="meta">${mark} (gold: ${esc(s.answer)}) · ${faith}</div></li>`;
}

const CSS = `
body{font:15px/1.45 Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1.2em;color:#222}
h1{margin-bottom:.1em}.sub{color:#666;margin-top:0}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:14px}td,th{border:1px solid #ddd;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}td.path{font:12px monospace;word-break:break-all;max-width:260px}
.note{color:#555;font-size:13.5px}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
ul.samples{list-style:none;padding:0}ul.samples li{border:1px solid #e3e3e3;border-radius:4px;padding:.5em .8em;margin:.5em 0}
.q{color:#555;font-size:13px}.out{font:13px/1.4 monospace;margin:.3em 0;white-space:pre-wrap}.meta{font-size:13px}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.warn{color:#9a6700;font-weight:600}
details summary{cursor:pointer;font-weight:600;margin:.4em 0}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}`;

export function renderHtml(r: ReportInput, charts: readonly { title: string; svg: string }[]): string {
  const parts: string[] = [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title><style>${CSS}</style></head><body>`,
    `<h1>${esc(r.title)}</h1>`,
  ];
  if (r.subtitle) parts.push(`<p class="sub">${esc(r.subtitle)}</p>`);
  if (r.models?.length) {
    const numeric = new Set([0, 1, 2, 3, 4, 5, 6, 7]);
    parts.push(
      '<h2>Models</h2><table><tr><th>model</th>' + MODEL_COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('') + '</tr>',
      ...modelRows(r.models).map(
        (row) => `<tr><th>${esc(row.label)}</th>${row.cells.map((c, i) => `<td class="${numeric.has(i) ? 'num' : 'path'}">${esc(c)}</td>`).join('')}</tr>`,
      ),
      '</table>',
    );
    if (r.chance) parts.push(`<p>${esc(chanceText(r.chance))}</p>`);
    parts.push(`<p class="note">${esc(FAITHFULNESS_NOTE)}</p>`);
  }
  if (r.teacher) parts.push(`<h2>Teacher</h2><p>${esc(teacherText(r.teacher))}</p>`);
  if (r.results) {
    parts.push(
      '<h2>Results</h2><table><tr><th></th>' + r.results.columns.map((c) => `<th>${esc(c)}</th>`).join('') + '</tr>',
      ...r.results.rows.map((row) => `<tr><th>${esc(row.label)}</th>${row.values.map((v) => `<td class="num">${esc(formatCell(v))}</td>`).join('')}</tr>`),
      '</table>',
    );
  }
  if (charts.length) {
    parts.push('<h2>Charts</h2>');
    for (const c of charts) parts.push(`<figure aria-label="${esc(c.title)}">${c.svg.replace(/^<\?xml[^>]*\?>\s*/, '')}</figure>`);
  }
  if (r.models?.some((m) => m.samples.length)) {
    parts.push(
      '<h2>Sample rationales</h2><p class="note">Test questions in one fixed order (a hash of their ids), the same for every model: each model’s first 5 answered correctly, then its first 5 answered wrong.</p>',
    );
    for (const m of r.models) {
      if (!m.samples.length) continue;
      const nFaithful = m.samples.filter((s) => s.faithful).length;
      parts.push(
        `<details${m === r.models[r.models.length - 1] ? ' open' : ''}><summary>${esc(m.label)} — ${m.samples.filter((s) => s.correct).length} correct, ${m.samples.filter((s) => !s.correct).length} incorrect; ${nFaithful} of ${m.samples.length} faithful</summary><ul class="samples">${m.samples.map(sampleHtml).join('')}</ul></details>`,
      );
    }
  }
  if (r.stages.length) {
    parts.push(
      '<h2>Stages</h2><table><tr><th>stage</th><th>time</th><th>summary</th></tr>',
      ...r.stages.map(
        (s) => `<tr><td>${esc(s.name)}</td><td class="num">${s.skipped ? 'reused' : formatSeconds(s.seconds)}</td><td>${esc(s.summary)}</td></tr>`,
      ),
      '</table>',
    );
  }
  if (r.notes.length) parts.push(`<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  parts.push(
    `<h2>Configuration</h2><details><summary>config.json</summary><pre>${esc(JSON.stringify(r.config, null, 2))}</pre></details>`,
    '</body></html>',
    '',
  );
  return parts.join('\n');
}

/** Writes report.md, report.html and one SVG per chart into dir; returns the two documents' paths. */
export async function writeReport(dir: string, r: ReportInput): Promise<{ markdown: string; html: string }> {
  const specs = r.charts.map(specOf);
  const rendered: { file: string; title: string; svg: string }[] = [];
  for (const c of specs) {
    const svg = await renderSvg(c.spec);
    writeFileSync(join(dir, `${c.name}.svg`), svg);
    rendered.push({ file: `${c.name}.svg`, title: c.title, svg });
  }
  const markdown = join(dir, 'report.md');
  const html = join(dir, 'report.html');
  writeFileSync(markdown, renderMarkdown(r, rendered));
  writeFileSync(html, renderHtml(r, rendered));
  return { markdown, html };
}
