/**
 * One optimizer step, recorded once. The native step result carries the numbers; `StepLog` is the
 * record the trainer keeps (onStep, TrainResult.steps) and the two on-disk shapes are derived from
 * it through one column table: the metrics.jsonl row (snake_case, as the file has always had) and
 * the trainer_state.json log_history entry (a subset, as in HF's trainer_state).
 */
import type { LogEntry } from './checkpoints.js';
import type { StepResult } from './engine.js';

/** The step's numbers as the native step returns them. */
type NativeStepFields = Pick<StepResult, 'step' | 'loss' | 'ce' | 'kl' | 'consistency' | 'lr' | 'gradNorm' | 'tokens' | 'sourceTokens'>;

export interface StepLog extends NativeStepFields {
  /** Epoch of the stream position the step's batches were drawn from. */
  epoch: number;
  /** (source + target tokens) per second of wall time of this step. */
  tokensPerSecond: number;
  /** Wall time of the step (the native call and its batching). */
  seconds: number;
}

/** StepLog field -> metrics.jsonl column, in the file's column order. */
const METRICS_COLUMNS = {
  step: 'step',
  epoch: 'epoch',
  loss: 'loss',
  ce: 'ce',
  kl: 'kl',
  consistency: 'consistency',
  lr: 'lr',
  gradNorm: 'grad_norm',
  tokens: 'tokens',
  sourceTokens: 'source_tokens',
  tokensPerSecond: 'tokens_per_s',
  seconds: 'step_seconds',
} as const satisfies Record<keyof StepLog, string>;

/** The fields a trainer_state log_history entry keeps. */
const HISTORY_FIELDS = ['step', 'loss', 'lr', 'gradNorm'] as const satisfies readonly (keyof StepLog)[];

/** The step record from the native result and the wall time around it. */
export function stepLog(r: StepResult, epoch: number, seconds: number): StepLog {
  return {
    step: r.step,
    epoch,
    loss: r.loss,
    ce: r.ce,
    kl: r.kl,
    consistency: r.consistency,
    lr: r.lr,
    gradNorm: r.gradNorm,
    tokens: r.tokens,
    sourceTokens: r.sourceTokens,
    tokensPerSecond: (r.tokens + r.sourceTokens) / seconds,
    seconds,
  };
}

/** The metrics.jsonl row of a step. */
export function metricsRow(s: StepLog): Record<string, number> {
  const row: Record<string, number> = {};
  for (const [field, column] of Object.entries(METRICS_COLUMNS)) row[column] = s[field as keyof StepLog];
  return row;
}

/** The trainer_state.json log_history entry of a step. */
export function historyEntry(s: StepLog): LogEntry {
  const entry: LogEntry = { step: s.step };
  for (const field of HISTORY_FIELDS) entry[METRICS_COLUMNS[field]] = s[field];
  return entry;
}
