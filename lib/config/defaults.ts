/**
 * `defaultConfig()` is the embedded default run, the demo: Coin Flip generated locally, the built-in
 * simulated teacher on loopback (20% of its rationales wrong), a tokenizer built from the data, and
 * small FlanT5-style models trained from scratch — a mentor and a smaller student — so the whole
 * pipeline runs with no network in minutes on 2 CPU cores. A config file and `--set` flags are
 * layered over it (lib/config/load.ts); real runs replace data, teacher.url and the model inits.
 * Settings it leaves out take train()'s defaults (lib/config/train-settings.ts, where the KD λ = 0.3
 * and τ = 2 are defined too).
 */
import type { RunConfigInput } from './schema.js';
import { KD_DEFAULTS } from './train-settings.js';

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

export function defaultConfig(): RunConfigInput {
  return {
    output_dir: 'runs/demo',
    task: 'coin_flip',
    seed: 0,
    data: { synthetic: { train: 400, dev: 50, test: 200, size: 4 } },
    teacher: {
      model: 'simulated-teacher',
      api: 'chat',
      apiKeyEnv: 'OPENAI_API_KEY',
      samples: 2,
      concurrency: 16,
      embedded: { errorRate: 0.2, latencyMs: 0 },
      timeoutMs: 60_000,
      maxRetryAfterMs: 60_000,
      maxResponseBytes: 32 * 1024 * 1024,
    },
    tokenizer: { vocabSize: 400 },
    mentor: { init: { config: t5(128, 2, 4) }, train: demoTrain(30) },
    augment: { samples: 3, temperature: 0.7, maxNewTokens: 128, batchSize: 64 },
    student: {
      init: { config: t5(64, 2, 4) },
      train: demoTrain(20),
      modes: ['vanilla', 'mentor-kd'],
      lambda: KD_DEFAULTS.lambda,
      tau: KD_DEFAULTS.tau,
      objective: { divergence: KD_DEFAULTS.divergence, beta: KD_DEFAULTS.beta, alpha: KD_DEFAULTS.alpha },
      softLabels: 'online',
      topK: 32,
      teacherFraction: 1,
      mentorSamples: 3,
    },
    evaluate: { maxNewTokens: 128, batchSize: 64 },
    threads: 0,
  };
}
