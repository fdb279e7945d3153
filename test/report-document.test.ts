// The run report from a run directory's files: per-model facts (parameters from the safetensors
// header, steps, tokens, time, final path, faithfulness, a fixed sample of rationales), the chance
// line, the teacher's tokens and cost, and both documents with their charts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chanceLine } from '../lib/report/chance.js';
import { formatCount, formatSeconds, writeReport } from '../lib/report/document.js';
import { countParameters, modelFacts, sampleRationales, stepRows, type PredictionRow } from '../lib/report/model-facts.js';
import { teacherUsage } from '../lib/report/teacher-usage.js';
import { reportCharts } from '../lib/pipeline/stages/report.js';
import { coinFlipQuestion } from '../lib/tasks/synthetic.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-report-doc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A safetensors file with these tensor shapes (zero data). */
function safetensors(file: string, shapes: Record<string, number[]>): void {
  let offset = 0;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (const [name, shape] of Object.entries(shapes)) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(offset)]));
}

const question = (flips: boolean[]) => coinFlipQuestion(flips.map((f, i) => ({ person: ['Jade', 'Vanessa'][i]!, flips: f })));
const faithfulOut = (flips: boolean[]) => {
  const n = flips.filter(Boolean).length;
  return `Count the flips. Jade ${flips[0] ? 'flips' : 'does not flip'} it. Vanessa ${flips[1] ? 'flips' : 'does not flip'} it. That makes ${n} flip${n === 1 ? '' : 's'}, an ${n % 2 ? 'odd' : 'even'} number. So the coin is ${n % 2 ? 'tails' : 'heads'} up, and the answer is ${n % 2 ? 'no' : 'yes'}. --> ${n % 2 ? 'no' : 'yes'}`;
};

/** A trained model's stage folder and its evaluation, as the pipeline leaves them. */
function fakeModel(stagesDir: string, stage: string, o: { withKd: boolean; predictions: PredictionRow[] }) {
  const dir = join(stagesDir, stage);
  mkdirSync(join(dir, 'model'), { recursive: true });
  mkdirSync(join(dir, 'train'), { recursive: true });
  safetensors(join(dir, 'model', 'model.safetensors'), { 'shared.weight': [10, 4], 'lm_head.weight': [10, 4], 'final_layer_norm.weight': [4] });
  const rows = [
    { event: 'truncation', dataset: 'train' },
    ...[1, 2, 3, 4].map((step) => ({ step, loss: 4 / step, ce: 5 / step, kl: o.withKd ? 2 / step : 0, tokens: 10, source_tokens: 20 })),
    { step: 2, eval_accuracy: 0.25, eval_correct: 1, eval_total: 4 },
    { step: 4, loss: 0.9, ce: 1.1, kl: o.withKd ? 0.4 : 0, tokens: 12, source_tokens: 20 }, // resumed: step 4 again, the last row counts
    { step: 4, eval_accuracy: 0.75, eval_correct: 3, eval_total: 4 },
  ];
  writeFileSync(join(dir, 'train', 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n{"step": 5, "lo'); // torn last line
  mkdirSync(join(stagesDir, `evaluate-${stage}`), { recursive: true });
  writeFileSync(
    join(stagesDir, `evaluate-${stage}`, 'predictions.jsonl'),
    JSON.stringify({ batch: 0, rows: o.predictions.map((p) => ({ ...p, sample: 0 })) }) + '\n',
  );
  return {
    label: stage === 'train-mentor' ? 'mentor' : stage.replace('student-', ''),
    stage,
    stageDir: dir,
    modelDir: join(dir, 'model'),
    metricsFile: join(dir, 'train', 'metrics.jsonl'),
    predictionsFile: join(stagesDir, `evaluate-${stage}`, 'predictions.jsonl'),
    summary: { examples: 40, steps: 4, devAccuracy: 0.75, seconds: 95.2 },
    durationMs: 96_000,
  };
}

const cases: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [true, true],
  [false, true],
];
const gold = (f: boolean[]) => (f.filter(Boolean).length % 2 ? 'no' : 'yes');
const predictions = (kind: 'faithful' | 'stranger'): PredictionRow[] =>
  cases.map((f, i) => ({
    id: `coin_flip-0-${i}`,
    question: question(f),
    answer: gold(f),
    output: kind === 'faithful' ? faithfulOut(f) : faithfulOut(f).replace('Jade', 'Mona'),
    correct: i !== 3,
  }));

describe('model facts', () => {
  const stagesDir = join(root, 'run', 'stages');
  const mentor = fakeModel(stagesDir, 'train-mentor', { withKd: false, predictions: predictions('faithful') });
  const student = fakeModel(stagesDir, 'student-mentor-kd-m2', { withKd: true, predictions: predictions('stranger') });

  it('reads size, steps, tokens, time, curves and test results from the stage folders', () => {
    expect(countParameters(join(mentor.modelDir, 'model.safetensors'))).toBe(84);
    expect(countParameters(join(root, 'missing.safetensors'))).toBeNull();
    expect(stepRows(mentor.metricsFile).map((r) => r.step)).toEqual([1, 2, 3, 4]);
    const m = modelFacts('coin_flip', mentor);
    expect(m).toMatchObject({ parameters: 84, steps: 4, examples: 40, trainSeconds: 95.2, devAccuracy: 0.75, withKd: false });
    expect(m.tokens).toEqual({ source: 80, target: 42 }); // step 4's resumed row replaces the first
    expect(m.test).toEqual({ accuracy: 0.75, correct: 3, total: 4 });
    expect(m.dev).toEqual([
      [2, 0.25],
      [4, 0.75],
    ]);
    expect(m.faithfulness).toEqual({ total: 4, faithful: 1, byCheck: { entities: 1, steps: 1, conclusion: 1 } });
    const s = modelFacts('coin_flip', student);
    expect(s.withKd).toBe(true);
    expect(s.faithfulness?.byCheck.entities).toBe(0); // right answers, a person who is not in the question
  });

  it('samples in one fixed question order for every model, correct first, each with its faithfulness', () => {
    const a = sampleRationales('coin_flip', predictions('faithful'), 2);
    const b = sampleRationales('coin_flip', predictions('stranger'), 2);
    expect(a.map((r) => r.id)).toEqual(b.map((r) => r.id));
    expect(a.map((r) => r.correct)).toEqual([true, true, false]);
    expect(a.every((r) => r.faithful)).toBe(true);
    expect(b.every((r) => !r.faithful && r.reasons[0] === 'names not in the question: Mona')).toBe(true);
  });

  it('writes both documents with the models table, chance line, teacher cost, charts and samples', async () => {
    const cache = join(root, 'teacher.cache.jsonl');
    writeFileSync(
      cache,
      [
        { stage: 'rationale', usage: { promptTokens: 1_000_000, completionTokens: 200_000 } },
        { stage: 'answer', usage: { promptTokens: 500_000, completionTokens: 100_000 } },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n{"torn',
    );
    const teacher = teacherUsage(cache, 'gpt-4o-mini');
    expect(teacher).toMatchObject({ requests: 2, promptTokens: 1_500_000, completionTokens: 300_000 });
    expect(teacher!.costUsd).toBeCloseTo(1.5 * 0.15 + 0.3 * 0.6, 10);
    expect(teacherUsage(cache, 'my-local-model')!.costUsd).toBeNull();

    const chance = chanceLine(
      'coin_flip',
      [{ answer: 'no' }, { answer: 'No' }, { answer: 'yes' }],
      [{ answer: 'no' }, { answer: 'yes' }, { answer: 'yes' }, { answer: 'yes' }],
    );
    expect(chance).toEqual({ accuracy: 0.5, label: 'random answer (1 of 2)', majority: { answer: 'no', accuracy: 0.25 }, random: 0.5 });

    const models = [modelFacts('coin_flip', mentor), modelFacts('coin_flip', student)];
    const dir = join(root, 'report');
    mkdirSync(dir);
    const out = await writeReport(dir, {
      title: 'Mentor-KD run: coin_flip',
      models,
      chance,
      teacher,
      stages: [{ name: 'train-mentor', seconds: 96, skipped: false, summary: 'trained' }],
      notes: [],
      charts: reportCharts(models, chance),
      config: { task: 'coin_flip' },
    });
    const html = readFileSync(out.html, 'utf8');
    const md = readFileSync(out.markdown, 'utf8');
    for (const doc of [html, md]) {
      expect(doc).toContain(mentor.modelDir); // the final model's path
      expect(doc).toContain('75.0% (3/4)');
      expect(doc).toContain('1 min 35 s');
      expect(doc).toMatch(/random answer 50\.0%/);
      expect(doc).toContain('$0.4050 at list price');
      expect(doc).toContain('names not in the question: Mona');
    }
    // models table: mentor faithful 100%, the student 0% with its names check at 0%.
    expect(md).toMatch(/\| mentor \| 75\.0% \(3\/4\) \| 100\.0% \| 100\.0% \| 75\.0% \| 84 \| 4 \| 122 \| 1 min 35 s \|/);
    expect(md).toMatch(/\| mentor-kd-m2 \| 75\.0% \(3\/4\) \| 0\.0% \| 0\.0% \|/);
    expect(md).toContain('![Training loss per objective](loss.svg)');
    expect((html.match(/<svg/g) ?? []).length).toBe(2); // inline, no network
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    expect(html).toContain('✓ correct');
    expect(html).toContain('✗ incorrect');
    const loss = readFileSync(join(dir, 'loss.svg'), 'utf8');
    expect(loss).toContain('KD divergence to the mentor');
    expect(loss).toContain('cross-entropy (CE)');
  }, 60_000);
});

describe('formatting', () => {
  it('counts and durations', () => {
    expect([formatCount(84), formatCount(45_210), formatCount(1_234_567), formatCount(null)]).toEqual(['84', '45.2k', '1.23M', '–']);
    expect([formatSeconds(7.25), formatSeconds(95.2), formatSeconds(5400)]).toEqual(['7.3 s', '1 min 35 s', '1 h 30 min']);
  });
});
