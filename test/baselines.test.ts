/**
 * The paper's baselines as student modes: Distilling step-by-step (two task rows per rationale,
 * per-task mean CE weighted by λ, tested on the `[label]` task) and MCC-KD (a question's
 * rationales in one micro-batch, the bidirectional KL between the answer distributions). Each
 * loss is checked on hand-computed cases (numbers written from the formula) and through the
 * native step against an independent JS computation from the model's own logits; then bad
 * settings, and a tiny pipeline with both modes writing results.json entries.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { devNative } from '../lib/native/index.js';
import { tensor } from '../lib/model/tensor.js';
import { runPipeline, type PipelineResult } from '../lib/pipeline/pipeline.js';
import { runSweep } from '../lib/pipeline/sweep.js';
import { baselineData, mccKdExamples } from '../lib/pipeline/stages/baselines.js';
import type { RunConfigInput } from '../lib/config/schema.js';
import { tokenizeDataset, train, TrainEngine, type CollatedBatch, type Seq2SeqExample } from '../lib/train/index.js';
import { exampleUnits, targetTokens } from '../lib/train/example-groups.js';
import { answerSpan, mccKdObjective } from '../lib/train/mcc-kd.js';
import { rowObjective } from '../lib/train/row-objective.js';
import { stepByStepExamples, stepByStepObjective, stepByStepTaskWeights } from '../lib/train/step-by-step.js';
import { microConfig } from './helpers/micro-config.js';
import { tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-baselines-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tokenizer = toyTokenizer();
const tokenized = (examples: Seq2SeqExample[]) => tokenizeDataset(examples, tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });

/** ½[KL(p‖q) + KL(q‖p)] of two logit rows, written out directly (softmax, then the two sums). */
function symmetricKl(x: readonly number[], y: readonly number[]): number {
  const softmax = (z: readonly number[]) => {
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  const p = softmax(x);
  const q = softmax(y);
  let kl = 0;
  for (let v = 0; v < p.length; v++) kl += p[v]! * Math.log(p[v]! / q[v]!) + q[v]! * Math.log(q[v]! / p[v]!);
  return kl / 2;
}

describe('step-by-step', () => {
  it('makes a [label] row (answer only) and a [rationale] row (rationale only) per rationale, grouped', () => {
    const rows = stepByStepExamples([
      { id: 'q1', question: 'Is it up?', rationale: 'Ann flips it. So no.', answer: 'no' },
      { id: 'q1', question: 'Is it up?', rationale: 'One flip. So no.', answer: 'no' },
    ]);
    expect(rows).toEqual([
      { id: 'q1', group: 'q1#0', task: 'label', source: '[label] Is it up?', target: '--> no', answer: 'no' },
      { id: 'q1', group: 'q1#0', task: 'rationale', source: '[rationale] Is it up?', target: 'Ann flips it. So no.', answer: 'no' },
      { id: 'q1', group: 'q1#1', task: 'label', source: '[label] Is it up?', target: '--> no', answer: 'no' },
      { id: 'q1', group: 'q1#1', task: 'rationale', source: '[rationale] Is it up?', target: 'One flip. So no.', answer: 'no' },
    ]);
    // A rationale's two rows are one unit of the batch stream.
    const data = tokenized(rows.map((r) => ({ ...r, source: 'reverse: a b', target: r.task === 'label' ? 'a' : 'b a' })));
    expect(exampleUnits(data.examples)).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it('weighs each task to its own token mean: (L_label + λ·L_rationale) / (1 + λ)', () => {
    // A step of 2 label tokens and 6 rationale tokens (N = 8), λ = 1: the step divides Σ w·CE-sum
    // by 8, so w_label = ½·8/2 = 2 and w_rationale = ½·8/6 = 2/3; λ = 3: ¼·8/2 = 1, ¾·8/6 = 1.
    const label = { source: 'reverse: a', target: 'a', task: 'label', group: 'g' }; // 'a' + EOS = 2 tokens
    const rationale = { source: 'reverse: a', target: 'a b c d e', task: 'rationale', group: 'g' }; // 5 + EOS = 6 tokens
    const data = tokenized([label, rationale]);
    const weigh = (lambda: number) => {
      const o = stepByStepObjective(tokenizer.padId, stepByStepTaskWeights(lambda));
      const batches = o.collate(data.examples);
      o.weigh(batches);
      return batches.map((b) => [b.task, targetTokens(b), b.ceWeight]);
    };
    const one = weigh(1);
    expect(one.map(([t, n]) => [t, n])).toEqual([
      ['label', 2],
      ['rationale', 6],
    ]);
    expect(one[0]![2]).toBeCloseTo(2, 12);
    expect(one[1]![2]).toBeCloseTo(2 / 3, 12);
    const three = weigh(3);
    expect(three[0]![2]).toBeCloseTo(1, 12);
    expect(three[1]![2]).toBeCloseTo(1, 12);
  });

  it('the native step with those weights gives (CE_label + λ·CE_rationale) / (1 + λ) of the separate means', async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0, seed: 3 });
    const engine = await TrainEngine.create(model, { learning_rate: 1e-3, seed: 1 });
    const rows = [
      { source: 'reverse: a b', target: 'b', task: 'label', group: 'g0' },
      { source: 'reverse: a b', target: 'b a c', task: 'rationale', group: 'g0' },
      { source: 'reverse: c d e', target: 'e', task: 'label', group: 'g1' },
      { source: 'reverse: c d e', target: 'e d c b a', task: 'rationale', group: 'g1' },
    ];
    const data = tokenized(rows);
    const lambda = 0.5;
    const o = stepByStepObjective(tokenizer.padId, stepByStepTaskWeights(lambda));
    const batches = o.collate(data.examples);
    const separately = await Promise.all(batches.map((b) => engine.evaluateLoss([b])));
    o.weigh(batches);
    const joint = await engine.evaluateLoss(batches);
    expect(joint.loss).toBeCloseTo((separately[0]!.loss + lambda * separately[1]!.loss) / (1 + lambda), 5);
    engine.dispose();
    model.dispose();
  });
});

describe('MCC-KD consistency term', () => {
  it('finds the answer tokens at the end of a target (before EOS), or none', () => {
    expect(answerSpan([5, 6, 7, 8, 1], [7, 8], 1)).toEqual({ start: 2, length: 2 });
    expect(answerSpan([5, 6, 7, 8], [7, 8], 1)).toEqual({ start: 2, length: 2 }); // truncated EOS
    expect(answerSpan([5, 6, 7, 1], [7, 8], 1)).toBeNull(); // truncated answer
    expect(answerSpan([8, 1], [7, 8], 1)).toBeNull();
  });

  it('native: ½[KL(p‖q)+KL(q‖p)] at the listed positions, weighted, on hand-computed cases', () => {
    const dev = devNative().dev;
    // W = I (V = d = 2): the hidden rows are the logits. Row 0: [0, 0] → p = (½, ½);
    // row 1: [ln 3, 0] → q = (¾, ¼). Σ(p−q)(ln p − ln q) = −¼·ln(2/3) + ¼·ln 2 = ¼·ln 3, halved: ln(3)/8.
    const W = tensor(Float64Array.from([1, 0, 0, 1]), [2, 2]);
    const h = tensor(Float64Array.from([0, 0, Math.log(3), 0, 2, -1]), [3, 2]);
    const pairs = (a: number[], b: number[], w: number[]) => ({
      a: tensor(Int32Array.from(a), [a.length]),
      b: tensor(Int32Array.from(b), [b.length]),
      weight: tensor(Float64Array.from(w), [w.length]),
    });
    const one = dev.answerConsistency(h, W, pairs([0], [1], [1]));
    expect(one.loss).toBeCloseTo(Math.log(3) / 8, 12);
    // Symmetric: the same pair the other way round.
    expect(dev.answerConsistency(h, W, pairs([1], [0], [1])).loss).toBeCloseTo(Math.log(3) / 8, 12);
    // Weighted sum over pairs: 2·ln(3)/8 + 0.5·sym(row 0, row 2); row 2 = [2, −1]: p = (e³, 1)/(e³+1).
    const e3 = Math.exp(3);
    const r = [e3 / (e3 + 1), 1 / (e3 + 1)];
    const sym02 = ((0.5 - r[0]!) * (Math.log(0.5) - Math.log(r[0]!)) + (0.5 - r[1]!) * (Math.log(0.5) - Math.log(r[1]!))) / 2;
    const two = dev.answerConsistency(h, W, pairs([0, 0], [1, 2], [2, 0.5]));
    expect(two.loss).toBeCloseTo((2 * Math.log(3)) / 8 + 0.5 * sym02, 12);
    // d/dz of ½Σ(p−q)(ln p − ln q) for row 0 (p's logits), by central differences of the formula:
    // the gradient flows into both sides of the pair.
    const f = (z0: number[], z1: number[]) => symmetricKl(z0, z1);
    const eps = 1e-6;
    const g0 = [0, 1].map((k) => {
      const up = [0, 0];
      const dn = [0, 0];
      up[k] = eps;
      dn[k] = -eps;
      return (f(up, [Math.log(3), 0]) - f(dn, [Math.log(3), 0])) / (2 * eps);
    });
    const g1 = [0, 1].map((k) => {
      const up = [Math.log(3), 0];
      const dn = [Math.log(3), 0];
      up[k]! += eps;
      dn[k]! -= eps;
      return (f([0, 0], up) - f([0, 0], dn)) / (2 * eps);
    });
    const grad = one.gradHidden.data;
    expect(grad[0]).toBeCloseTo(g0[0]!, 7);
    expect(grad[1]).toBeCloseTo(g0[1]!, 7);
    expect(grad[2]).toBeCloseTo(g1[0]!, 7);
    expect(grad[3]).toBeCloseTo(g1[1]!, 7);
    expect([grad[4], grad[5]]).toEqual([0, 0]); // row 2 is in no pair
    // Identical distributions: 0. No pairs: 0.
    expect(dev.answerConsistency(h, W, pairs([0], [0], [1])).loss).toBe(0);
    expect(dev.answerConsistency(h, W, pairs([], [], [])).loss).toBe(0);
  });

  it('native: refuses positions outside the batch, negative weights and mismatched lengths, naming them', () => {
    const dev = devNative().dev;
    const W = tensor(Float64Array.from([1, 0, 0, 1]), [2, 2]);
    const h = tensor(Float64Array.from([0, 0, 1, 0]), [2, 2]);
    const t = (xs: number[]) => tensor(Int32Array.from(xs), [xs.length]);
    const w = (xs: number[]) => tensor(Float64Array.from(xs), [xs.length]);
    expect(() => dev.answerConsistency(h, W, { a: t([0]), b: t([2]), weight: w([1]) })).toThrow(
      /pairs\.consistency\.b holds position 2 outside .* 2 decoder positions/,
    );
    expect(() => dev.answerConsistency(h, W, { a: t([0]), b: t([1]), weight: w([-1]) })).toThrow(/weight must be finite and >= 0/);
    expect(() => dev.answerConsistency(h, W, { a: t([0, 1]), b: t([1]), weight: w([1, 1]) })).toThrow(/one entry per pair/);
  });

  it("groups a question's rationales into one micro-batch and weighs pairs α·N/(Q·|pairs|·L)", () => {
    // Question A: 3 rationales ending with the answer 'c' (3 pairs); question B: 2 (1 pair), one of
    // them truncated before its answer (no pair left); question C: 2 rationales (1 pair).
    const ex = (group: string, target: string, answer: string) => ({ source: 'reverse: a', target, group, consistencyAnswer: answer });
    const data = tokenized([
      ex('A', 'a b c', 'c'),
      ex('A', 'b c', 'c'),
      ex('A', 'a a b c', 'c'),
      ex('B', 'a d', 'd'),
      ex('B', 'a b', 'd'),
      ex('C', 'e f g', 'f g'),
      ex('C', 'h f g', 'f g'),
    ]);
    expect(exampleUnits(data.examples)).toEqual([
      [0, 1, 2],
      [3, 4],
      [5, 6],
    ]);
    const alpha = 0.1;
    const o = mccKdObjective(tokenizer.padId, tokenizer, alpha);
    const batches = o.collate(data.examples);
    expect(batches).toHaveLength(1);
    o.weigh(batches);
    const b = batches[0]!;
    const T = b.labels.shape[1]!; // longest target: 'a a b c' + EOS = 5
    expect(T).toBe(5);
    const N = targetTokens(b); // 4+3+5+3+3+4+4 = 26
    expect(N).toBe(26);
    // Q = 2 questions with pairs (A, C). A: 3 pairs × 1 token: α·26/(2·3·1); C: 1 pair × 2 tokens: α·26/(2·1·2).
    const pos = (row: number, t: number) => row * T + t;
    expect(Array.from(b.consistency!.a.data)).toEqual([pos(0, 2), pos(0, 2), pos(1, 1), pos(5, 1), pos(5, 2)]);
    expect(Array.from(b.consistency!.b.data)).toEqual([pos(1, 1), pos(2, 3), pos(2, 3), pos(6, 1), pos(6, 2)]);
    const wa = (0.1 * 26) / 6;
    const wc = (0.1 * 26) / 4;
    const weights = Array.from(b.consistency!.weight.data);
    [wa, wa, wa, wc, wc].forEach((w, i) => expect(weights[i]).toBeCloseTo(w, 12));
  });

  it("the native step adds α·mean consistency, matching a JS computation from the model's logits", async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0, seed: 5 });
    const engine = await TrainEngine.create(model, { learning_rate: 1e-3, seed: 1 });
    const ex = (group: string, target: string) => ({ source: `reverse: ${group}`, target, group, consistencyAnswer: 'e' });
    const data = tokenized([ex('a b', 'a b e'), ex('a b', 'b e'), ex('c d', 'c c d e'), ex('c d', 'd e'), ex('c d', 'a e')]);
    const alpha = 0.7;
    const o = mccKdObjective(tokenizer.padId, tokenizer, alpha);
    const batches = o.collate(data.examples);
    o.weigh(batches);
    const b = batches[0]!;
    const plain: CollatedBatch = { ...b, consistency: undefined };
    const [withTerm, without] = [await engine.evaluateLoss([b]), await engine.evaluateLoss([plain])];
    // The expected term from the teacher-forced logits: mean over the 2 questions of the mean over their pairs.
    const { logits } = await model.forward(b, { returnLogits: true });
    const [B, T, V] = logits!.shape as [number, number, number];
    const row = (r: number, t: number) => Array.from(logits!.data.subarray((r * T + t) * V, (r * T + t + 1) * V));
    const eAt = (r: number) => data.examples[r]!.targetIds.length - 2; // 'e' just before EOS
    const sym = (r: number, s: number) => symmetricKl(row(r, eAt(r)), row(s, eAt(s)));
    const expected = (sym(0, 1) + (sym(2, 3) + sym(2, 4) + sym(3, 4)) / 3) / 2;
    expect(B).toBe(5);
    expect(withTerm.consistency).toBeCloseTo((alpha * expected * 1) / 1, 5);
    expect(withTerm.loss - without.loss).toBeCloseTo(alpha * expected, 5);
    expect(without.consistency).toBe(0);
    expect(withTerm.ce).toBeCloseTo(without.ce, 6);
    // A step reports it too, and trains through it.
    const step = await engine.step([b]);
    expect(step.status).toBe('ok');
    expect(step.consistency).toBeCloseTo(withTerm.consistency, 5);
    engine.dispose();
    model.dispose();
  });
});

describe('training with grouped rows', () => {
  it("batches groups whole (a question's rationales in one micro-batch) and trains both objectives", async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0, seed: 7 });
    // Five questions, two rationales each ('a x' / 'b x' for the question starting with x): groups of 2 rows.
    const rows: Seq2SeqExample[] = ['a b', 'c d', 'e f', 'g h', 'a c'].flatMap((q) => {
      const first = q.split(' ')[0]!;
      return ['a', 'b'].map((r) => ({ source: `reverse: ${q}`, target: `${r} ${first}`, group: q, consistencyAnswer: first }));
    });
    const seen: number[] = [];
    const r = await train({
      model,
      tokenizer,
      train: rows,
      output_dir: join(root, 'grouped'),
      max_steps: 3,
      per_device_train_batch_size: 2,
      learning_rate: 1e-3,
      save_steps: 0,
      seed: 1,
      consistency: { weight: 0.5 },
      onStep: (s) => void seen.push(s.tokens),
      progress: false,
    });
    expect(r.globalStep).toBe(3);
    // 3 steps of 2 questions (the epoch's 5 questions: 2 + 2 + 1), 2 rows of 3 target tokens each:
    // every step takes whole questions, and the epoch sees all 10 rows once.
    expect([...seen].sort((a, b) => a - b)).toEqual([6, 12, 12]);
    model.dispose();
  });

  it('refuses rows without a weighted task, negative weights, and both objectives at once', async () => {
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dropout: 0, seed: 7 });
    const base = { model, tokenizer, output_dir: join(root, 'bad'), max_steps: 1, per_device_train_batch_size: 2, save_steps: 0, progress: false };
    await expect(train({ ...base, train: [{ source: 'reverse: a', target: 'a' }], taskWeights: { label: 1, rationale: 1 } })).rejects.toThrow(
      /example 0 has task undefined, but taskWeights weighs only label, rationale/,
    );
    await expect(train({ ...base, train: [{ source: 'reverse: a', target: 'a' }], taskWeights: { label: -1 } })).rejects.toThrow(
      /taskWeights\.label must be a finite number >= 0/,
    );
    await expect(train({ ...base, train: [{ source: 'reverse: a', target: 'a' }], consistency: { weight: Number.NaN } })).rejects.toThrow(
      /consistency\.weight must be a finite number >= 0/,
    );
    await expect(train({ ...base, train: [{ source: 'reverse: a', target: 'a' }], taskWeights: { label: 1 }, consistency: { weight: 1 } })).rejects.toThrow(
      /not both/,
    );
    // MCC-KD's answer positions are a seq2seq decoder's: a decoder-only student is refused, not silently trained without the term.
    expect(() => rowObjective({ consistency: { weight: 1 } }, tokenizer, true)).toThrow(/consistency \(MCC-KD\) needs a T5 student/);
    model.dispose();
  });
});

describe('the pipeline modes', () => {
  it('picks up to rationales_per_question distinct rationales per question: the teacher’s, then the mentor’s', () => {
    const kept = [
      { questionId: 'q1', question: 'Q1', answer: 'yes', rationale: 'T1' },
      { questionId: 'q1', question: 'Q1', answer: 'yes', rationale: 'T1' }, // a duplicate
      { questionId: 'q2', question: 'Q2', answer: 'no', rationale: 'T2' },
    ];
    const mentorRow = (id: string, output: string) => ({ id, question: id, answer: '', sample: 0, output, correct: true });
    const augment = { keptRows: [mentorRow('q1', 'M1 --> yes'), mentorRow('q1', 'M2 --> yes'), mentorRow('q3', 'M3 --> no'), mentorRow('q2', 'T2 --> no')] };
    const rows = mccKdExamples(kept, augment, 2, (a) => a);
    expect(rows.map((r) => [r.group, r.target, r.consistencyAnswer])).toEqual([
      ['q1', 'T1 --> yes', 'yes'],
      ['q1', 'M1 --> yes', 'yes'],
      ['q2', 'T2 --> no', 'no'], // the mentor's only rationale repeats the teacher's; q3 has no teacher rationale
    ]);
  });

  it('names a student by its settings when they are not the defaults (stage name, key and label)', () => {
    const augment = { keptRows: [], manifest: { key: 'augment-key' } } as unknown as Parameters<typeof baselineData>[3];
    const at = (edit: (x: RunConfigInput) => void) => microConfig(join(root, 'unused'), edit);
    const dflt = baselineData(
      'mcc-kd',
      at(() => {}),
      [],
      augment,
      [],
    );
    expect([dflt.tag, dflt.labelNote]).toEqual(['-k2-a0.1', '']);
    const off = baselineData(
      'mcc-kd',
      at((x) => void (x.student.mccKd = { consistency_weight: 0 })),
      [],
      augment,
      [],
    );
    expect([off.tag, off.labelNote]).toEqual(['-k2-a0', ' [2 rationales per question, consistency_weight 0]']);
    expect(off.key).toEqual({ mccKd: { consistency_weight: 0, rationales_per_question: 2 }, augment: 'augment-key' });
    const sbs = baselineData(
      'step-by-step',
      at((x) => void (x.student.stepByStep = { rationale_weight: 0.5 })),
      [],
      augment,
      [],
    );
    expect([sbs.tag, sbs.labelNote, sbs.questionPrefix]).toEqual(['-rw0.5', ' [rationale_weight 0.5]', '[label] ']);
    expect(sbs.options.taskWeights).toEqual({ label: 1, rationale: 0.5 });
  });

  it('refuses bad settings, naming the field', () => {
    const dir = join(root, 'unused');
    expect(() => microConfig(dir, (x) => void (x.student.stepByStep = { rationale_weight: -1 }))).toThrow(
      /student\.stepByStep\.rationale_weight.*must be a number >= 0, got -1/,
    );
    expect(() => microConfig(dir, (x) => void (x.student.mccKd = { rationales_per_question: 1 }))).toThrow(
      /student\.mccKd\.rationales_per_question.*an integer >= 2/,
    );
    expect(() => microConfig(dir, (x) => void (x.student.mccKd = { consistency_weight: 'high' as never }))).toThrow(/student\.mccKd\.consistency_weight/);
    expect(() => microConfig(dir, (x) => void (x.student.mccKd = { alpha: 0.1 } as never))).toThrow(/student\.mccKd/);
    // micro: 1 teacher sample + 1 mentor augmentation per question: 3 rationales cannot be reached.
    expect(() =>
      microConfig(dir, (x) => {
        x.student.modes = ['mcc-kd'];
        x.student.mccKd = { rationales_per_question: 3 };
      }),
    ).toThrow(/rationales_per_question.*3 exceeds the rationales a question can have: teacher\.samples \(1\) \+ augment\.samples \(1\)/);
  });

  it('a tiny run trains and evaluates both modes into results.json; step-by-step is tested on [label] questions', { timeout: 600_000 }, async () => {
    const dir = join(root, 'run');
    const r = await runPipeline(
      microConfig(dir, (x) => {
        x.student.modes = ['step-by-step', 'mcc-kd'];
      }),
      { log: () => {} },
    );
    const saved = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as PipelineResult;
    expect(saved.students.map((s) => s.label)).toEqual(['step-by-step', 'mcc-kd']);
    for (const s of saved.students) {
      expect(s.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(s.testAccuracy).toBeLessThanOrEqual(1);
    }
    expect(r.students).toHaveLength(2);
    const predictions = readFileSync(join(dir, 'stages', 'evaluate-student-step-by-step', 'predictions.jsonl'), 'utf8');
    const first = JSON.parse(predictions.split('\n')[0]!) as { rows: { question: string }[] };
    expect(first.rows[0]!.question.startsWith('[label] ')).toBe(true);
    const mcc = JSON.parse(readFileSync(join(dir, 'stages', 'student-mcc-kd-k2-a0.1', 'manifest.json'), 'utf8')) as { summary: { examples: number } };
    // Up to 2 rationales per question (1 teacher + 1 mentor), so more rows than the teacher's alone.
    const sbs = JSON.parse(readFileSync(join(dir, 'stages', 'student-step-by-step', 'manifest.json'), 'utf8')) as { summary: { examples: number } };
    expect(sbs.summary.examples % 2).toBe(0); // two task rows per rationale
    expect(mcc.summary.examples).toBeGreaterThan(sbs.summary.examples / 2);
  });

  it("compute-matched: a sweep trains both baselines for mentor-kd's optimizer steps", { timeout: 600_000 }, async () => {
    const out = join(root, 'sweep');
    const base = microConfig(out, (x) => (x.student.modeSettings = { 'mentor-kd': { train: { num_train_epochs: 2 } } }));
    const { cells } = await runSweep(
      base,
      { seeds: [0], fractions: [1], mentorSamples: [1], modes: ['mentor-kd', 'step-by-step', 'mcc-kd'], computeMatched: 'only', baseline: 'step-by-step' },
      { log: () => {} },
    );
    const dir = join(out, 'seed-0');
    const summary = (stage: string) =>
      (JSON.parse(readFileSync(join(dir, 'stages', stage, 'manifest.json'), 'utf8')) as { summary: { steps: number } }).summary;
    const steps = summary('student-mentor-kd-m1-epochs2').steps;
    expect(summary(`student-step-by-step-steps${steps}`).steps).toBe(steps);
    expect(summary(`student-mcc-kd-k2-a0.1-steps${steps}`).steps).toBe(steps);
    const matched = cells.filter((c) => c.budget === 'steps matched to mentor-kd').map((c) => c.mode);
    expect(matched.sort()).toEqual(['mcc-kd', 'step-by-step']);
    // step-by-step answers without a rationale: no faithfulness to measure (not a 0%).
    const faithfulness = (mode: string) => cells.find((c) => c.mode === mode && c.budget === 'steps matched to mentor-kd')!.faithfulness;
    expect(faithfulness('step-by-step')).toEqual([null]);
    expect(faithfulness('mcc-kd')).toEqual([expect.any(Number)]);
  });

  it('a tokens budget counts a step-by-step question with both its rows', { timeout: 600_000 }, async () => {
    const dir = join(root, 'tokens');
    await runPipeline(
      microConfig(dir, (x) => {
        x.student.modes = ['step-by-step'];
        x.student.budget = 'tokens';
        x.student.targetTokens = 3000;
      }),
      { log: () => {} },
    );
    const s = (
      JSON.parse(readFileSync(join(dir, 'stages', 'student-step-by-step-tokens3000', 'manifest.json'), 'utf8')) as {
        summary: { steps: number; tokens: number };
      }
    ).summary;
    // Steps come from tokens per question (its [label] and [rationale] rows together). Counted per row
    // they would be about twice as many (~6000 tokens). At 3 steps of 8 questions one partial batch
    // (the epoch's last) moves the total by up to a step, so the band is ±40%, not ±1 step.
    expect(s.tokens / 3000).toBeGreaterThan(0.6);
    expect(s.tokens / 3000).toBeLessThan(1.4);
  });
});
