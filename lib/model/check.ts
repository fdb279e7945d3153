/**
 * End-to-end check of the native model against HF reference fixtures (a folder holding
 * config.json, model.safetensors and reference.safetensors as in test/fixtures/t5-hf-reference or
 * test/fixtures/causal-lm-hf-reference): load, forward + backward, greedy generation, each compared
 * with what HF transformers computed. The family (T5 or decoder-only) comes from config.json.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from './safetensors.js';
import { T5Model } from './t5-model.js';
import { CausalLM } from './causal-model.js';
import { modelFamily } from './auto-model.js';
import type { Tensor } from './tensor.js';

export interface CheckResult {
  name: string;
  loss: number;
  refLoss: number;
  maxLogitDiff: number;
  maxGradDiff: number;
  generationMatches: boolean;
  ms: number;
  ok: boolean;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? d : Infinity;
}

/** Folders under `root` (or root itself) that hold a reference.safetensors. */
export function findReferenceCases(root: string): string[] {
  if (existsSync(join(root, 'reference.safetensors'))) return [root];
  return readdirSync(root)
    .map((d) => join(root, d))
    .filter((d) => existsSync(join(d, 'reference.safetensors')))
    .sort();
}

function sameIds(a: Tensor, b: Tensor): boolean {
  return a.shape.join() === b.shape.join() && Array.from(a.data, Number).join() === Array.from(b.data, Number).join();
}

function verdict(name: string, t0: number, loss: number, refLoss: number, maxLogitDiff: number, maxGradDiff: number, generationMatches: boolean): CheckResult {
  const ok = Math.abs(loss - refLoss) < 1e-5 && maxLogitDiff < 5e-5 && maxGradDiff < 1e-5 && generationMatches;
  return { name, loss, refLoss, maxLogitDiff, maxGradDiff, generationMatches, ms: performance.now() - t0, ok };
}

/**
 * A decoder-only fixture: the training batch (right-padded) through forward + backward, and greedy
 * generation from the left-padded gen_input_ids with as many new tokens as 'generated' holds.
 */
async function checkCausal(dir: string, ref: Record<string, Tensor>, t0: number): Promise<CheckResult> {
  for (const k of ['input_ids', 'attention_mask', 'labels', 'logits', 'loss', 'gen_input_ids', 'gen_attention_mask', 'generated']) {
    if (!ref[k]) throw new Error(`${join(dir, 'reference.safetensors')}: no tensor '${k}'`);
  }
  const model = await CausalLM.load(dir);
  try {
    const out = await model.forward(
      { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! },
      { returnLogits: true, backward: true },
    );
    let maxGradDiff = 0;
    for (const n of model.parameterNames()) {
      const r = ref[`grad.${n}`];
      maxGradDiff = Math.max(maxGradDiff, r ? maxAbsDiff(model.getGradient(n)!.data, r.data as Float32Array) : Infinity);
    }
    const newTokens = ref.generated!.shape[1]! - ref.gen_input_ids!.shape[1]!;
    const gen = await model.generate({ inputIds: ref.gen_input_ids!, attentionMask: ref.gen_attention_mask! }, { maxNewTokens: newTokens });
    const refLoss = (ref.loss!.data as Float32Array)[0]!;
    return verdict(
      dir.split('/').pop()!,
      t0,
      out.loss!,
      refLoss,
      maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array),
      maxGradDiff,
      sameIds(gen, ref.generated!),
    );
  } finally {
    model.dispose();
  }
}

export async function checkAgainstReference(dir: string): Promise<CheckResult> {
  const t0 = performance.now();
  const ref = (await readSafetensors(join(dir, 'reference.safetensors'))).tensors as Record<string, Tensor>;
  // A config.json without model_type is read as T5 (T5Model.load then names what is wrong).
  const family = await modelFamily(dir).catch(() => 't5' as const);
  if (family === 'causal') return checkCausal(dir, ref, t0);
  for (const k of ['input_ids', 'attention_mask', 'labels', 'logits', 'loss', 'generated']) {
    if (!ref[k]) throw new Error(`${join(dir, 'reference.safetensors')}: no tensor '${k}'`);
  }
  const model = await T5Model.load(dir);
  try {
    const out = await model.forward(
      { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! },
      { returnLogits: true, backward: true },
    );
    let maxGradDiff = 0;
    for (const n of model.parameterNames()) {
      const r = ref[`grad.${n}`];
      if (r) maxGradDiff = Math.max(maxGradDiff, maxAbsDiff(model.getGradient(n)!.data, r.data as Float32Array));
    }
    const gen = await model.generate({ inputIds: ref.input_ids!, attentionMask: ref.attention_mask! }, { maxNewTokens: ref.generated!.shape[1]! - 1 });
    const generationMatches =
      gen.shape.join() === ref.generated!.shape.join() && Array.from(gen.data).join() === Array.from(ref.generated!.data as Int32Array).join();
    const refLoss = (ref.loss!.data as Float32Array)[0]!;
    const maxLogitDiff = maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array);
    const ok = Math.abs(out.loss! - refLoss) < 1e-5 && maxLogitDiff < 5e-5 && maxGradDiff < 1e-5 && generationMatches;
    return { name: dir.split('/').pop()!, loss: out.loss!, refLoss, maxLogitDiff, maxGradDiff, generationMatches, ms: performance.now() - t0, ok };
  } finally {
    model.dispose();
  }
}
