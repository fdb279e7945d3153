/** Shared helpers of the KD-loss tests (test/kd*.test.ts). */
import { topkSoftLabels, withKdDefaults } from '../lib/kd/index.js';
import type {
  KdDevOptions,
  KdLinearDevOptions,
  KdLinearMentor,
  KdLinearOptions,
  KdLinearResult,
  KdLossOptions,
  KdLossResult,
  KdTopK,
} from '../lib/kd/index.js';
import type { NativeTensor } from '../lib/native/binding.js';
import { callNative, devNative } from '../lib/native/loader.js';

/** Deterministic PRNG (mulberry32) and standard normals. */
export function rng(seed: number): { uniform(): number; normal(): number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal };
}

export interface Case {
  student: NativeTensor;
  mentor: NativeTensor;
  labels: NativeTensor;
  N: number;
  V: number;
}

/**
 * Random student/mentor logits [N,V] (the mentor a noisy, sharper copy of the student, as in
 * training), labels with the rows in `ignored` set to -100. `spike` puts a large logit late in
 * every row so the online max must grow across blocks.
 */
export function makeCase(N: number, V: number, opts: { seed?: number; ignored?: number[]; f64?: boolean; scale?: number; spike?: boolean } = {}): Case {
  const r = rng(opts.seed ?? 1);
  const scale = opts.scale ?? 2;
  const Arr = opts.f64 ? Float64Array : Float32Array;
  const s = new Arr(N * V);
  const m = new Arr(N * V);
  for (let i = 0; i < N * V; i++) {
    s[i] = r.normal() * scale;
    m[i] = s[i]! * 1.5 + r.normal();
  }
  if (opts.spike) {
    for (let i = 0; i < N; i++) {
      s[i * V + V - 3 - i] = 12;
      m[i * V + V - 5 - i] = 15;
    }
  }
  const y = new Int32Array(N);
  for (let i = 0; i < N; i++) y[i] = Math.floor(r.uniform() * V);
  for (const i of opts.ignored ?? []) y[i] = -100;
  return { student: { data: s, shape: [N, V] }, mentor: { data: m, shape: [N, V] }, labels: { data: y, shape: [N] }, N, V };
}

/**
 * The top-k case of the KD tests: 3 rows over 9 classes (row 2 ignored), the mentor's top 3 at τ 2
 * in float64 with row 0's last entry marked as padding; once with the implied rest bucket, once
 * with an explicit restMass.
 */
export async function topkCase(): Promise<{ c: Case; topk: KdTopK; withRest: KdTopK }> {
  const c = makeCase(3, 9, { seed: 41, ignored: [2], f64: true });
  const t = await topkSoftLabels(c.mentor, 3, 2);
  const lp = Float64Array.from(t.logprobs.data as Float32Array);
  lp[2] = -Infinity;
  const idx = Int32Array.from(t.indices.data as Int32Array);
  const topk: KdTopK = { indices: { data: idx, shape: [3, 3] }, logprobs: { data: lp, shape: [3, 3] } };
  const withRest: KdTopK = { ...topk, restMass: { data: new Float64Array([0.3, 0.2, 0.5]), shape: [3] } };
  return { c, topk, withRest };
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Expects |a-b| ≤ atol + rtol·max|b| elementwise (a relative check on the whole tensor). */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol = 0, what = ''): void {
  const d = maxAbsDiff(a, b);
  const tol = atol + rtol * maxAbs(b);
  if (!(d <= tol)) throw new Error(`${what}: max |diff| ${d.toExponential(3)} > tol ${tol.toExponential(3)}`);
}

export function expectNear(a: number, b: number, rtol: number, atol = 0, what = ''): void {
  const d = Math.abs(a - b);
  const tol = atol + rtol * Math.abs(b);
  if (!(d <= tol)) throw new Error(`${what}: ${a} vs ${b} (|diff| ${d.toExponential(3)} > ${tol.toExponential(3)})`);
}

/**
 * The dev addon's KD calls (dev.kdLoss/kdTopk/kdLinear): the shipped calls plus the test-only
 * options `impl` (explicit, reference, kd) and `upstream`; λ and τ default as in lib/kd.
 */
export function kdLossDev(
  student: NativeTensor,
  mentor: NativeTensor,
  labels: NativeTensor,
  options: KdLossOptions & KdDevOptions = {},
): Promise<KdLossResult> {
  return callNative(() => devNative().dev.kdLoss(student, mentor, labels, withKdDefaults(options)));
}

export function kdLossTopKDev(student: NativeTensor, mentor: KdTopK, labels: NativeTensor, options: KdLossOptions & KdDevOptions = {}): Promise<KdLossResult> {
  return callNative(() => devNative().dev.kdTopk(student, mentor, labels, withKdDefaults(options)));
}

export function kdLossLinearDev(
  hidden: NativeTensor,
  weight: NativeTensor,
  mentor: KdLinearMentor,
  labels: NativeTensor,
  options: KdLinearOptions & KdLinearDevOptions = {},
): Promise<KdLinearResult> {
  return callNative(() => devNative().dev.kdLinear(hidden, weight, mentor, labels, withKdDefaults(options)));
}

/** Forces a CPU kernel set of the KD loss (`auto` re-detects); throws if the CPU lacks it. */
export function kdSetCpuIsa(name: 'auto' | 'avx512' | 'avx2' | 'sse2'): string {
  return devNative().dev.setKdIsa(name);
}

/** Central differences in float64 of the loss w.r.t. every student logit. */
export async function numericGrad(loss: (s: NativeTensor) => Promise<number>, s: NativeTensor, h = 1e-6): Promise<Float64Array> {
  const x = s.data as Float64Array;
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const plus = Float64Array.from(x);
    const minus = Float64Array.from(x);
    plus[i]! += h;
    minus[i]! -= h;
    const [lp, lm] = await Promise.all([loss({ data: plus, shape: s.shape }), loss({ data: minus, shape: s.shape })]);
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}
