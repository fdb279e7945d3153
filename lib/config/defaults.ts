/**
 * The run configuration's defaults, each defined once: `baseConfig()` holds the settings every
 * config file starts from (what a config leaves out), and the named presets (`--preset demo`) are
 * complete configurations laid over it. Training and KD settings a config leaves out take train()'s
 * defaults (lib/config/train-settings.ts, where the KD λ = 0.3 and τ = 2 are defined too).
 *
 * The base names no data, no teacher endpoint and no models: a config file must say what to train
 * on, who teaches and which models learn (the schema says which field is missing).
 */
import type { RunConfig, RunConfigInput } from './schema.js';
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
      softLabels: 'online' as RunConfig['student']['softLabels'],
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
  // A tenth of the run: ten dev evaluations (best-checkpoint picks) per model whatever its length, so
  // a mode that trains longer gets no more picks on the 50 dev questions than one that trains less.
  save_steps: 0.1,
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

/** A tiny decoder-only config (HF names; the vocabulary and special ids come from the run tokenizer). */
const causal = (model_type: 'llama' | 'qwen2', hidden: number, layers: number, heads: number, kvHeads: number) => ({
  model_type,
  hidden_size: hidden,
  intermediate_size: 2 * hidden,
  num_hidden_layers: layers,
  num_attention_heads: heads,
  num_key_value_heads: kvHeads,
  // Prompt (maxSourceLength 96) + completion or new tokens (128).
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: 'silu',
});

/**
 * The demo-causal preset (`mentor-kd demo --preset demo-causal`): the demo's data, teacher and
 * settings with decoder-only models from scratch — a Llama-architecture mentor and a smaller
 * Qwen2-architecture student (grouped-query attention, one shared byte-level BPE vocabulary built
 * from the data), prompts in the plain `Q: … A:` form — offline on 2 CPU cores in minutes.
 */
export function demoCausalConfig() {
  const demo = defaultConfig();
  // The prompt is the whole question in `Q: … A:` (50-67 tokens of this vocabulary), not cut.
  const train = (t: ReturnType<typeof demoTrain>) => ({ ...t, maxSourceLength: 96 }) as RunConfigInput['mentor']['train'];
  return {
    ...demo,
    output_dir: 'runs/demo-causal',
    tokenizer: { vocabSize: 512 } as RunConfigInput['tokenizer'],
    mentor: { init: { config: causal('llama', 128, 2, 4, 2) } as RunConfigInput['mentor']['init'], train: train(demoTrain(30)) },
    student: { ...demo.student, init: { config: causal('qwen2', 64, 2, 4, 2) } as RunConfigInput['student']['init'], train: train(demoTrain(20)) },
  } satisfies RunConfigInput;
}

/**
 * The demo-sweep preset's training lengths: the demo's 30 mentor epochs become 20 (the mentor must
 * stay good enough to teach) and its 20 student epochs 10
 * (docs/experiments.md says what they cost and what they reach).
 */
export const DEMO_SWEEP_EPOCHS = { mentor: 20, student: 10 } as const;

/**
 * The demo at the size of a sweep (`--preset demo-sweep`): the demo's task, teacher and models with
 * less training, so that the grid of docs/experiments.md (2 tasks × 5 seeds × 4 modes,
 * compute-matched: 10 mentors, 60 students) runs in under an hour on 2 cores with
 * `sweep --jobs 2`. One intra-op thread per process: two grid points run side by side, and the
 * results (which depend on the thread count) do not depend on the machine's core count.
 */
export function demoSweepConfig() {
  const demo = defaultConfig();
  return {
    ...demo,
    output_dir: 'runs/demo-sweep',
    threads: 1,
    mentor: { ...demo.mentor, train: { ...demo.mentor.train, num_train_epochs: DEMO_SWEEP_EPOCHS.mentor } },
    student: { ...demo.student, train: { ...demo.student.train, num_train_epochs: DEMO_SWEEP_EPOCHS.student } },
  } satisfies RunConfigInput;
}

/** The named presets `--preset <name>` starts from (a config file and `--set` flags are laid over one). */
export const PRESETS = { demo: defaultConfig, 'demo-causal': demoCausalConfig, 'demo-sweep': demoSweepConfig } as const;
export type PresetName = keyof typeof PRESETS;
