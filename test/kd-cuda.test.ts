/**
 * CUDA kernels of the KD loss against the CPU ones and the unfused composition.
 * Runs only where the addon was built with CUDA and a GPU is visible; otherwise every
 * test is reported as skipped (and the reason printed).
 */
import { describe, expect, it } from 'vitest';
import { kdInfo, kdLoss, kdLossLinear, kdLossTopK, topkSoftLabels } from '../lib/kd/index.js';
import type { KdLossOptions } from '../lib/kd/index.js';
import type { NativeTensor } from '../lib/native/binding.js';
import { expectClose, expectNear, kdLossDev, kdLossLinearDev, kdLossTopKDev, makeCase } from './kd-helpers.js';

const info = kdInfo();
const hasCuda = info.cudaKernels && info.cudaAvailable;
if (!hasCuda) {
  console.info(
    `kd CUDA tests skipped: ${info.cudaKernels ? 'no GPU visible' : 'addon built without CUDA kernels'} (cudaKernels=${info.cudaKernels}, cudaAvailable=${info.cudaAvailable})`,
  );
}

function f(t: NativeTensor | undefined): Float32Array | Float64Array {
  if (!t) throw new Error('missing tensor');
  return t.data as Float32Array | Float64Array;
}

describe.skipIf(!hasCuda)('kd loss on CUDA', () => {
  // Warp-per-row (V ≤ 2048) and block-per-row kernels; V not a multiple of the pack width.
  for (const V of [1003, 5001, 32128]) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      it(`V=${V} ${dtype}: CUDA = CPU = unfused`, async () => {
        const c = makeCase(6, V, { seed: V, ignored: [1, 4], spike: true });
        for (const tau of [1, 2, 4]) {
          for (const lambda of [0, 0.3, 1]) {
            const o: KdLossOptions = { tau, lambda, studentDtype: dtype };
            const gpu = await kdLoss(c.student, c.mentor, c.labels, { ...o, device: 'cuda' });
            const ref = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
            expectNear(gpu.loss, ref.loss, 2e-5, 1e-6, `tau=${tau} lambda=${lambda} loss`);
            expectClose(f(gpu.grad), f(ref.grad), dtype === 'float32' ? 2e-5 : 1e-2, 0, `tau=${tau} lambda=${lambda} grad`);
          }
        }
        const inplace = await kdLoss(c.student, c.mentor, c.labels, { studentDtype: dtype, device: 'cuda', inplaceGrad: true });
        const plain = await kdLoss(c.student, c.mentor, c.labels, { studentDtype: dtype, device: 'cuda' });
        expectClose(f(inplace.grad), f(plain.grad), 0, 0, 'in-place');
      });
    }
  }

  it('mixed dtypes, reductions, float64', async () => {
    const c = makeCase(5, 3001, { seed: 5, ignored: [0] });
    for (const o of [
      { studentDtype: 'bfloat16', mentorDtype: 'float32' },
      { studentDtype: 'float32', mentorDtype: 'float16', reduction: 'batchmean' },
      { reduction: 'sum', tauSquared: true, tau: 3 },
    ] as KdLossOptions[]) {
      const gpu = await kdLoss(c.student, c.mentor, c.labels, { ...o, device: 'cuda' });
      const cpu = await kdLoss(c.student, c.mentor, c.labels, o);
      expectNear(gpu.loss, cpu.loss, 2e-5, 1e-6, JSON.stringify(o));
      expectClose(f(gpu.grad), f(cpu.grad), 1e-2, 0, JSON.stringify(o));
    }
    const c64 = makeCase(3, 777, { seed: 6, ignored: [1], f64: true });
    const g64 = await kdLoss(c64.student, c64.mentor, c64.labels, { device: 'cuda' });
    const r64 = await kdLossDev(c64.student, c64.mentor, c64.labels, { impl: 'reference' });
    expectNear(g64.loss, r64.loss, 1e-12, 1e-14, 'f64 loss');
    expectClose(f(g64.grad), f(r64.grad), 1e-10, 1e-14, 'f64 grad');
  });

  it('top-k (k < V and k = V) and fused linear', async () => {
    const c = makeCase(6, 4000, { seed: 9, ignored: [2] });
    for (const k of [20, 4000]) {
      const t = await topkSoftLabels(c.mentor, k, 2);
      const gpu = await kdLossTopK(c.student, t, c.labels, { device: 'cuda' });
      const ref = await kdLossTopKDev(c.student, t, c.labels, { impl: 'reference' });
      expectNear(gpu.loss, ref.loss, 2e-5, 1e-6, `k=${k} loss`);
      expectClose(f(gpu.grad), f(ref.grad), 2e-5, 0, `k=${k} grad`);
    }
    const hidden = { data: new Float32Array(6 * 16).map((_, i) => Math.sin(i)), shape: [6, 16] };
    const weight = { data: new Float32Array(4000 * 16).map((_, i) => Math.cos(i) * 0.3), shape: [4000, 16] };
    const gpu = await kdLossLinear(hidden, weight, { logits: c.mentor }, c.labels, { device: 'cuda', chunkRows: 4 });
    const ref = await kdLossLinearDev(hidden, weight, { logits: c.mentor }, c.labels, { impl: 'reference' });
    expectNear(gpu.loss, ref.loss, 1e-4, 1e-6, 'linear loss');
    expectClose(f(gpu.gradWeight), f(ref.gradWeight), 1e-3, 0, 'linear gradWeight');
  });

  it('bad input on CUDA → Error', async () => {
    const c = makeCase(3, 100, { seed: 1 });
    await expect(kdLoss(c.student, c.mentor, { data: new Int32Array([0, 100, 1]), shape: [3] }, { device: 'cuda' })).rejects.toThrow(
      /labels\[1\] = 100 is outside \[0, V=100\)/,
    );
    const bad = Float32Array.from(c.mentor.data as Float32Array);
    bad[150] = NaN;
    await expect(kdLoss(c.student, { data: bad, shape: [3, 100] }, c.labels, { device: 'cuda' })).rejects.toThrow(/mentor_logits row 1 contains NaN or Inf/);
    const ok = await kdLoss(c.student, c.mentor, c.labels, { device: 'cuda' });
    expect(Number.isFinite(ok.loss)).toBe(true);
  });
});

describe('kd CUDA availability', () => {
  it('reports whether the CUDA tests ran', () => {
    expect(typeof hasCuda).toBe('boolean');
  });
});

describe.skipIf(!hasCuda)('kd divergences on CUDA (issue 14)', () => {
  const OBJECTIVES: KdLossOptions[] = [
    { divergence: 'reverse-kl' },
    ...[0, 0.1, 0.5, 0.9, 1].map((beta) => ({ divergence: 'jsd' as const, beta })),
    ...[0.1, 0.9].map((alpha) => ({ divergence: 'skew-kl' as const, alpha })),
    ...[0.1, 0.9].map((alpha) => ({ divergence: 'skew-reverse-kl' as const, alpha })),
    { divergence: 'tvd' },
  ];
  // Warp-per-row, block-per-row and (32128, f32/bf16) cached-block kernels.
  for (const V of [1003, 5001, 32128]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`V=${V} ${dtype}: CUDA = unfused for every divergence (full, in place, top-k)`, async () => {
        const c = makeCase(4, V, { seed: V + 1, ignored: [1], spike: true });
        const t = await topkSoftLabels(c.mentor, 33, 2);
        for (const obj of OBJECTIVES) {
          for (const tau of [1, 2, 4]) {
            const o: KdLossOptions = { ...obj, tau, lambda: 0.3, studentDtype: dtype };
            const gpu = await kdLoss(c.student, c.mentor, c.labels, { ...o, device: 'cuda' });
            const ref = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
            const what = `${JSON.stringify(obj)} tau=${tau}`;
            expectNear(gpu.loss, ref.loss, 5e-5, 1e-6, `${what} loss`);
            expectClose(f(gpu.grad), f(ref.grad), dtype === 'float32' ? 5e-5 : 1e-2, 1e-7, `${what} grad`);
          }
          const o: KdLossOptions = { ...obj, tau: 2, lambda: 0.3, studentDtype: dtype };
          const inplace = await kdLoss(c.student, c.mentor, c.labels, { ...o, device: 'cuda', inplaceGrad: true });
          const plain = await kdLoss(c.student, c.mentor, c.labels, { ...o, device: 'cuda' });
          expectClose(f(inplace.grad), f(plain.grad), 0, 0, `${JSON.stringify(obj)} in place`);
          const gk = await kdLossTopK(c.student, t, c.labels, { ...o, device: 'cuda' });
          const rk = await kdLossTopKDev(c.student, t, c.labels, { ...o, impl: 'reference' });
          expectNear(gk.loss, rk.loss, 5e-5, 1e-6, `${JSON.stringify(obj)} top-k loss`);
          expectClose(f(gk.grad), f(rk.grad), dtype === 'float32' ? 5e-5 : 1e-2, 1e-7, `${JSON.stringify(obj)} top-k grad`);
        }
      });
    }
  }

  it('float64 and the linear form', async () => {
    const c64 = makeCase(3, 257, { seed: 6, ignored: [1], f64: true });
    for (const obj of OBJECTIVES) {
      const g = await kdLoss(c64.student, c64.mentor, c64.labels, { ...obj, device: 'cuda' });
      const r = await kdLoss(c64.student, c64.mentor, c64.labels, obj);
      expectNear(g.loss, r.loss, 1e-11, 1e-14, `${JSON.stringify(obj)} f64`);
      expectClose(f(g.grad), f(r.grad), 1e-9, 1e-14, `${JSON.stringify(obj)} f64 grad`);
    }
    const N = 6,
      d = 16,
      V = 3001;
    const hidden = { data: new Float32Array(N * d).map((_, i) => Math.sin(i)), shape: [N, d] };
    const weight = { data: new Float32Array(V * d).map((_, i) => Math.cos(i * 0.7) / 4), shape: [V, d] };
    const mentor = { data: new Float32Array(N * V).map((_, i) => Math.sin(i * 0.37) * 3), shape: [N, V] };
    const labels = { data: new Int32Array(N).map((_, i) => (i * 97) % V), shape: [N] };
    for (const obj of OBJECTIVES) {
      const g = await kdLossLinear(hidden, weight, { logits: mentor }, labels, { ...obj, device: 'cuda', chunkRows: 4 });
      const r = await kdLossLinear(hidden, weight, { logits: mentor }, labels, obj);
      expectNear(g.loss, r.loss, 5e-5, 1e-6, `${JSON.stringify(obj)} linear`);
      expectClose(f(g.gradHidden), f(r.gradHidden), 1e-4, 1e-7, `${JSON.stringify(obj)} linear gradHidden`);
    }
  });
});
