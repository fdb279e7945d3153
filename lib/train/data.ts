/**
 * Examples to token ids: tokenisation with the model's tokenizer, truncation to the maximum
 * source / target lengths (counted, so a run can report how much it cut), and a fingerprint of
 * the result that checkpoints and soft-label caches are tied to.
 */
import { createHash } from 'node:crypto';
import type { Tokenizer } from '../model/tokenizer.js';
import type { PromptFormat, PromptFormatRecord } from '../model/chat-template.js';

export interface Seq2SeqExample {
  /** Model input text. */
  source: string;
  /** Target text the model learns to produce (rationale and answer, or the answer alone). */
  target: string;
  /** Gold answer for evaluation (default: the target). */
  answer?: string;
  id?: string;
  /**
   * Rows sharing a group (one question's rows) are drawn into the same batch: a batch holds
   * per_device_train_batch_size groups (lib/train/example-groups.ts). Step-by-step's two task
   * rows of a rationale, MCC-KD's rationales of a question.
   */
  group?: string;
  /** The task the row belongs to (step-by-step's `label` / `rationale`): its CE is averaged per task (train's taskWeights). */
  task?: string;
  /** MCC-KD: the answer text that ends the target; its tokens are where the consistency term compares the group's rows. */
  consistencyAnswer?: string;
}

export interface TokenizedExample {
  /** Position in the dataset: the soft-label cache's example id. */
  index: number;
  sourceIds: number[];
  targetIds: number[];
  sourceTruncated: boolean;
  targetTruncated: boolean;
  example: Seq2SeqExample;
}

export interface TruncationReport {
  examples: number;
  sourceTruncated: number;
  targetTruncated: number;
  /** Target tokens dropped by truncation, over all examples. */
  targetTokensDropped: number;
  maxSourceLength: number;
  maxTargetLength: number;
}

export interface TokenizedDataset {
  name: string;
  examples: TokenizedExample[];
  truncation: TruncationReport;
  /** sha256 over the token ids: the same data, tokenizer and lengths give the same value. */
  fingerprint: string;
}

export interface TokenizeOptions {
  maxSourceLength: number;
  maxTargetLength: number;
  /** Names the dataset in errors ("train", "dev"). */
  name?: string;
  /** Throw on an empty dataset (default true). */
  requireNonEmpty?: boolean;
}

/** Cuts to max tokens, keeping the final EOS as the tokenizer does (T5 sequences end in </s>). */
function truncate(ids: number[], max: number, eosId: number): { ids: number[]; truncated: boolean } {
  if (ids.length <= max) return { ids, truncated: false };
  const cut = ids.slice(0, max);
  if (ids[ids.length - 1] === eosId) cut[max - 1] = eosId;
  return { ids: cut, truncated: true };
}

/** One example's encoded source and target; `targetFull` is the target's length before truncation. */
interface EncodedPair {
  source: { ids: number[]; truncated: boolean };
  target: { ids: number[]; truncated: boolean };
  targetFull: number;
}

/**
 * The checks, truncation report and fingerprint both families share: `header` starts the hash (what
 * else the ids depend on), `encode` turns one validated example into ids.
 */
function tokenizePairs(
  examples: readonly Seq2SeqExample[],
  options: TokenizeOptions,
  header: string,
  encode: (ex: Seq2SeqExample, index: number, name: string) => EncodedPair,
): TokenizedDataset {
  const name = options.name ?? 'dataset';
  const { maxSourceLength, maxTargetLength } = options;
  for (const [key, v] of [
    ['maxSourceLength', maxSourceLength],
    ['maxTargetLength', maxTargetLength],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: ${key} must be a positive integer, got ${v}`);
  }
  if (!Array.isArray(examples)) throw new Error(`${name}: examples must be an array of {source, target}`);
  if (examples.length === 0 && options.requireNonEmpty !== false) throw new Error(`${name}: the dataset is empty (0 examples); nothing to train on`);
  const hash = createHash('sha256');
  hash.update(header);
  const out: TokenizedExample[] = [];
  const report: TruncationReport = {
    examples: examples.length,
    sourceTruncated: 0,
    targetTruncated: 0,
    targetTokensDropped: 0,
    maxSourceLength,
    maxTargetLength,
  };
  examples.forEach((ex, index) => {
    if (!ex || typeof ex.source !== 'string' || typeof ex.target !== 'string') {
      throw new Error(`${name}[${index}]: needs string fields 'source' and 'target'`);
    }
    const { source: s, target: t, targetFull } = encode(ex, index, name);
    if (s.truncated) report.sourceTruncated++;
    if (t.truncated) {
      report.targetTruncated++;
      report.targetTokensDropped += targetFull - t.ids.length;
    }
    hash.update(Int32Array.from(s.ids));
    hash.update('|');
    hash.update(Int32Array.from(t.ids));
    hash.update('\n');
    out.push({ index, sourceIds: s.ids, targetIds: t.ids, sourceTruncated: s.truncated, targetTruncated: t.truncated, example: ex });
  });
  return { name, examples: out, truncation: report, fingerprint: hash.digest('hex') };
}

export function tokenizeDataset(examples: readonly Seq2SeqExample[], tokenizer: Tokenizer, options: TokenizeOptions): TokenizedDataset {
  const { maxSourceLength, maxTargetLength } = options;
  return tokenizePairs(examples, options, `${maxSourceLength}/${maxTargetLength}\n`, (ex, index, name) => {
    const fullSource = tokenizer.encode(ex.source);
    const fullTarget = tokenizer.encode(ex.target);
    if (fullSource.length === 0) throw new Error(`${name}[${index}]: the source tokenizes to nothing`);
    return {
      source: truncate(fullSource, maxSourceLength, tokenizer.eosId),
      target: truncate(fullTarget, maxTargetLength, tokenizer.eosId),
      targetFull: fullTarget.length,
    };
  });
}

/** One line for logs: "train: 3 of 120 targets truncated to 64 tokens (41 tokens dropped); 0 sources truncated to 128". */
export function describeTruncation(name: string, r: TruncationReport): string {
  return (
    `${name}: ${r.targetTruncated} of ${r.examples} targets truncated to ${r.maxTargetLength} tokens (${r.targetTokensDropped} tokens dropped); ` +
    `${r.sourceTruncated} sources truncated to ${r.maxSourceLength}`
  );
}

// ---------------------------------------------------------------------------
// Decoder-only (causal) examples: one sequence, prompt + completion. Their TokenizedExample holds
// the prompt's ids as sourceIds and the completion's as targetIds (collateCausal joins them).

/** A tokenised causal dataset: examples as above, and how their prompts were formatted (for the run's record). */
export interface CausalTokenizedDataset extends TokenizedDataset {
  promptFormat: PromptFormatRecord;
}

export interface CausalTokenizeOptions extends TokenizeOptions {
  /** The model's chat template, or PromptFormat.plain() (PromptFormat.load(modelDir) picks). */
  promptFormat: PromptFormat;
}

/**
 * The prompt's token ids exactly as training sees them (generation must use the same, left-padded):
 * promptFormat.format(source) tokenised; a chat template's text carries its own special tokens, so
 * none are added then, while the plain `Q: … A:` form gets the tokenizer's (e.g. Llama's BOS).
 * Longer than maxLength: the start is cut (the generation prompt at the end is kept).
 */
export function causalPromptIds(tokenizer: Tokenizer, format: PromptFormat, source: string, maxLength: number): { ids: number[]; truncated: boolean } {
  const ids = tokenizer.encode(format.format(source), { addSpecialTokens: format.kind !== 'chat_template' });
  return ids.length > maxLength ? { ids: ids.slice(ids.length - maxLength), truncated: true } : { ids, truncated: false };
}

/**
 * The completion's ids: the target's tokens (after a space in the plain form, which ends in "A:"),
 * no special tokens added, then EOS (as TRL's prompt-completion SFT); cut to maxLength keeping EOS.
 * `full` is the length before the cut.
 */
export function causalCompletionIds(
  tokenizer: Tokenizer,
  format: PromptFormat,
  target: string,
  maxLength: number,
): { ids: number[]; truncated: boolean; full: number } {
  const body = tokenizer.encode(format.kind === 'chat_template' ? target : ` ${target.trimStart()}`, { addSpecialTokens: false });
  const ids = body[body.length - 1] === tokenizer.eosId ? body : [...body, tokenizer.eosId];
  const t = truncate(ids, maxLength, tokenizer.eosId);
  return { ids: t.ids, truncated: t.truncated, full: ids.length };
}

/** (source, target) pairs to decoder-only training rows (causalPromptIds + causalCompletionIds). */
export function tokenizeCausalDataset(examples: readonly Seq2SeqExample[], tokenizer: Tokenizer, options: CausalTokenizeOptions): CausalTokenizedDataset {
  const { maxSourceLength, maxTargetLength, promptFormat } = options;
  const record = promptFormat.describe();
  const data = tokenizePairs(examples, options, `causal ${JSON.stringify(record)} ${maxSourceLength}/${maxTargetLength}\n`, (ex, index, name) => {
    const p = causalPromptIds(tokenizer, promptFormat, ex.source, maxSourceLength);
    if (p.ids.length === 0) throw new Error(`${name}[${index}]: the prompt tokenizes to nothing`);
    const c = causalCompletionIds(tokenizer, promptFormat, ex.target, maxTargetLength);
    return { source: p, target: c, targetFull: c.full };
  });
  return { ...data, promptFormat: record };
}
