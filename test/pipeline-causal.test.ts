/**
 * The pipeline end to end with decoder-only models (a tiny version of the demo-causal preset): a
 * Llama-architecture mentor and a Qwen2-architecture student from scratch on one byte-level BPE
 * vocabulary, trained for a few steps, the mentor's rationales generated and filtered, vanilla and
 * mentor-kd students, greedy evaluation; results.json and the manifests record each model's family
 * and prompt format. A KD run whose models have different vocabularies is refused before any work.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoCausalConfig } from '../lib/config/defaults.js';
import { validateConfig } from '../lib/config/load.js';
import { CausalLM } from '../lib/model/causal-model.js';
import { runPipeline, type PipelineResult } from '../lib/pipeline/pipeline.js';
import { PIPELINE_STAGES } from './helpers/pipeline-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-pipeline-causal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tinyCausal(output_dir: string) {
  const c = demoCausalConfig();
  c.output_dir = output_dir;
  c.threads = 1;
  c.data = { synthetic: { train: 60, dev: 10, test: 20, size: 2 } };
  c.tokenizer = { vocabSize: 320 };
  const shrink = (init: { config: Record<string, unknown> }, hidden: number) => ({
    config: { ...init.config, hidden_size: hidden, intermediate_size: 2 * hidden, num_hidden_layers: 1 },
  });
  c.mentor = { ...c.mentor, init: shrink(c.mentor.init as { config: Record<string, unknown> }, 48) };
  c.student = { ...c.student, init: shrink(c.student.init as { config: Record<string, unknown> }, 32) };
  for (const t of [c.mentor.train, c.student.train] as Record<string, unknown>[]) {
    delete t.num_train_epochs;
    t.max_steps = 6;
    t.warmup_steps = 2;
    t.save_steps = 3;
  }
  c.augment = { ...c.augment, samples: 2, maxNewTokens: 24, batchSize: 16 };
  c.student.mentorSamples = 2;
  c.evaluate = { maxNewTokens: 24, batchSize: 16 };
  return c;
}

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

describe('pipeline with decoder-only models', () => {
  it('runs every stage with a causal mentor and student and records family and prompt format', async () => {
    const dir = join(root, 'run');
    const lines: string[] = [];
    const r = await runPipeline(validateConfig(tinyCausal(dir) as never), { log: (l) => lines.push(l) });
    const stages = readdirSync(join(dir, 'stages')).sort();
    expect(stages).toEqual([...PIPELINE_STAGES].sort());
    expect(lines.find((l) => l.startsWith('[tokenizer]'))).toMatch(/built byte-level BPE tokenizer, \d+ tokens/);
    // The published models are HF causal directories of the configured architectures, one vocabulary.
    const mentorConfig = json(join(dir, 'stages/train-mentor/model/config.json'));
    const studentConfig = json(join(dir, 'stages/student-mentor-kd-m2/model/config.json'));
    expect([mentorConfig.model_type, studentConfig.model_type]).toEqual(['llama', 'qwen2']);
    expect(mentorConfig.vocab_size).toBe(studentConfig.vocab_size);
    const student = await CausalLM.load(join(dir, 'stages/student-vanilla/model'));
    expect(student.info().modelType).toBe('qwen2');
    student.dispose();

    const plain = { kind: 'plain', format: 'Q: {question}\\nA:' };
    const results = json(join(dir, 'results.json')) as unknown as PipelineResult;
    expect(results.models).toEqual({
      mentor: { family: 'causal', modelType: 'llama', promptFormat: plain },
      student: { family: 'causal', modelType: 'qwen2', promptFormat: plain },
    });
    expect(r.students.map((s) => s.mode)).toEqual(['vanilla', 'mentor-kd']);
    for (const s of r.students) expect(s.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(r.mentor.testAccuracy).not.toBeNull();
    // Every model stage's manifest says which prompt format it trained or generated with.
    for (const stage of ['train-mentor', 'augment', 'student-mentor-kd-m2', 'evaluate-student-vanilla']) {
      const summary = (json(join(dir, 'stages', stage, 'manifest.json')) as { summary: { model?: unknown } }).summary;
      expect(summary.model, stage).toMatchObject({ family: 'causal', promptFormat: plain });
    }
    // The evaluated outputs are the model's completions (prompt not repeated), one per test question.
    const preds = readFileSync(join(dir, 'stages/evaluate-train-mentor/predictions.jsonl'), 'utf8').trim().split('\n');
    expect(preds).toHaveLength(20);
    for (const line of preds) expect((JSON.parse(line) as { rows: { output: string }[] }).rows[0]!.output.startsWith('Q:')).toBe(false);
    // The mentor generated its samples for every training question.
    const augment = (json(join(dir, 'stages/augment/manifest.json')) as { summary: { samples: number } }).summary;
    expect(augment.samples).toBe(2 * 60);
  });

  it('refuses KD between models of different vocabularies before any stage, naming both', async () => {
    const dir = join(root, 'mismatch');
    const modelDir = join(root, 'big-vocab');
    mkdirSync(modelDir, { recursive: true });
    writeFileSync(join(modelDir, 'config.json'), JSON.stringify({ model_type: 'qwen2', vocab_size: 151936 }));
    const c = tinyCausal(dir);
    c.mentor = { ...c.mentor, init: { model_name_or_path: modelDir } as never };
    await expect(runPipeline(validateConfig(c as never), { log: () => {} })).rejects.toThrow(
      /needs one vocabulary.*mentor .*big-vocab \(vocab_size 151936.*student from scratch/,
    );
    expect(existsSync(join(dir, 'stages', 'data'))).toBe(false);
  });
});
