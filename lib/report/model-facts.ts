/**
 * What the report says about one trained model, read from its stage folders: size, optimizer
 * steps, tokens seen, wall time, where the final model is, its curves, its test predictions with a
 * faithfulness check, and a fixed sample of its rationales. Reads only; a missing file is "unknown",
 * never an error (a report of a partial or older run directory still renders).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { checkFaithfulness, summarizeFaithfulness, type FaithfulnessSummary } from '../eval/faithfulness.js';

export interface PredictionRow {
  id: string;
  question: string;
  answer: string;
  output: string;
  correct: boolean;
}

export interface SampledRationale extends PredictionRow {
  faithful: boolean;
  reasons: string[];
}

export interface ModelFacts {
  /** 'mentor' or the student's mode. */
  label: string;
  /** The training stage's name (its folder under stages/). */
  stage: string;
  /** The published HF model directory. */
  modelDir: string;
  parameters: number | null;
  examples: number;
  steps: number;
  /** Source and target tokens of every optimizer step (padding excluded), or null without metrics. */
  tokens: { source: number; target: number } | null;
  /** Wall time of the training stage in seconds. */
  trainSeconds: number;
  devAccuracy: number | null;
  test: { accuracy: number; correct: number; total: number } | null;
  faithfulness: FaithfulnessSummary | null;
  samples: SampledRationale[];
  /** Per optimizer step: cross-entropy and KD divergence. */
  loss: { step: number; ce: number; kl: number }[];
  /** Dev accuracy at each evaluation. */
  dev: [number, number][];
  withKd: boolean;
}

/** One metrics.jsonl row; a torn or foreign line (a kill mid-write) is no row rather than a SyntaxError. */
function parseRow(line: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function readRows(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(parseRow);
}

interface StepRow {
  step: number;
  loss: number;
  ce: number;
  kl: number;
  tokens: number;
  source_tokens: number;
}

/** Optimizer-step rows of a metrics.jsonl; a resumed run repeats steps: the last row of each counts. */
export function stepRows(metricsFile: string): StepRow[] {
  const byStep = new Map<number, StepRow>();
  for (const r of readRows(metricsFile)) {
    if (r.event === undefined && typeof r.step === 'number' && typeof r.loss === 'number') {
      byStep.set(r.step, {
        step: r.step,
        loss: r.loss,
        ce: typeof r.ce === 'number' ? r.ce : r.loss,
        kl: typeof r.kl === 'number' ? r.kl : 0,
        tokens: typeof r.tokens === 'number' ? r.tokens : 0,
        source_tokens: typeof r.source_tokens === 'number' ? r.source_tokens : 0,
      });
    }
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Dev accuracy per evaluated step from a metrics.jsonl. */
export function devRows(metricsFile: string): [number, number][] {
  const pts = new Map<number, number>();
  for (const r of readRows(metricsFile)) if (typeof r.step === 'number' && typeof r.eval_accuracy === 'number') pts.set(r.step, r.eval_accuracy);
  return [...pts.entries()].sort((a, b) => a[0] - b[0]);
}

/** Parameter count from a safetensors header (8-byte little-endian length, then JSON): no tensor is read. */
export function countParameters(file: string): number | null {
  if (!existsSync(file)) return null;
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return null;
    const n = Number(head.readBigUInt64LE(0));
    if (n <= 0 || n > Math.min(100 * 2 ** 20, statSync(file).size - 8)) return null;
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, { shape?: number[] }>;
    let total = 0;
    for (const [name, t] of Object.entries(header)) if (name !== '__metadata__' && Array.isArray(t.shape)) total += t.shape.reduce((a, b) => a * b, 1);
    return total;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The test predictions of an evaluate stage (`predictions.jsonl`: one line per batch of rows). */
export function readPredictions(file: string): PredictionRow[] {
  return readRows(file).flatMap((line) =>
    Array.isArray(line.rows)
      ? (line.rows as Record<string, unknown>[]).map((r) => ({
          id: String(r.id),
          question: String(r.question ?? ''),
          answer: String(r.answer ?? ''),
          output: String(r.output ?? ''),
          correct: r.correct === true,
        }))
      : [],
  );
}

/**
 * `perKind` correct and `perKind` incorrect rationales, the first in one fixed order of the
 * questions (a hash of their ids): models that agree on a question show it side by side, and a
 * rebuild shows the same ones.
 */
export function sampleRationales(task: string, rows: readonly PredictionRow[], perKind = 5): SampledRationale[] {
  const rank = (id: string) => createHash('sha1').update(id).digest('hex');
  const ordered = [...rows].sort((a, b) => (rank(a.id) < rank(b.id) ? -1 : 1));
  const pick = (correct: boolean) => ordered.filter((r) => r.correct === correct).slice(0, perKind);
  return [...pick(true), ...pick(false)].map((r) => {
    const f = checkFaithfulness(task, r.question, r.output);
    return { ...r, faithful: f.faithful, reasons: f.reasons };
  });
}

export interface ModelSource {
  label: string;
  stage: string;
  /** The training stage folder (its manifest's summary has examples, steps, devAccuracy). */
  stageDir: string;
  modelDir: string;
  metricsFile: string;
  /** The evaluate stage's predictions.jsonl, when evaluated. */
  predictionsFile?: string;
  summary: { examples: number; steps: number; devAccuracy: number | null; seconds?: number; questionPrefix?: string };
  durationMs: number;
}

export function modelFacts(task: string, m: ModelSource, samplesPerKind = 5): ModelFacts {
  const steps = stepRows(m.metricsFile);
  const predictions = m.predictionsFile ? readPredictions(m.predictionsFile) : [];
  const correct = predictions.filter((r) => r.correct).length;
  return {
    label: m.label,
    stage: m.stage,
    modelDir: m.modelDir,
    parameters: countParameters(`${m.modelDir}/model.safetensors`),
    examples: m.summary.examples,
    steps: m.summary.steps,
    tokens: steps.length ? { source: steps.reduce((a, r) => a + r.source_tokens, 0), target: steps.reduce((a, r) => a + r.tokens, 0) } : null,
    trainSeconds: m.summary.seconds ?? m.durationMs / 1000,
    devAccuracy: m.summary.devAccuracy,
    test: predictions.length ? { accuracy: correct / predictions.length, correct, total: predictions.length } : null,
    // A model that answers without a rationale (step-by-step's label task) has none to check.
    faithfulness: predictions.length && !m.summary.questionPrefix ? summarizeFaithfulness(task, predictions) : null,
    samples: sampleRationales(task, predictions, samplesPerKind),
    loss: steps.map((r) => ({ step: r.step, ce: r.ce, kl: r.kl })),
    dev: devRows(m.metricsFile),
    withKd: steps.some((r) => r.kl > 0), // trained with the KD term (models without it log KL 0)
  };
}
