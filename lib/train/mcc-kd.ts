/**
 * MCC-KD (Chen et al., "MCC-KD: Multi-CoT Consistent Knowledge Distillation", Findings of EMNLP
 * 2023, arXiv 2310.14747): several rationales per question, each trained with CE, plus a
 * consistency term between the student's answer distributions after different rationales of the
 * same question:
 *
 *   L = CE + α·L_cons,   L_cons = mean_q mean_{(a,b) ∈ pairs(q)} mean_j ½[KL(p_a,j ‖ p_b,j) + KL(p_b,j ‖ p_a,j)]
 *
 * with p_r,j the student's softmax (τ = 1) at the j-th answer token of row r (teacher-forced, the
 * same answer tokens after each rationale). As in the authors' code (homzer/MCC-KD, train_mcc.py
 * and src/utils.py kl_div_loss): the answer span is the answer's tokens (found at the end of each
 * target, before EOS), positions are averaged within a pair, pairs are averaged over the batch's
 * questions, and the default α is their 0.1. Two choices of ours: every pair of a question's
 * rationales in the batch (the authors draw one random pair of two per step: the same in
 * expectation), and CE as the project's token mean over the step (theirs: a mean of per-sequence
 * means). A row whose target does not end with the answer (truncated) takes part in CE only.
 *
 * The native step (native/train/consistency.h) gets the pairs as flattened label positions with a
 * weight each, α·N / (Q·|pairs(q)|·L) for a step of N target tokens, Q questions with pairs and an
 * answer of L tokens: it divides the loss by N, which leaves α·L_cons.
 */
import { tensor } from '../model/tensor.js';
import { collate, type CollatedBatch } from './batches.js';
import type { TokenizedExample } from './data.js';
import { targetTokens, type RowObjective } from './example-groups.js';

/** Where the answer's tokens sit in a target: the span just before the final EOS (or at the very end), or null when the target does not end with them. */
export function answerSpan(targetIds: readonly number[], answerIds: readonly number[], eosId: number): { start: number; length: number } | null {
  if (answerIds.length === 0) return null;
  const end = targetIds.length > 0 && targetIds[targetIds.length - 1] === eosId ? targetIds.length - 1 : targetIds.length;
  const start = end - answerIds.length;
  if (start < 0) return null;
  for (let j = 0; j < answerIds.length; j++) if (targetIds[start + j] !== answerIds[j]) return null;
  return { start, length: answerIds.length };
}

/** A question's answer-token pairs in one micro-batch, before the step's weights are known. */
interface PendingPairs {
  a: number[];
  b: number[];
  /** Per pair-position: 1 / (|pairs(q)|·L), the question's own averaging. */
  share: number[];
  questions: number;
}

export interface MccKdTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  readonly eosId: number;
}

/**
 * One micro-batch per drawn batch (a question's rationales are one unit, so they share it) with
 * the pairs of every question that has two or more rows ending with the answer; weigh() sets the
 * pair weights from the step's totals.
 */
export function mccKdObjective(padId: number, tokenizer: MccKdTokenizer, consistencyWeight: number): RowObjective {
  if (!(Number.isFinite(consistencyWeight) && consistencyWeight >= 0))
    throw new Error(`consistency.weight must be a finite number >= 0, got ${consistencyWeight}`);
  const answerIds = new Map<string, number[]>();
  const idsOf = (text: string) => {
    let ids = answerIds.get(text);
    if (!ids) answerIds.set(text, (ids = tokenizer.encode(text, { addSpecialTokens: false })));
    return ids;
  };
  const pending = new WeakMap<CollatedBatch, PendingPairs>();
  return {
    collate(rows: readonly TokenizedExample[]): CollatedBatch[] {
      const batch = collate(rows, padId);
      const T = batch.labels.shape[1]!;
      const groups = new Map<string, { row: number; start: number; length: number }[]>();
      rows.forEach((r, row) => {
        const { group, consistencyAnswer } = r.example;
        if (group === undefined || consistencyAnswer === undefined) return;
        const span = answerSpan(r.targetIds, idsOf(consistencyAnswer), tokenizer.eosId);
        if (!span) return;
        let list = groups.get(group);
        if (!list) groups.set(group, (list = []));
        list.push({ row, ...span });
      });
      const p: PendingPairs = { a: [], b: [], share: [], questions: 0 };
      for (const spans of groups.values()) {
        const pairs: [number, number][] = [];
        for (let i = 0; i < spans.length; i++) for (let k = i + 1; k < spans.length; k++) if (spans[i]!.length === spans[k]!.length) pairs.push([i, k]);
        if (!pairs.length) continue;
        p.questions++;
        for (const [i, k] of pairs) {
          const x = spans[i]!;
          const y = spans[k]!;
          for (let j = 0; j < x.length; j++) {
            p.a.push(x.row * T + x.start + j);
            p.b.push(y.row * T + y.start + j);
            p.share.push(1 / (pairs.length * x.length));
          }
        }
      }
      if (p.questions > 0) pending.set(batch, p);
      return [batch];
    },
    weigh(batches: CollatedBatch[]): void {
      const tokens = batches.reduce((n, b) => n + targetTokens(b), 0);
      const questions = batches.reduce((n, b) => n + (pending.get(b)?.questions ?? 0), 0);
      for (const b of batches) {
        const p = pending.get(b);
        if (!p) continue;
        const scale = (consistencyWeight * tokens) / questions;
        b.consistency = {
          a: tensor(Int32Array.from(p.a), [p.a.length]),
          b: tensor(Int32Array.from(p.b), [p.b.length]),
          weight: tensor(
            Float64Array.from(p.share, (s) => s * scale),
            [p.share.length],
          ),
        };
      }
    },
  };
}
