/**
 * The single-process side of the distributed tests: parameters of a model, their largest
 * difference, and one process trained on the union of both ranks' examples of each step.
 */
import { sgdStep } from './dev-parallel.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { collate, CONFIG, INIT_SEED, LR, rankExamples } from './dist-data.js';

export async function parameters(model: T5Model): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const n of model.parameterNames()) out.set(n, Float32Array.from(model.getParameter(n).data as Float32Array));
  return out;
}

export function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (const [n, x] of a) {
    const y = b.get(n)!;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
      scale = Math.max(scale, Math.abs(x[i]!));
    }
  }
  return { diff, scale };
}

/** One process, the union of both ranks' examples of each step in one batch (mean over all its tokens). */
export async function reference(
  steps: number,
  rule: 'union' | 'mean-of-means' = 'union',
): Promise<{ params: Map<string, Float32Array>; losses: number[]; start: Map<string, Float32Array> }> {
  const model = await T5Model.fromConfig(CONFIG, { seed: INIT_SEED });
  const start = await parameters(model);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    model.zeroGrad();
    if (rule === 'union') {
      const r = await model.forward(collate([...rankExamples(step, 0, 2), ...rankExamples(step, 1, 2)]), { backward: true, train: true });
      losses.push(r.loss!);
      await sgdStep(model, LR);
    } else {
      for (const rank of [0, 1]) await model.forward(collate(rankExamples(step, rank, 2)), { backward: true, train: true });
      await sgdStep(model, LR / 2);
    }
  }
  const params = await parameters(model);
  model.dispose();
  return { params, losses, start };
}

export async function savedParameters(dir: string): Promise<Map<string, Float32Array>> {
  const m = await T5Model.load(dir);
  const p = await parameters(m);
  m.dispose();
  return p;
}
