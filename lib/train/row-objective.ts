/**
 * Which row objective a training run uses (lib/train/example-groups.ts): step-by-step's per-task
 * means when train() is given taskWeights, MCC-KD's consistency pairs when given consistency,
 * plain CE otherwise. A decoder-only student collates its rows as one sequence each
 * (collateCausal); MCC-KD's answer positions are a seq2seq decoder's, so it needs a T5 student.
 */
import type { Tokenizer } from '../model/tokenizer.js';
import { collate, collateCausal } from './batches.js';
import { plainObjective, type RowObjective } from './example-groups.js';
import { mccKdObjective } from './mcc-kd.js';
import { stepByStepObjective } from './step-by-step.js';

export interface RowObjectiveOptions {
  /** Step-by-step: each task's CE averaged over its own tokens, weighted (lib/train/step-by-step.ts). */
  taskWeights?: Readonly<Record<string, number>>;
  /** MCC-KD: α of the answer-consistency term (lib/train/mcc-kd.ts). */
  consistency?: { weight: number };
}

export function rowObjective(o: RowObjectiveOptions, tokenizer: Pick<Tokenizer, 'padId' | 'eosId' | 'encode'>, causal = false): RowObjective {
  if (o.taskWeights && o.consistency) throw new Error('train: give taskWeights (step-by-step) or consistency (MCC-KD), not both');
  const collateRows = causal ? collateCausal : collate;
  if (o.taskWeights) return stepByStepObjective(tokenizer.padId, o.taskWeights, collateRows);
  if (o.consistency) {
    if (causal) throw new Error("train: consistency (MCC-KD) needs a T5 student: its answer positions are a seq2seq decoder's");
    return mccKdObjective(tokenizer.padId, tokenizer, o.consistency.weight);
  }
  return plainObjective(tokenizer.padId, collateRows);
}
