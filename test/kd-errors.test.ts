/**
 * Bad input to the KD loss rejects with an Error naming the tensor at fault; the process
 * stays alive and the next good call works.
 */
import { describe, expect, it } from 'vitest';
import { kdLoss, kdLossLinear, kdLossTopK } from '../lib/kd/index.js';
import type { KdLossOptions, KdTopK } from '../lib/kd/index.js';
import type { NativeTensor } from '../lib/native/binding.js';
import { makeCase } from './kd-helpers.js';

const c = makeCase(4, 50, { seed: 2, ignored: [1] });

function withValue(t: NativeTensor, i: number, v: number): NativeTensor {
  const d = Float32Array.from(t.data as Float32Array);
  d[i] = v;
  return { data: d, shape: t.shape };
}

const topk: KdTopK = {
  indices: { data: new Int32Array([0, 1, 2, 3, 4, 5, 6, 7]), shape: [4, 2] },
  logprobs: { data: new Float32Array(8).fill(Math.log(0.25)), shape: [4, 2] },
};

describe('kd loss: bad input → Error, process alive', () => {
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    [
      'student/mentor shape mismatch',
      () => kdLoss(c.student, { data: new Float32Array(5 * 50), shape: [5, 50] }, c.labels),
      /kd_loss: mentor_logits has shape \[5, 50\] but student_logits has shape \[4, 50\]/,
    ],
    [
      'V mismatch',
      () => kdLoss(c.student, { data: new Float32Array(4 * 51), shape: [4, 51] }, c.labels),
      /kd_loss: mentor_logits has V=51 but student_logits has V=50/,
    ],
    [
      'labels rows mismatch',
      () => kdLoss(c.student, c.mentor, { data: new Int32Array(3), shape: [3] }),
      /kd_loss: labels has shape \[3\] but student_logits has shape \[4, 50\]/,
    ],
    ['label ≥ V', () => kdLoss(c.student, c.mentor, { data: new Int32Array([0, 50, 1, 2]), shape: [4] }), /kd_loss: labels\[1\] = 50 is outside \[0, V=50\)/],
    [
      'negative label that is not ignore_index',
      () => kdLoss(c.student, c.mentor, { data: new Int32Array([0, 1, -1, 2]), shape: [4] }),
      /labels\[2\] = -1 is outside/,
    ],
    ['tau = 0', () => kdLoss(c.student, c.mentor, c.labels, { tau: 0 }), /tau must be a finite number > 0, got 0/],
    ['tau < 0', () => kdLoss(c.student, c.mentor, c.labels, { tau: -2 }), /tau must be a finite number > 0/],
    ['tau NaN', () => kdLoss(c.student, c.mentor, c.labels, { tau: NaN }), /tau must be a finite number > 0/],
    ['NaN student', () => kdLoss(withValue(c.student, 2 * 50 + 7, NaN), c.mentor, c.labels), /student_logits row 2 contains NaN or Inf/],
    ['Inf mentor', () => kdLoss(c.student, withValue(c.mentor, 3 * 50 + 49, Infinity), c.labels), /mentor_logits row 3 contains NaN or Inf/],
    [
      'NaN student, bf16 and float64 paths',
      async () => {
        await expect(kdLoss(withValue(c.student, 0, NaN), c.mentor, c.labels, { studentDtype: 'bfloat16' })).rejects.toThrow(
          /student_logits row 0 contains NaN/,
        );
        const s64 = { data: Float64Array.from(withValue(c.student, 110, NaN).data as Float32Array), shape: [4, 50] };
        const m64 = { data: Float64Array.from(c.mentor.data as Float32Array), shape: [4, 50] };
        return kdLoss(s64, m64, c.labels);
      },
      /student_logits row 2 contains NaN or Inf/,
    ],
    ['int student', () => kdLoss({ data: new Int32Array(200), shape: [4, 50] }, c.mentor, c.labels), /studentLogits.data must be a Float32Array/],
    ['1-D student', () => kdLoss({ data: new Float32Array(50), shape: [50] }, c.mentor, c.labels), /student_logits must be \[N,V\]/],
    [
      'data/shape mismatch',
      () => kdLoss({ data: new Float32Array(10), shape: [4, 50] }, c.mentor, c.labels),
      /studentLogits: shape \[4, 50\] needs 200 elements/,
    ],
    ['float labels', () => kdLoss(c.student, c.mentor, { data: new Float32Array(4), shape: [4] }), /labels.data must be an Int32Array/],
    [
      'f64 student with f32 mentor',
      () => kdLoss({ data: Float64Array.from(c.student.data as Float32Array), shape: [4, 50] }, c.mentor, c.labels),
      /float64 is supported only when student and mentor logits are both float64/,
    ],
    ['unknown reduction', () => kdLoss(c.student, c.mentor, c.labels, { reduction: 'avg' as KdLossOptions['reduction'] }), /unknown reduction 'avg'/],
    ['unknown dtype', () => kdLoss(c.student, c.mentor, c.labels, { studentDtype: 'int8' as KdLossOptions['studentDtype'] }), /unknown dtype 'int8'/],
    ['cuda without a GPU or CUDA build', () => kdLoss(c.student, c.mentor, c.labels, { device: 'cuda:7' }), /cuda/i],
    [
      'top-k index ≥ V',
      () => kdLossTopK(c.student, { ...topk, indices: { data: new Int32Array([0, 1, 2, 3, 4, 50, 6, 7]), shape: [4, 2] } }, c.labels),
      /topk indices row 2 has a token outside \[0, V=50\)/,
    ],
    [
      'top-k duplicate',
      () => kdLossTopK(c.student, { ...topk, indices: { data: new Int32Array([0, 1, 2, 3, 4, 5, 6, 6]), shape: [4, 2] } }, c.labels),
      /topk indices row 3 repeats a token/,
    ],
    [
      'top-k positive logprob',
      () => kdLossTopK(c.student, { ...topk, logprobs: { data: new Float32Array([0.5, -1, -1, -1, -1, -1, -1, -1]), shape: [4, 2] } }, c.labels),
      /topk logprobs row 0 has a NaN or positive log-prob/,
    ],
    [
      'top-k mass > 1',
      () => kdLossTopK(c.student, { ...topk, logprobs: { data: new Float32Array([-0.1, -0.1, -1, -1, -1, -1, -1, -1]), shape: [4, 2] } }, c.labels),
      /topk logprobs row 0 .*sum to more than 1/,
    ],
    [
      'top-k rest mass > 1',
      () => kdLossTopK(c.student, { ...topk, restMass: { data: new Float32Array([0.5, 0.5, 1.5, 0.5]), shape: [4] } }, c.labels),
      /topk rest_mass\[2\] is NaN or outside \[0, 1\]/,
    ],
    [
      'top-k shape',
      () =>
        kdLossTopK(
          c.student,
          { ...topk, indices: { data: new Int32Array(6), shape: [3, 2] }, logprobs: { data: new Float32Array(6), shape: [3, 2] } },
          c.labels,
        ),
      /topk indices has shape \[3, 2\] but student_logits has 4 rows/,
    ],
    [
      'top-k k > V',
      () =>
        kdLossTopK(
          c.student,
          { indices: { data: new Int32Array(4 * 51), shape: [4, 51] }, logprobs: { data: new Float32Array(4 * 51), shape: [4, 51] } },
          c.labels,
        ),
      /top-k has k=51 but student_logits has V=50/,
    ],
    [
      'linear: d mismatch',
      () => kdLossLinear({ data: new Float32Array(4 * 8), shape: [4, 8] }, { data: new Float32Array(50 * 9), shape: [50, 9] }, { logits: c.mentor }, c.labels),
      /kd_loss_linear: weight has d=9 but hidden has d=8/,
    ],
    [
      'linear: mentor V mismatch',
      () => kdLossLinear({ data: new Float32Array(4 * 8), shape: [4, 8] }, { data: new Float32Array(49 * 8), shape: [49, 8] }, { logits: c.mentor }, c.labels),
      /kd_loss_linear: mentor_logits has V=50 but student_logits has V=49/,
    ],
    [
      'linear: label ≥ V',
      () =>
        kdLossLinear(
          { data: new Float32Array(4 * 8), shape: [4, 8] },
          { data: new Float32Array(50 * 8), shape: [50, 8] },
          { logits: c.mentor },
          { data: new Int32Array([0, 0, 99, 0]), shape: [4] },
          { chunkRows: 1 },
        ),
      /kd_loss_linear: labels\[2\] = 99 is outside \[0, V=50\)/,
    ],
  ];
  for (const [name, run, message] of cases) {
    it(name, async () => {
      await expect(run()).rejects.toThrow(message);
    });
  }

  it('still works afterwards, and a NaN in an ignored row is not an error', async () => {
    const r = await kdLoss(c.student, c.mentor, c.labels);
    expect(Number.isFinite(r.loss)).toBe(true);
    const r2 = await kdLoss(withValue(c.student, 1 * 50 + 3, NaN), c.mentor, c.labels);
    expect(r2.loss).toBeCloseTo(r.loss, 6);
  });
});
