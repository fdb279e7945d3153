/** The training settings schema (lib/config/train-settings.ts) and the one step record (lib/train/step-record.ts). No native code. */
import { describe, expect, it } from 'vitest';
import {
  describeIssues,
  KD_DEFAULTS,
  kdSettingsSchema,
  resolveBf16,
  TRAIN_DEFAULTS,
  trainSettingsJsonSchema,
  trainSettingsSchema,
} from '../lib/config/train-settings.js';
import { historyEntry, metricsRow, stepLog } from '../lib/train/step-record.js';
import type { StepResult } from '../lib/train/engine.js';

const problems = (input: unknown): string => {
  const r = trainSettingsSchema.safeParse(input);
  return r.success ? 'ok' : describeIssues(r.error, 'train');
};

describe('training settings', () => {
  it('defaults are defined once, in the schema', () => {
    expect(TRAIN_DEFAULTS).toMatchObject({
      per_device_train_batch_size: 8,
      gradient_accumulation_steps: 1,
      learning_rate: 3e-4,
      lr_scheduler_type: 'constant',
      warmup_steps: 0,
      weight_decay: 0,
      adam_beta1: 0.9,
      adam_beta2: 0.999,
      adam_epsilon: 1e-8,
      max_grad_norm: 1,
      seed: 42,
      save_steps: 0,
      save_total_limit: 3,
      maxSourceLength: 512,
      maxTargetLength: 512,
      bucketBatches: 50,
    });
    expect(TRAIN_DEFAULTS.bf16).toBeUndefined();
    expect(KD_DEFAULTS).toEqual({ lambda: 0.3, tau: 2, divergence: 'forward-kl', beta: 0.5, alpha: 0.1 });
    expect(trainSettingsSchema.parse({ learning_rate: 1e-3 })).toEqual({ ...TRAIN_DEFAULTS, learning_rate: 1e-3 });
  });

  it('bf16 unset is on for CUDA, off for CPU', () => {
    expect([resolveBf16(undefined, 'cpu'), resolveBf16(undefined, 'cuda:0'), resolveBf16(true, 'cpu'), resolveBf16(false, 'cuda')]).toEqual([
      false,
      true,
      true,
      false,
    ]);
  });

  it('errors name the field and the value; renamed or misspelt keys are refused', () => {
    expect(problems({ per_device_train_batch_size: 0 })).toBe('train: per_device_train_batch_size must be a positive integer, got 0');
    expect(problems({ seed: -1 })).toBe('train: seed must be a non-negative integer, got -1');
    expect(problems({ warmup_steps: 1.5 })).toBe('train: warmup_steps must be a non-negative integer, got 1.5');
    expect(problems({ learning_rate: '1e-3' })).toBe('train: learning_rate must be a positive number, got "1e-3"');
    expect(problems({ lr_scheduler_type: 'step' })).toBe('train: lr_scheduler_type must be one of constant, linear, cosine, got "step"');
    expect(problems({ bf16: 'yes' })).toBe('train: bf16 must be true or false, got "yes"');
    expect(problems({ batchSize: 4 })).toBe("train: unknown option 'batchSize'");
    expect(problems({ lr: 1, epochs: 2 })).toBe("train: unknown options 'lr', 'epochs'");
    const kd = kdSettingsSchema.safeParse({ lambda: 1.5 });
    expect(kd.success ? 'ok' : describeIssues(kd.error, 'train: kd')).toBe('train: kd: lambda must be in [0, 1], got 1.5');
  });

  it('exports a JSON Schema with the defaults', () => {
    const schema = trainSettingsJsonSchema() as { properties: Record<string, { default?: unknown }>; additionalProperties?: boolean };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.per_device_train_batch_size!.default).toBe(8);
    expect(Object.keys(schema.properties)).toContain('num_train_epochs');
  });
});

describe('step record', () => {
  const result: StepResult = {
    status: 'ok',
    step: 7,
    loss: 1.5,
    ce: 2,
    kl: 0.25,
    consistency: 0.125,
    lr: 1e-3,
    gradNorm: 0.5,
    tokens: 30,
    sourceTokens: 50,
    seconds: 0.1,
    timings: { forward: 0.05, backward: 0.04, optimizer: 0.01 },
  };

  it('derives the metrics.jsonl row and the log_history entry from one record', () => {
    const s = stepLog(result, 2, 0.5);
    expect(s).toEqual({
      step: 7,
      epoch: 2,
      loss: 1.5,
      ce: 2,
      kl: 0.25,
      consistency: 0.125,
      lr: 1e-3,
      gradNorm: 0.5,
      tokens: 30,
      sourceTokens: 50,
      tokensPerSecond: 160,
      seconds: 0.5,
    });
    expect(JSON.stringify(metricsRow(s))).toBe(
      JSON.stringify({
        step: 7,
        epoch: 2,
        loss: 1.5,
        ce: 2,
        kl: 0.25,
        consistency: 0.125,
        lr: 1e-3,
        grad_norm: 0.5,
        tokens: 30,
        source_tokens: 50,
        tokens_per_s: 160,
        step_seconds: 0.5,
      }),
    );
    expect(JSON.stringify(historyEntry(s))).toBe(JSON.stringify({ step: 7, loss: 1.5, lr: 1e-3, grad_norm: 0.5 }));
  });
});
