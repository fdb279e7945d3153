/**
 * End-to-end check of the native model against HF reference fixtures (a folder holding
 * config.json, model.safetensors and reference.safetensors as in test/fixtures/t5-hf-reference):
 * load, forward + backward, greedy generation, each compared with what HF transformers computed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from './safetensors.js';
import { T5Model } from './t5-model.js';
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

export async function checkAgainstReference(dir: string): Promise<CheckResult> {
  const t0 = performance.now();
  const ref = (await readSafetensors(join(dir, 'reference.safetensors'))).tensors as Record<string, Tensor>;
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
