/**
 * Fused KD loss (native/kd) against the unfused libtorch composition
 * (log_softmax, softmax, kl_div, cross_entropy), finite differences in float64,
 * top-k soft labels, the fused linear variant and the in-place gradient.
 */
import { describe, expect, it } from 'vitest';
import { kdInfo, kdLoss, kdLossLinear, kdLossTopK, topkSoftLabels } from '../lib/kd/index.js';
import type { KdDevOptions, KdLossOptions } from '../lib/kd/index.js';
import type { NativeTensor } from '../lib/native/binding.js';
import { expectClose, expectNear, kdLossDev, kdLossLinearDev, kdLossTopKDev, kdSetCpuIsa, makeCase, numericGrad, rng, topkCase } from './kd-helpers.js';

function f(t: NativeTensor | undefined): Float32Array | Float64Array {
  if (!t) throw new Error('missing tensor');
  return t.data as Float32Array | Float64Array;
}

describe('kd loss = unfused composition', () => {
  // V not a multiple of 8 (tails), and one V spanning several 2048-wide blocks with the
  // row maxima late in the row (online rescaling).
  const shapes = [
    { N: 6, V: 1003, spike: false },
    { N: 5, V: 5001, spike: true },
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const tau of [1, 2, 4]) {
      for (const lambda of [0, 0.3, 1]) {
        it(`${dtype} tau=${tau} lambda=${lambda}`, async () => {
          for (const [si, sh] of shapes.entries()) {
            const c = makeCase(sh.N, sh.V, { seed: 7 + tau * 10 + lambda * 100 + si, ignored: [1, 3], spike: sh.spike });
            const o: KdLossOptions = { tau, lambda, studentDtype: dtype };
            const [a, b] = await Promise.all([kdLoss(c.student, c.mentor, c.labels, o), kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' })]);
            expectNear(a.loss, b.loss, 2e-5, 1e-6, 'loss');
            expectNear(a.ce, b.ce, 2e-5, 1e-6, 'ce');
            expectNear(a.kl, b.kl, 2e-5, 2e-6, 'kl');
            // bf16 gradients are stored in bf16 (2^-8 relative) by both.
            expectClose(f(a.grad), f(b.grad), dtype === 'float32' ? 2e-5 : 1e-2, 0, 'grad');
            expect(a.grad!.shape).toEqual([sh.N, sh.V]);
          }
        });
      }
    }
  }

  it('mixed dtypes (bf16 student, fp16 mentor; fp16 student, bf16 mentor)', async () => {
    const c = makeCase(4, 777, { seed: 3, ignored: [2] });
    for (const [sd, md] of [
      ['bfloat16', 'float16'],
      ['float16', 'bfloat16'],
      ['float32', 'bfloat16'],
    ] as const) {
      const o: KdLossOptions = { studentDtype: sd, mentorDtype: md };
      const a = await kdLoss(c.student, c.mentor, c.labels, o);
      const b = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
      expectNear(a.loss, b.loss, 2e-5, 1e-6, `${sd}/${md} loss`);
      expectClose(f(a.grad), f(b.grad), 1e-2, 0, `${sd}/${md} grad`);
    }
  });

  it('reductions sum / batchmean and the tau² flag', async () => {
    const c = makeCase(7, 300, { seed: 11, ignored: [0, 4, 5] });
    for (const o of [
      { reduction: 'sum', tau: 2 },
      { reduction: 'batchmean', tau: 2 },
      { reduction: 'mean', tau: 4, tauSquared: true },
      { reduction: 'batchmean', tau: 1.5, tauSquared: true, lambda: 0.5 },
      { hardWeight: 0.25, softWeight: 2, tau: 3 },
    ] as KdLossOptions[]) {
      const a = await kdLoss(c.student, c.mentor, c.labels, o);
      const b = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
      expectNear(a.loss, b.loss, 2e-5, 1e-6, JSON.stringify(o));
      expectNear(a.kl, b.kl, 2e-5, 1e-6, JSON.stringify(o));
      expectClose(f(a.grad), f(b.grad), 2e-5, 0, JSON.stringify(o));
    }
    // batchmean: ignored rows still count in KL; loss = 0.7·CE_mean + 0.3·ΣKL/N.
    const bm = await kdLoss(c.student, c.mentor, c.labels, { reduction: 'batchmean', returnGrad: false });
    const sum = await kdLoss(c.student, c.mentor, c.labels, { reduction: 'sum', returnGrad: false });
    expect(bm.kl).toBeGreaterThan(sum.kl / 7);
  });

  it('every CPU kernel set this CPU has (avx512, avx2, sse2) agrees', async () => {
    const c = makeCase(5, 2111, { seed: 5, ignored: [2], spike: true });
    const ref = await kdLossDev(c.student, c.mentor, c.labels, { impl: 'reference', tau: 2 });
    const before = kdInfo().isa;
    const tried: string[] = [];
    try {
      for (const isa of ['avx512', 'avx2', 'sse2'] as const) {
        try {
          kdSetCpuIsa(isa);
        } catch {
          continue; // not on this CPU
        }
        tried.push(isa);
        for (const tau of [2, 3]) {
          const r2 = tau === 2 ? ref : await kdLossDev(c.student, c.mentor, c.labels, { impl: 'reference', tau });
          const a = await kdLoss(c.student, c.mentor, c.labels, { tau });
          expectNear(a.loss, r2.loss, 2e-5, 1e-6, `${isa} tau=${tau}`);
          expectClose(f(a.grad), f(r2.grad), 2e-5, 0, `${isa} tau=${tau} grad`);
          const b = await kdLoss(c.student, c.mentor, c.labels, { tau, studentDtype: 'bfloat16' });
          const rb = await kdLossDev(c.student, c.mentor, c.labels, { tau, studentDtype: 'bfloat16', impl: 'reference' });
          expectClose(f(b.grad), f(rb.grad), 1e-2, 0, `${isa} bf16 grad`);
        }
      }
    } finally {
      kdSetCpuIsa('auto');
    }
    expect(tried).toContain('sse2');
    expect(kdInfo().isa).toBe(before);
  });

  it('leading dims [B,L,V] with labels [B,L]; explicit (no-autograd) path; all rows ignored', async () => {
    const c = makeCase(6, 129, { seed: 9, ignored: [5] });
    const s3 = { data: c.student.data, shape: [2, 3, 129] };
    const m3 = { data: c.mentor.data, shape: [2, 3, 129] };
    const y3 = { data: c.labels.data, shape: [2, 3] };
    const a = await kdLoss(s3, m3, y3);
    const b = await kdLossDev(c.student, c.mentor, c.labels, { impl: 'explicit' });
    expectNear(a.loss, b.loss, 1e-6, 0, 'loss');
    expect(a.grad!.shape).toEqual([2, 3, 129]);
    expectClose(f(a.grad), f(b.grad), 1e-6, 0, 'grad');
    const none = { data: new Int32Array(6).fill(-100), shape: [6] };
    const z = await kdLoss(c.student, c.mentor, none);
    expect(z.loss).toBe(0);
    expect(z.ce).toBe(0);
    expect(Math.max(...Array.from(f(z.grad), Math.abs))).toBe(0);
  });

  it('backward scales by the upstream gradient (full, in place, top-k, linear)', async () => {
    const c = makeCase(4, 300, { seed: 23, ignored: [1] });
    for (const o of [{}, { inplaceGrad: true }, { impl: 'reference' }] as (KdLossOptions & KdDevOptions)[]) {
      const a = await kdLossDev(c.student, c.mentor, c.labels, o);
      const b = await kdLossDev(c.student, c.mentor, c.labels, { ...o, upstream: -2.5 });
      expectClose(
        f(b.grad),
        Array.from(f(a.grad), (x) => x * -2.5),
        1e-6,
        0,
        JSON.stringify(o),
      );
    }
    const t = await topkSoftLabels(c.mentor, 10, 2);
    const a = await kdLossTopK(c.student, t, c.labels);
    const b = await kdLossTopKDev(c.student, t, c.labels, { upstream: 4 });
    expectClose(
      f(b.grad),
      Array.from(f(a.grad), (x) => x * 4),
      1e-6,
      0,
      'topk',
    );
    const hidden = { data: new Float32Array(4 * 6).map((_, i) => Math.sin(i)), shape: [4, 6] };
    const weight = { data: new Float32Array(300 * 6).map((_, i) => Math.cos(i)), shape: [300, 6] };
    const la = await kdLossLinear(hidden, weight, { logits: c.mentor }, c.labels);
    const lb = await kdLossLinearDev(hidden, weight, { logits: c.mentor }, c.labels, { upstream: 0.5 });
    expectClose(
      f(lb.gradWeight),
      Array.from(f(la.gradWeight), (x) => x * 0.5),
      1e-6,
      0,
      'linear',
    );
  });

  it('in-place gradient equals the out-of-place one (f32, bf16, top-k)', async () => {
    const c = makeCase(5, 1500, { seed: 21, ignored: [0] });
    for (const studentDtype of ['float32', 'bfloat16'] as const) {
      for (const impl of ['fused', 'explicit'] as const) {
        const a = await kdLossDev(c.student, c.mentor, c.labels, { studentDtype, impl });
        const b = await kdLossDev(c.student, c.mentor, c.labels, { studentDtype, impl, inplaceGrad: true });
        expect(a.loss).toBe(b.loss);
        expectClose(f(b.grad), f(a.grad), 0, 0, `${studentDtype} ${impl}`);
      }
    }
    const t = await topkSoftLabels(c.mentor, 40, 2);
    const a = await kdLossTopK(c.student, t, c.labels);
    const b = await kdLossTopK(c.student, t, c.labels, { inplaceGrad: true });
    expectClose(f(b.grad), f(a.grad), 0, 0, 'topk inplace');
  });
});

describe('gradcheck (float64, central differences)', () => {
  const configs: KdLossOptions[] = [
    { tau: 2, lambda: 0.3 },
    { tau: 1, lambda: 0.5, reduction: 'sum' },
    { tau: 4, lambda: 1, tauSquared: true },
    { tau: 0.7, lambda: 0.3, reduction: 'batchmean' },
  ];
  for (const o of configs) {
    it(`full ${JSON.stringify(o)}`, async () => {
      const c = makeCase(3, 7, { seed: 31, ignored: [1], f64: true });
      const r = await kdLoss(c.student, c.mentor, c.labels, o);
      expect(r.grad!.data).toBeInstanceOf(Float64Array);
      const num = await numericGrad(async (s) => (await kdLoss(s, c.mentor, c.labels, { ...o, returnGrad: false })).loss, c.student);
      expectClose(f(r.grad), num, 1e-6, 1e-9, 'analytic vs numeric');
      // and the float64 reference agrees to rounding
      const ref = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
      expectNear(r.loss, ref.loss, 1e-12, 1e-14, 'f64 loss');
      expectClose(f(r.grad), f(ref.grad), 1e-10, 1e-14, 'f64 grad');
    });
  }

  it('top-k (rest bucket, padding entry, explicit restMass)', async () => {
    const { c, topk, withRest } = await topkCase();
    for (const tk of [topk, withRest]) {
      for (const o of [{ tau: 2 }, { tau: 1, lambda: 0.8, reduction: 'batchmean' }] as KdLossOptions[]) {
        const r = await kdLossTopK(c.student, tk, c.labels, o);
        const num = await numericGrad(async (s) => (await kdLossTopK(s, tk, c.labels, { ...o, returnGrad: false })).loss, c.student);
        expectClose(f(r.grad), num, 1e-6, 1e-9, 'topk analytic vs numeric');
        const ref = await kdLossTopKDev(c.student, tk, c.labels, { ...o, impl: 'reference' });
        expectNear(r.loss, ref.loss, 1e-12, 1e-14, 'topk f64 loss');
        expectClose(f(r.grad), f(ref.grad), 1e-10, 1e-14, 'topk f64 grad');
      }
    }
  });
});

describe('top-k soft labels', () => {
  it('k = V equals the full op (f32)', async () => {
    const c = makeCase(4, 203, { seed: 51, ignored: [3] });
    for (const tau of [1, 2, 4]) {
      const t = await topkSoftLabels(c.mentor, 203, tau);
      expect(Array.from(f(t.restMass))).toEqual([0, 0, 0, 0]);
      const a = await kdLossTopK(c.student, t, c.labels, { tau });
      const b = await kdLoss(c.student, c.mentor, c.labels, { tau });
      expectNear(a.loss, b.loss, 1e-5, 1e-6, `tau=${tau} loss`);
      expectNear(a.kl, b.kl, 1e-4, 1e-6, `tau=${tau} kl`);
      expectClose(f(a.grad), f(b.grad), 1e-5, 0, `tau=${tau} grad`);
      // also without the explicit rest mass (derived as 1 − Σq, dropped when k = V)
      const a2 = await kdLossTopK(c.student, { indices: t.indices, logprobs: t.logprobs }, c.labels, { tau });
      expectNear(a2.loss, b.loss, 1e-5, 1e-6, `tau=${tau} loss (no rest)`);
    }
  });

  it('k < V equals the unfused top-k composition (f32, bf16)', async () => {
    const c = makeCase(6, 2501, { seed: 61, ignored: [0, 5], spike: true });
    for (const k of [1, 17, 300]) {
      const t = await topkSoftLabels(c.mentor, k, 2);
      for (const studentDtype of ['float32', 'bfloat16'] as const) {
        for (const o of [{ tau: 2 }, { tau: 2, lambda: 1, reduction: 'batchmean' }] as KdLossOptions[]) {
          const oo = { ...o, studentDtype };
          const a = await kdLossTopK(c.student, t, c.labels, oo);
          const b = await kdLossTopKDev(c.student, t, c.labels, { ...oo, impl: 'reference' });
          expectNear(a.loss, b.loss, 2e-5, 1e-6, `k=${k} ${studentDtype} loss`);
          expectClose(f(a.grad), f(b.grad), studentDtype === 'float32' ? 2e-5 : 1e-2, 0, `k=${k} ${studentDtype} grad`);
        }
      }
    }
  });
});

describe('fused linear + KD', () => {
  function linearCase(N: number, d: number, V: number, seed: number) {
    const r = rng(seed);
    const h = new Float32Array(N * d).map(() => r.normal());
    const w = new Float32Array(V * d).map(() => r.normal() / Math.sqrt(d));
    const m = new Float32Array(N * V).map(() => r.normal() * 2);
    const y = new Int32Array(N).map(() => Math.floor(r.uniform() * V));
    y[2] = -100;
    return {
      hidden: { data: h, shape: [N, d] },
      weight: { data: w, shape: [V, d] },
      mentor: { data: m, shape: [N, V] },
      labels: { data: y, shape: [N] },
    };
  }

  it('mentor logits: fused = matmul + unfused = matmul + fused loss, across chunk sizes', async () => {
    const c = linearCase(10, 16, 1001, 71);
    const ref = await kdLossLinearDev(c.hidden, c.weight, { logits: c.mentor }, c.labels, { impl: 'reference' });
    for (const o of [{ impl: 'kd' }, { chunkRows: 3 }, { chunkRows: 10 }, {}] as const) {
      const a = await kdLossLinearDev(c.hidden, c.weight, { logits: c.mentor }, c.labels, o);
      expectNear(a.loss, ref.loss, 2e-5, 1e-6, `${JSON.stringify(o)} loss`);
      expectClose(f(a.gradHidden), f(ref.gradHidden), 1e-4, 0, `${JSON.stringify(o)} gradHidden`);
      expectClose(f(a.gradWeight), f(ref.gradWeight), 1e-4, 0, `${JSON.stringify(o)} gradWeight`);
    }
  });

  it('no mentor: plain cross-entropy (= any mentor at lambda 0), kl = 0', async () => {
    const c = linearCase(6, 8, 257, 91);
    const a = await kdLossLinear(c.hidden, c.weight, {}, c.labels, { chunkRows: 4 });
    const b = await kdLossLinear(c.hidden, c.weight, { logits: c.mentor }, c.labels, { lambda: 0 });
    expect(a.kl).toBe(0);
    expectNear(a.loss, 0.7 * b.loss, 1e-6, 0, 'loss');
    expectNear(a.ce, b.ce, 1e-6, 0, 'ce');
    expectNear(a.loss, 0.7 * a.ce, 1e-6, 0, 'loss = (1-λ)·ce');
    expectClose(
      f(a.gradHidden),
      Array.from(f(b.gradHidden), (x) => x * 0.7),
      1e-5,
      0,
      'gradHidden',
    );
    expectClose(
      f(a.gradWeight),
      Array.from(f(b.gradWeight), (x) => x * 0.7),
      1e-5,
      0,
      'gradWeight',
    );
  });

  it('top-k mentor and bf16, float64 finite differences on hidden', async () => {
    const c = linearCase(7, 8, 333, 81);
    const t = await topkSoftLabels(c.mentor, 20, 2);
    const ref = await kdLossLinearDev(c.hidden, c.weight, { topk: t }, c.labels, { impl: 'reference' });
    const a = await kdLossLinear(c.hidden, c.weight, { topk: t }, c.labels, { chunkRows: 2 });
    expectNear(a.loss, ref.loss, 2e-5, 1e-6, 'topk loss');
    expectClose(f(a.gradWeight), f(ref.gradWeight), 1e-4, 0, 'topk gradWeight');
    const b = await kdLossLinear(c.hidden, c.weight, { logits: c.mentor }, c.labels, { studentDtype: 'bfloat16', chunkRows: 3 });
    const rb = await kdLossLinearDev(c.hidden, c.weight, { logits: c.mentor }, c.labels, { studentDtype: 'bfloat16', impl: 'reference' });
    expectNear(b.loss, rb.loss, 1e-2, 0, 'bf16 loss');
    expectClose(f(b.gradHidden), f(rb.gradHidden), 5e-2, 0, 'bf16 gradHidden');

    const h64 = { data: Float64Array.from(c.hidden.data), shape: c.hidden.shape };
    const w64 = { data: Float64Array.from(c.weight.data), shape: c.weight.shape };
    const m64 = { data: Float64Array.from(c.mentor.data), shape: c.mentor.shape };
    const o = { chunkRows: 3, tau: 2 };
    const r = await kdLossLinear(h64, w64, { logits: m64 }, c.labels, o);
    const num = await numericGrad(async (h) => (await kdLossLinear(h, w64, { logits: m64 }, c.labels, { ...o, returnGrad: false })).loss, h64);
    expectClose(f(r.gradHidden), num, 1e-6, 1e-9, 'f64 gradHidden vs numeric');
  });
});
