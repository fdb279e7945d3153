/**
 * The sweep's statistics on hand-computed numbers, and the Student-t distribution against
 * reference values (scipy.stats 1.x: t.ppf, t.cdf, t.sf, beta.cdf, ttest_rel).
 */
import { describe, expect, it } from 'vitest';
import { formatDifference, logGamma, meanStd, pairedDifference, regularizedBeta, studentTCdf, studentTQuantile } from '../lib/pipeline/statistics.js';

describe('Student t distribution', () => {
  it('log-gamma matches factorials and Γ(1/2) = √π', () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(logGamma(10.5)).toBeCloseTo(13.940625219403763, 10);
  });

  it('the regularized incomplete beta matches scipy (beta.cdf(0.3, 2, 3) = 0.3483) and closed forms', () => {
    expect(regularizedBeta(0.3, 2, 3)).toBeCloseTo(0.3483, 12); // 1 - (1-x)^4 - 4x(1-x)^3 = 0.3483 by hand
    expect(regularizedBeta(0.7, 1, 1)).toBeCloseTo(0.7, 12); // uniform
  });

  it('CDF and quantiles match scipy', () => {
    // df = 1 is Cauchy: P(T ≤ 1) = 3/4.
    expect(studentTCdf(1, 1)).toBeCloseTo(0.75, 12);
    expect(studentTCdf(-1.5, 7)).toBeCloseTo(0.088649243494985, 10);
    expect(studentTCdf(0.3, 2.5)).toBeCloseTo(0.6063288142524014, 10);
    expect(2 * (1 - studentTCdf(2.5, 4))).toBeCloseTo(0.06676654481198814, 10);
    expect(2 * (1 - studentTCdf(3, 9))).toBeCloseTo(0.014956363910414222, 10);
    const ppf975: [number, number][] = [
      [1, 12.70620474],
      [2, 4.30265273],
      [4, 2.77644511],
      [10, 2.22813885],
      [30, 2.04227246],
    ];
    for (const [df, q] of ppf975) expect(studentTQuantile(0.975, df)).toBeCloseTo(q, 7);
    expect(studentTQuantile(0.995, 3)).toBeCloseTo(5.840909309733355, 7);
    expect(studentTQuantile(0.025, 4)).toBeCloseTo(-2.7764451051977943, 7);
  });
});

describe('sweep statistics', () => {
  it('mean ± sample sd by hand', () => {
    // mean 0.8; deviations -0.1, 0, 0.1 → sum of squares 0.02 / 2 = 0.01 → sd 0.1
    const s = meanStd([0.7, 0.8, 0.9]);
    expect(s.mean).toBeCloseTo(0.8, 12);
    expect(s.std).toBeCloseTo(0.1, 12);
    expect(meanStd([0.5])).toEqual({ mean: 0.5, std: 0, n: 1 });
  });

  it('paired difference: mean, sd, 95% t interval and p-value by hand', () => {
    const mentorKd = [0.9, 0.95, 1.0, 0.85, 0.92];
    const vanilla = [0.7, 0.8, 0.95, 0.6, 0.75];
    // differences 0.20 0.15 0.05 0.25 0.17: mean 0.82/5 = 0.164;
    // squared deviations 0.001296 0.000196 0.012996 0.007396 0.000036 = 0.02192, /4 = 0.00548, sd = 0.0740270
    // se = 0.0740270/√5 = 0.0331059; t = 0.164/0.0331059 = 4.95380; t(0.975, 4) = 2.776445
    // interval 0.164 ± 2.776445 × 0.0331059 = 0.164 ± 0.0919167 → [0.0720833, 0.2559167]
    const d = pairedDifference(mentorKd, vanilla);
    expect(d.n).toBe(5);
    expect(d.mean).toBeCloseTo(0.164, 12);
    expect(d.std).toBeCloseTo(0.07402702209328699, 10);
    expect(d.t!).toBeCloseTo(4.953801165307451, 8);
    expect(d.ci95![0]).toBeCloseTo(0.07208331177253091, 8);
    expect(d.ci95![1]).toBeCloseTo(0.2559166882274691, 8);
    expect(d.p!).toBeCloseTo(0.007740205869765169, 9); // scipy ttest_rel
    expect(formatDifference(d)).toBe('+16.4 [+7.2, +25.6], p = 0.008');
  });

  it('edge cases: one pair has no interval; identical differences; mismatched seeds refused', () => {
    expect(pairedDifference([0.9], [0.5])).toMatchObject({ n: 1, ci95: null, p: null });
    expect(pairedDifference([0.75, 0.5], [0.5, 0.25])).toMatchObject({ t: Infinity, p: 0, ci95: [0.25, 0.25] });
    expect(pairedDifference([0.5, 0.6], [0.5, 0.6])).toMatchObject({ mean: 0, p: 1 });
    expect(() => pairedDifference([0.5, 0.6], [0.5])).toThrow(/same seeds/);
  });
});
