/**
 * Rows that must share a batch. Step-by-step trains a rationale's `[label]` and `[rationale]`
 * rows together (as the authors' collator does), MCC-KD needs a question's rationales in one
 * micro-batch (its consistency term compares them). Rows with the same `group` form one unit;
 * the batch stream shuffles, buckets and batches units, so per_device_train_batch_size counts
 * groups (questions), each bringing its rows. Rows without a group are units of one: data
 * without groups batches exactly as before.
 *
 * What a drawn batch becomes is the row objective's business: plain CE (one micro-batch),
 * step-by-step (one micro-batch per task, CE weights for per-task means over the step) or
 * MCC-KD (one micro-batch with answer-position pairs weighted over the step).
 */
import { collate, type CollatedBatch } from './batches.js';
import type { TokenizedExample } from './data.js';

/** Dataset positions of every unit, in order of first appearance of its group. */
export function exampleUnits(examples: readonly TokenizedExample[]): number[][] {
  const units: number[][] = [];
  const byGroup = new Map<string, number[]>();
  for (const e of examples) {
    const g = e.example.group;
    if (g === undefined) {
      units.push([e.index]);
      continue;
    }
    let unit = byGroup.get(g);
    if (!unit) {
      unit = [];
      byGroup.set(g, unit);
      units.push(unit);
    }
    unit.push(e.index);
  }
  return units;
}

/** A unit's length for bucketing: the sum of its rows' source + target tokens. */
export function unitLength(unit: readonly number[], examples: readonly TokenizedExample[]): number {
  return unit.reduce((n, i) => n + examples[i]!.sourceIds.length + examples[i]!.targetIds.length, 0);
}

/** How one drawn batch of rows becomes micro-batches, and the weights that need the whole step. */
export interface RowObjective {
  /** The micro-batches of one drawn batch (its units' rows, in order). */
  collate(rows: readonly TokenizedExample[]): CollatedBatch[];
  /** Sets the weights that depend on the step's totals (tokens, questions) on its micro-batches. */
  weigh(batches: CollatedBatch[]): void;
}

/** Rows to one padded micro-batch: lib/train/batches.ts's collate (seq2seq) or collateCausal (decoder-only). */
export type CollateRows = (rows: readonly TokenizedExample[], padId: number) => CollatedBatch;

/** Plain rows: one micro-batch per drawn batch, nothing to weigh. */
export function plainObjective(padId: number, collateRows: CollateRows = collate): RowObjective {
  return { collate: (rows) => [collateRows(rows, padId)], weigh: () => undefined };
}

/** Target tokens of a micro-batch (labels that are not -100). */
export function targetTokens(b: CollatedBatch): number {
  let n = 0;
  for (const v of b.labels.data) if (v !== -100) n++;
  return n;
}
