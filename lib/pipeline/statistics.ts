/**
 * The statistics of a sweep: mean ± sample standard deviation over seeds, and the paired
 * difference of two methods over the same seeds (same data, teacher and mentor per seed) with a
 * 95% Student-t interval and a two-sided paired t-test p-value. The t distribution's CDF comes from
 * the regularized incomplete beta function (continued fraction, as in Numerical Recipes §6.4), its
 * quantile by bisection on the CDF: no dependency, checked against scipy's values in
 * test/statistics.test.ts.
 */

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), for x in [0, 1]. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new Error(`studentTCdf: df must be > 0, got ${df}`);
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

/** The t with P(T ≤ t) = p (bisection on the CDF to 1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  let lo = -1;
  let hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface PairedDifference {
  /** Pairs (seeds both methods have). */
  n: number;
  /** Mean of a − b over the pairs. */
  mean: number;
  /** Sample standard deviation of the differences. */
  std: number;
  /** 95% t interval of the mean difference; null with fewer than 2 pairs. */
  ci95: [number, number] | null;
  /** The paired t statistic (±Infinity when every difference is the same non-zero value); null with fewer than 2 pairs. */
  t: number | null;
  /** Two-sided p-value of the paired t-test (H0: mean difference 0); null with fewer than 2 pairs. */
  p: number | null;
}

/** a − b paired by position (seed), with a 95% t interval and a two-sided paired t-test. */
export function pairedDifference(a: readonly number[], b: readonly number[]): PairedDifference {
  if (a.length !== b.length) throw new Error(`pairedDifference: ${a.length} values against ${b.length}; pairs need the same seeds`);
  const d = a.map((x, i) => x - b[i]!);
  const { mean, std, n } = meanStd(d);
  if (n < 2) return { n, mean, std, ci95: null, t: null, p: null };
  const se = std / Math.sqrt(n);
  const df = n - 1;
  if (se === 0) return { n, mean, std, ci95: [mean, mean], t: mean === 0 ? 0 : Math.sign(mean) * Infinity, p: mean === 0 ? 1 : 0 };
  const t = mean / se;
  const half = studentTQuantile(0.975, df) * se;
  return { n, mean, std, ci95: [mean - half, mean + half], t, p: 2 * (1 - studentTCdf(Math.abs(t), df)) };
}

/** `+17.8 [+2.1, +33.5], p = 0.07` (values in [0, 1] shown as percentage points). */
export function formatDifference(d: PairedDifference): string {
  const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  if (!d.ci95) return `${pts(d.mean)} (n = ${d.n}, no interval)`;
  const p = d.p! < 0.001 ? '< 0.001' : `= ${d.p!.toFixed(3)}`;
  return `${pts(d.mean)} [${pts(d.ci95[0])}, ${pts(d.ci95[1])}], p ${p}`;
}
