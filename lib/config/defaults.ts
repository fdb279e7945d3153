/**
 * The run configuration's defaults, each defined once: `baseConfig()` holds the settings every
 * config file starts from (what a config leaves out), and the named presets (`--preset demo`) are
 * complete configurations laid over it. Training and KD settings a config leaves out take train()'s
 * defaults (lib/config/train-settings.ts, where the KD λ = 0.3 and τ = 2 are defined too).
 *
 * The base names no data, no teacher endpoint and no models: a config file must say what to train
 * on, who teaches and which models learn (the schema says which field is missing).
 */
import type { RunConfigInput } from './schema.js';
import { KD_DEFAULTS } from './train-settings.js';

/** What every configuration starts from; a config file and `--set` flags are layered over it. */
export function baseConfig() {
  return {
    seed: 0,
    device: 'cpu',
    report_to: 'none' as const,
    teacher: {
      api: 'chat' as const,
      apiKeyEnv: 'OPENAI_API_KEY',
      samples: 1,
      concurrency: 8,
      timeoutMs: 60_000,
      maxRetryAfterMs: 60_000,
      maxResponseBytes: 32 * 1024 * 1024,
    },
    tokenizer: { vocabSize: 32_000 },
    mentor: { train: {} },
    augment: { samples: 3, temperature: 0.7, maxNewTokens: 256, batchSize: 32 },
    student: {
      train: {},
      modes: ['vanilla' as const, 'mentor-kd' as const],
      objective: {},
      softLabels: 'online' as const,
      topK: 32,
      teacherFraction: 1,
      mentorSamples: 3,
    },
    evaluate: { maxNewTokens: 256, batchSize: 32 },
    threads: 0,
  };
}

const t5 = (d: number, layers: number, heads: number) => ({
  d_model: d,
  d_kv: d / heads,
  d_ff: 2 * d,
  num_layers: layers,
  num_decoder_layers: layers,
  num_heads: heads,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  dropout_rate: 0.1,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
});

/** The demo's training settings (HF TrainingArguments names); the mentor and the student share them but for the epochs. */
const demoTrain = (num_train_epochs: number) => ({
  num_train_epochs,
  per_device_train_batch_size: 16,
  learning_rate: 1e-3,
  lr_scheduler_type: 'linear' as const,
  warmup_steps: 20,
  weight_decay: 0.01,
  maxSourceLength: 64,
  maxTargetLength: 128,
  max_grad_norm: 1,
  save_steps: 100,
  save_total_limit: 2,
});

/**
 * The demo preset (`mentor-kd demo`, `--preset demo`): Coin Flip generated locally, the built-in
 * simulated teacher on loopback (20% of its rationales wrong), a tokenizer built from the data, and
 * small FlanT5-style models trained from scratch — a mentor and a smaller student — so the whole
 * pipeline runs with no network in minutes on 2 CPU cores. A complete configuration.
 */
export function defaultConfig() {
  const base = baseConfig();
  return {
    ...base,
    output_dir: 'runs/demo',
    task: 'coin_flip' as const,
    data: { synthetic: { train: 400, dev: 50, test: 200, size: 4 } } as RunConfigInput['data'],
    teacher: { ...base.teacher, model: 'simulated-teacher', samples: 2, concurrency: 16, embedded: { errorRate: 0.2, latencyMs: 0 } },
    tokenizer: { vocabSize: 400 } as RunConfigInput['tokenizer'],
    mentor: { init: { config: t5(128, 2, 4) } as RunConfigInput['mentor']['init'], train: demoTrain(30) as RunConfigInput['mentor']['train'] },
    augment: { ...base.augment, maxNewTokens: 128, batchSize: 64 },
    student: {
      ...base.student,
      init: { config: t5(64, 2, 4) } as RunConfigInput['student']['init'],
      train: demoTrain(20) as RunConfigInput['student']['train'],
      modes: base.student.modes as RunConfigInput['student']['modes'],
      lambda: KD_DEFAULTS.lambda,
      tau: KD_DEFAULTS.tau,
      objective: { divergence: KD_DEFAULTS.divergence, beta: KD_DEFAULTS.beta, alpha: KD_DEFAULTS.alpha } as RunConfigInput['student']['objective'],
    },
    evaluate: { maxNewTokens: 128, batchSize: 64 },
  } satisfies RunConfigInput;
}

/** The named presets `--preset <name>` starts from (a config file and `--set` flags are laid over one). */
export const PRESETS = { demo: defaultConfig } as const;
export type PresetName = keyof typeof PRESETS;
