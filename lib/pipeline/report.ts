/**
 * The report is its own concept in lib/report/ (documents, charts, per-model facts); the pipeline
 * and the sweep import it from here.
 */
export { formatCell, renderHtml, renderMarkdown, writeReport, type ReportInput } from '../report/document.js';
export type { Chart, ChartSpec } from '../report/charts.js';
