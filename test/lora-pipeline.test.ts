/**
 * A LoRA mentor through the pipeline: mentor.train.lora on a base model directory trains adapters
 * only; the published mentor is a PEFT adapter directory, which the later stages load with the
 * adapters merged in — augmentation generates from it and the mentor-kd student takes its soft
 * labels online.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../lib/config/load.js';
import { T5Model } from '../lib/model/t5-model.js';
import { buildT5Tokenizer } from '../lib/model/tokenizer.js';
import { runPipeline } from '../lib/pipeline/pipeline.js';
import { tinyConfig } from './helpers/pipeline-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-lora-pipeline-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('pipeline with a LoRA mentor', () => {
  it('trains adapters only, publishes them in PEFT format, and augments and distils from the merged mentor', async () => {
    const c = tinyConfig(join(root, 'run'));
    // The base the adapters go on: a saved model with a tokenizer (mentor and student share it).
    const baseDir = join(root, 'base');
    const corpus = Array.from({ length: 20 }, (_, i) => `${i} + ${i * 7} = ${i * 8} . the answer is ${i * 8} apples and ${i} pears costs`);
    const tok = buildT5Tokenizer(corpus, { vocabSize: 200, minCount: 1 });
    const mentorShape = (c.mentor.init as { config: Record<string, unknown> }).config;
    const base = await T5Model.fromConfig(
      { model_type: 't5', ...mentorShape, vocab_size: tok.vocabSize, pad_token_id: tok.padId, decoder_start_token_id: tok.padId, eos_token_id: tok.eosId },
      { seed: 3 },
    );
    await base.save(baseDir);
    base.dispose();
    writeFileSync(join(baseDir, 'tokenizer.json'), JSON.stringify(tok.json));
    writeFileSync(join(baseDir, 'tokenizer_config.json'), JSON.stringify(tok.config));
    c.tokenizer = { dir: baseDir, vocabSize: tok.vocabSize } as never;
    c.mentor.init = { model_name_or_path: baseDir } as never;
    (c.mentor.train as Record<string, unknown>).lora = { r: 8, lora_alpha: 16, target_modules: ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] };
    c.student.modes = ['mentor-kd'];
    c.mentor.train.num_train_epochs = 5;
    c.student.train.num_train_epochs = 3;

    await runPipeline(validateConfig(c as never), { log: () => {} });
    const stages = join(root, 'run', 'stages');
    const mentorDir = readdirSync(stages).find((s) => s.startsWith('train-mentor'))!;
    const published = join(stages, mentorDir, 'model');
    // The published mentor: PEFT's adapter files (plus config.json), no weights of its own.
    expect(existsSync(join(published, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(published, 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(published, 'model.safetensors'))).toBe(false);
    expect(JSON.parse(readFileSync(join(published, 'adapter_config.json'), 'utf8'))).toMatchObject({
      peft_type: 'LORA',
      r: 8,
      base_model_name_or_path: baseDir,
    });
    // Loading it merges the adapters into the base: the weights moved off the base's.
    const merged = await T5Model.load(published);
    const plain = await T5Model.load(baseDir);
    const w = 'decoder.block.0.layer.1.EncDecAttention.v.weight';
    expect(Array.from(merged.getParameter(w).data)).not.toEqual(Array.from(plain.getParameter(w).data));
    expect(Array.from(merged.getParameter('shared.weight').data)).toEqual(Array.from(plain.getParameter('shared.weight').data));
    merged.dispose();
    plain.dispose();
    // Augmentation generated from the merged mentor (a line for each of the 200 training questions) ...
    const augment = readdirSync(stages).find((s) => s.startsWith('augment'))!;
    const generated = readFileSync(join(stages, augment, 'generated.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(generated.length).toBe(200);
    // ... and the mentor-kd student's steps carry a KL term from its online soft labels.
    const student = readdirSync(stages).find((s) => s.startsWith('student-mentor-kd'))!;
    const steps = readFileSync(join(stages, student, 'train', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kl?: number })
      .filter((r) => r.kl !== undefined);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((r) => r.kl! > 0)).toBe(true);
  }, 600_000);
});
