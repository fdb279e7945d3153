/**
 * The training settings: one schema, one set of defaults, one name per setting from YAML through
 * train() to the native Trainer. Names follow Hugging Face's TrainingArguments where one exists
 * (num_train_epochs, per_device_train_batch_size, learning_rate, …); settings HF has no word for
 * keep their camelCase names (maxSourceLength, maxTargetLength, bucketBatches).
 *
 * Validated with zod (v4) rather than by hand: strict objects reject a misspelt or renamed key
 * instead of ignoring it, the TypeScript types are inferred from the schema (no second
 * declaration to drift), and z.toJSONSchema() exports it for `mentor-kd config schema`.
 *
 * train() (lib/train/trainer.ts) parses its options through `trainSettingsSchema` and
 * `kdSettingsSchema`; the pipeline's run config reuses the same schemas for mentor.train and
 * student.train.
 */
import { z } from 'zod';
import { loraSettingsSchema } from '../model/lora-settings.js';

/** How a bad value reads in an error: `got 0`, `got "two"`, `got undefined`. */
function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** An integer >= min; errors read "must be a positive integer, got 0". */
function int(min: 0 | 1) {
  const error = (iss: { input?: unknown }) => `must be ${min === 1 ? 'a positive' : 'a non-negative'} integer, got ${shown(iss.input)}`;
  return z.int({ error }).min(min, { error });
}

/** A finite number accepted by `ok`; errors read "must be <what>, got <value>". */
function num(what: string, ok: (x: number) => boolean) {
  const error = (iss: { input?: unknown }) => `must be ${what}, got ${shown(iss.input)}`;
  return z.number({ error }).refine((x) => Number.isFinite(x) && ok(x), { error });
}

/** The learning-rate schedules of the native trainer. */
export const LR_SCHEDULER_TYPES = ['constant', 'linear', 'cosine'] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

/**
 * Activation checkpointing: `none`, `blocks` (every transformer block's activations are recomputed
 * in backward instead of kept) or `every-<k>` (every k-th block: blocks 0, k, 2k, …). Same losses
 * and gradients, less memory, more compute (docs/memory.md).
 */
export const ACTIVATION_CHECKPOINTING = /^(none|blocks|every-[1-9][0-9]{0,5})$/;
export type ActivationCheckpointing = 'none' | 'blocks' | `every-${number}`;
export const activationCheckpointingSchema = z
  .string({ error: (iss) => `must be none, blocks or every-<k> (k >= 1), got ${shown(iss.input)}` })
  .regex(ACTIVATION_CHECKPOINTING, { error: (iss) => `must be none, blocks or every-<k> (k >= 1), got ${shown(iss.input)}` })
  .transform((s) => s as ActivationCheckpointing);

/**
 * Sharded optimizer state over the data-parallel ranks (DeepSpeed's ZeRO stages): `none` (DDP: every
 * rank holds all AdamW state), `zero1` (each rank holds the AdamW moments of its slice of the
 * parameters), `zero2` (and only its slice of the reduced gradients). Same losses as DDP; needs
 * data parallelism (docs/memory.md).
 */
export const SHARDING = ['none', 'zero1', 'zero2'] as const;
export type Sharding = (typeof SHARDING)[number];

/**
 * Settings of one training run that can be written down (YAML, CLI, JSON): everything except the
 * model, data, callbacks and process group. Each default is defined here and nowhere else.
 */
export const trainSettingsSchema = z.strictObject({
  /** Passes over the training set (give this or max_steps; max_steps wins when both are given). */
  num_train_epochs: int(1).optional(),
  /** Optimizer steps to run. */
  max_steps: int(1).optional(),
  /** Examples per micro-batch on each rank. */
  per_device_train_batch_size: int(1).default(8),
  /** Micro-batches per optimizer step. */
  gradient_accumulation_steps: int(1).default(1),
  learning_rate: num('a positive number', (x) => x > 0).default(3e-4),
  lr_scheduler_type: z
    .enum(LR_SCHEDULER_TYPES, { error: (iss) => `must be one of ${LR_SCHEDULER_TYPES.join(', ')}, got ${shown(iss.input)}` })
    .default('constant'),
  warmup_steps: int(0).default(0),
  /** Decoupled weight decay (AdamW); biases and layer norms are not decayed. */
  weight_decay: num('>= 0', (x) => x >= 0).default(0),
  adam_beta1: num('in [0, 1)', (x) => x >= 0 && x < 1).default(0.9),
  adam_beta2: num('in [0, 1)', (x) => x >= 0 && x < 1).default(0.999),
  adam_epsilon: num('> 0', (x) => x > 0).default(1e-8),
  /** Gradient clipping by global norm; 0 disables. */
  max_grad_norm: num('>= 0 (0 disables)', (x) => x >= 0).default(1),
  /** Data order, dropout and initialisation seed. */
  seed: int(0).default(42),
  /**
   * Save (and evaluate on dev) every this many steps; a ratio in (0, 1) is that share of the run's
   * steps, as in HF (0.1: ten evaluations whatever the run's length); 0 = only at the end.
   */
  save_steps: num('a non-negative integer or a ratio in (0, 1) of the total steps', (x) => x >= 0 && (x < 1 || Number.isInteger(x))).default(0),
  /** Checkpoints kept besides the best one; 0 keeps all. */
  save_total_limit: int(0).default(3),
  /**
   * bf16 autocast (fp32 weights and loss). Unset: on for a CUDA model, off on CPU (where it is
   * ~1.3x faster only with AVX512-BF16/AMX; see docs/training.md).
   */
  bf16: z.boolean({ error: (iss) => `must be true or false, got ${shown(iss.input)}` }).optional(),
  /** Recompute blocks in backward instead of keeping their activations (docs/memory.md). */
  activationCheckpointing: activationCheckpointingSchema.default('none'),
  /** AdamW state (zero1) and reduced gradients (zero2) split over the data-parallel ranks; none = DDP. */
  sharding: z.enum(SHARDING, { error: (iss) => `must be one of ${SHARDING.join(', ')}, got ${shown(iss.input)}` }).default('none'),
  /** LoRA adapters (PEFT's LoraConfig names; lib/model/lora-settings.ts): only they are trained; absent = full fine-tuning. */
  lora: loraSettingsSchema.optional(),
  /** Source tokens kept per example (longer ones are truncated and reported). */
  maxSourceLength: int(1).default(512),
  maxTargetLength: int(1).default(512),
  /** Batches per length bucket: examples of similar length are batched together within a bucket. */
  bucketBatches: int(1).default(50),
});

/** Settings as written (every field optional). */
export type TrainSettingsInput = z.input<typeof trainSettingsSchema>;
/** Settings with the defaults filled in. */
export type TrainSettings = z.output<typeof trainSettingsSchema>;

/** The divergences of the KD loss's soft-label term (native/kd/kd_loss.h defines each). */
export const KD_DIVERGENCES = ['forward-kl', 'reverse-kl', 'jsd', 'skew-kl', 'skew-reverse-kl', 'tvd'] as const;
export type KdDivergence = (typeof KD_DIVERGENCES)[number];

/**
 * The KD loss (1-λ)·CE + λ·D(mentor, student) at temperature τ (the paper's λ = 0.3, τ = 2, D = forward KL).
 * `divergence`: forward-kl KL(q‖p), reverse-kl KL(p‖q), jsd β·KL(q‖M) + (1-β)·KL(p‖M) with M = βq + (1-β)p
 * (β = 0 is forward-kl, β = 1 reverse-kl, as TRL), skew-kl KL(q ‖ αq + (1-α)p), skew-reverse-kl
 * KL(p ‖ αp + (1-α)q), tvd ½Σ|q-p|. `beta` is read by jsd only, `alpha` by the skews only.
 */
export const kdSettingsSchema = z.strictObject({
  lambda: num('in [0, 1]', (x) => x >= 0 && x <= 1).default(0.3),
  tau: num('> 0', (x) => x > 0).default(2),
  divergence: z.enum(KD_DIVERGENCES, { error: (iss) => `must be one of ${KD_DIVERGENCES.join(', ')}, got ${shown(iss.input)}` }).default('forward-kl'),
  beta: num('in [0, 1]', (x) => x >= 0 && x <= 1).default(0.5),
  alpha: num('in [0, 1)', (x) => x >= 0 && x < 1).default(0.1),
});
export type KdSettingsInput = z.input<typeof kdSettingsSchema>;
export type KdSettings = z.output<typeof kdSettingsSchema>;

/** Every default, resolved (bf16 stays unset: it depends on the model's device). */
export const TRAIN_DEFAULTS: Readonly<TrainSettings> = Object.freeze(trainSettingsSchema.parse({}));
export const KD_DEFAULTS: Readonly<KdSettings> = Object.freeze(kdSettingsSchema.parse({}));

/** bf16 when not given: on for CUDA, off for CPU. */
export function resolveBf16(bf16: boolean | undefined, device: string): boolean {
  return bf16 ?? device.startsWith('cuda');
}

/** One line per problem, each naming its field: `<prefix>: <path> must be …, got …`. */
export function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .map((iss) => {
      const path = iss.path.map(String).join('.');
      if (iss.code === 'unrecognized_keys') {
        const keys = iss.keys.map((k) => (path ? `${path}.${k}` : k));
        return `${prefix}: unknown option${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}`;
      }
      return `${prefix}: ${path || 'options'} ${iss.message}`;
    })
    .join('; ');
}

/** JSON Schema of the settings (for `config schema` and editors). */
export function trainSettingsJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(trainSettingsSchema, { io: 'input' }) as Record<string, unknown>;
}
