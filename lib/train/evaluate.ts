/**
 * Dev-set evaluation: batched greedy generation, answer extraction, accuracy. The trainer picks
 * its best checkpoint from this on the dev split; the test split is never passed in here.
 */
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { padBatch, rowsOf } from '../model/tensor.js';
import type { TokenizedExample } from './data.js';

export interface EvaluateOptions {
  batchSize?: number;
  maxNewTokens?: number;
  /** From generated text to an answer (default: the trimmed text). E.g. lib/tasks' extractAnswer. */
  extractAnswer?: (text: string) => string | undefined;
  /** Compares an extracted answer with the gold one (default: equal after trimming). */
  isCorrect?: (prediction: string | undefined, gold: string) => boolean;
  /** Called after each batch with the number of examples done. */
  onProgress?: (done: number, total: number) => void;
}

export interface Prediction {
  index: number;
  text: string;
  answer: string | undefined;
  gold: string;
  correct: boolean;
}

export interface EvaluationResult {
  accuracy: number;
  correct: number;
  total: number;
  predictions: Prediction[];
  seconds: number;
}

const defaultExtract = (text: string): string => text.trim();
const defaultIsCorrect = (prediction: string | undefined, gold: string): boolean => prediction !== undefined && prediction.trim() === gold.trim();

export async function evaluateGreedy(
  model: T5Model,
  tokenizer: Tokenizer,
  examples: readonly TokenizedExample[],
  options: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const t0 = performance.now();
  const batchSize = options.batchSize ?? 32;
  const maxNewTokens = options.maxNewTokens ?? 128;
  const extract = options.extractAnswer ?? defaultExtract;
  const isCorrect = options.isCorrect ?? defaultIsCorrect;
  if (examples.length === 0) return { accuracy: 0, correct: 0, total: 0, predictions: [], seconds: 0 };
  // Similar lengths together: less padding, fewer wasted decoder steps.
  const order = examples.map((e, i) => i).sort((a, b) => examples[a]!.sourceIds.length - examples[b]!.sourceIds.length);
  const predictions: Prediction[] = new Array(examples.length);
  let done = 0;
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize).map((i) => examples[i]!);
    const { ids, mask } = padBatch(
      rows.map((r) => r.sourceIds),
      tokenizer.padId,
    );
    const out = await model.generate({ inputIds: ids, attentionMask: mask }, { maxNewTokens });
    rowsOf(out).forEach((generated, j) => {
      const ex = rows[j]!;
      const text = tokenizer.decode(generated.slice(1));
      const answer = extract(text);
      const gold = ex.example.answer ?? ex.example.target;
      predictions[order[start + j]!] = { index: ex.index, text, answer, gold, correct: isCorrect(answer, gold) };
    });
    done += rows.length;
    options.onProgress?.(done, examples.length);
  }
  const correct = predictions.filter((p) => p.correct).length;
  return { accuracy: correct / examples.length, correct, total: examples.length, predictions, seconds: (performance.now() - t0) / 1000 };
}
