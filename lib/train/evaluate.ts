/**
 * Dev-set evaluation: batched greedy generation, answer extraction, accuracy. The trainer picks
 * its best checkpoint from this on the dev split; the test split is never passed in here.
 */
import { CausalLM } from '../model/causal-model.js';
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { padBatch, rowsOf, tensor, type Tensor } from '../model/tensor.js';
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

/**
 * A CausalLM's examples are tokenizeCausalDataset's (sourceIds = the prompt): it generates from the
 * LEFT-padded prompts and the text is the new tokens up to the first EOS.
 */
export async function evaluateGreedy(
  model: T5Model | CausalLM,
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
    const causal = model instanceof CausalLM;
    const { ids, mask } = causal
      ? leftPad(
          rows.map((r) => r.sourceIds),
          tokenizer.padId,
        )
      : padBatch(
          rows.map((r) => r.sourceIds),
          tokenizer.padId,
        );
    const out = await model.generate({ inputIds: ids, attentionMask: mask }, { maxNewTokens });
    rowsOf(out).forEach((generated, j) => {
      const ex = rows[j]!;
      const fresh = generated.slice(causal ? ids.shape[1]! : 1);
      const eos = causal ? fresh.indexOf(tokenizer.eosId) : -1;
      const text = tokenizer.decode(eos >= 0 ? fresh.slice(0, eos) : fresh);
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

/** Rows LEFT-padded to the longest (decoder-only prompts end where generation starts). */
function leftPad(rows: readonly (readonly number[])[], padId: number): { ids: Tensor<Int32Array>; mask: Tensor<Int32Array> } {
  const L = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * L).fill(padId);
  const mask = new Int32Array(rows.length * L);
  rows.forEach((r, i) => {
    ids.set(r, (i + 1) * L - r.length);
    mask.fill(1, (i + 1) * L - r.length, (i + 1) * L);
  });
  return { ids: tensor(ids, [rows.length, L]), mask: tensor(mask, [rows.length, L]) };
}

/**
 * Steps between checkpoints (each one a dev evaluation, a chance to become the best checkpoint)
 * from `save_steps`: an integer N ≥ 1 is every N steps; a ratio in (0, 1) is that share of the run,
 * rounded up as HF TrainingArguments does (`0.1`: every ⌈total/10⌉ steps, so about ten evaluations
 * whatever the run's length); 0 is none but the last. The run's last step is always saved and
 * evaluated too.
 */
export function saveInterval(saveSteps: number, totalSteps: number): number {
  if (!(saveSteps >= 0) || (saveSteps >= 1 && !Number.isInteger(saveSteps)))
    throw new Error(`save_steps must be a non-negative integer or a ratio in (0, 1) of the run's steps, got ${saveSteps}`);
  if (saveSteps === 0) return 0;
  return saveSteps >= 1 ? saveSteps : Math.max(1, Math.ceil(totalSteps * saveSteps));
}

/** The steps at which a run of `totalSteps` saves a checkpoint and evaluates it on dev (ascending; the last is `totalSteps`). */
export function evaluationSteps(saveSteps: number, totalSteps: number): number[] {
  const every = saveInterval(saveSteps, totalSteps);
  const out: number[] = [];
  if (every > 0) for (let s = every; s < totalSteps; s += every) out.push(s);
  if (totalSteps > 0) out.push(totalSteps);
  return out;
}
