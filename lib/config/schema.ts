/**
 * The run configuration's one schema: every setting of the pipeline, its type, its bounds and its
 * error message, in one zod (v4) schema. Objects are strict (an unknown key is an error naming its
 * path, with the nearest known key suggested: lib/config/load.ts), `RunConfig` is inferred from it,
 * and `mentor-kd config schema` prints it as JSON Schema. Training settings take the names of HF
 * TrainingArguments, the same names train() takes (lib/config/train-settings.ts, whose schema and
 * defaults are reused here), so the pipeline hands them over by spreading.
 *
 * Values only: relative paths are resolved and files checked for existence by validateConfig
 * (lib/config/load.ts), which knows the config file's folder. The only defaults here are train()'s
 * (training and KD settings); the rest come from baseConfig() (lib/config/defaults.ts), the base
 * every config file is layered over; the demo is a named preset on top of it.
 */
import { z } from 'zod';
import { TASK_NAMES } from '../tasks/registry.js';
import { SYNTHETIC_GENERATORS } from '../tasks/synthetic.js';
import { kdSettingsSchema, trainSettingsSchema } from './train-settings.js';
import { onPolicySettingsSchema } from '../train/on-policy.js';

export const STUDENT_MODES = ['vanilla', 'mentor-kd', 'augment-only', 'kd-only', 'step-by-step', 'mcc-kd'] as const;
export type StudentMode = (typeof STUDENT_MODES)[number];

/** The baselines' settings by default: step-by-step's λ = 1 (the paper's), MCC-KD's α = 0.1 and two rationales (the authors' train_mcc.py). */
export const STEP_BY_STEP_DEFAULTS = { rationale_weight: 1 } as const;
export const MCC_KD_DEFAULTS = { consistency_weight: 0.1, rationales_per_question: 2 } as const;

/** "must be <what>, got <the value>": the shape of every value error. */
const got = (what: string) => ({ error: (iss: { input?: unknown }) => `must be ${what}, got ${JSON.stringify(iss.input)}` });
const int = (min = 0) => z.int(got(`an integer >= ${min}`)).min(min, got(`an integer >= ${min}`));
const positive = () => z.number(got('> 0')).gt(0, got('> 0'));
const unitClosed = () => z.number(got('in [0, 1]')).min(0, got('in [0, 1]')).max(1, got('in [0, 1]'));
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, what: string) => z.enum(values, got(what));
const filePath = () => z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' });
const mapping = (what = 'a mapping') => ({ error: `must be ${what}` });

/**
 * Training settings of one model (mentor or student): train()'s own schema (HF TrainingArguments
 * names, defaults defined there) less `seed`, which is the run's. They go to train() as they are.
 */
export const pipelineTrainSchema = trainSettingsSchema.omit({ seed: true });
export type PipelineTrainSettings = z.output<typeof pipelineTrainSchema>;

/**
 * A mode's overrides of student.train (student.modeSettings.<mode>.train): any training setting,
 * none defaulted, so what is left out is the shared setting.
 */
export const trainOverrideSchema = z.strictObject(
  Object.fromEntries(Object.entries(pipelineTrainSchema.shape).map(([k, v]) => [k, (v instanceof z.ZodDefault ? v.removeDefault() : v).optional()])) as Record<
    string,
    z.ZodOptional<z.ZodType>
  >,
  mapping('a mapping of training settings'),
) as unknown as z.ZodType<Partial<PipelineTrainSettings>, Partial<z.input<typeof pipelineTrainSchema>>>;
export type TrainOverride = z.output<typeof trainOverrideSchema>;

/** What a student's training length is given in: epochs (or max_steps) as configured, optimizer steps, or target tokens. */
export const STUDENT_BUDGETS = ['epochs', 'steps', 'tokens'] as const;
export type StudentBudgetKind = (typeof STUDENT_BUDGETS)[number];

const INIT_SHAPE = 'must be {model_name_or_path: <HF model directory>} or {config: {...HF config; model_type t5 (default), llama or qwen2}}';
/** A model to start from: a HF model directory, or a HF config (T5, Llama or Qwen2 by its model_type) to initialise at random. */
export const modelInitSchema = z.union(
  [z.strictObject({ model_name_or_path: z.string().min(1) }), z.strictObject({ config: z.record(z.string(), z.unknown()) })],
  {
    error: (iss) => {
      const keys = typeof iss.input === 'object' && iss.input !== null ? Object.keys(iss.input) : [];
      return `${INIT_SHAPE}${keys.includes('dir') ? ' (dir was renamed model_name_or_path)' : `, got ${JSON.stringify(iss.input)}`}`;
    },
  },
);
export type ModelInit = z.output<typeof modelInitSchema>;

const SYNTHETIC_TASKS = Object.keys(SYNTHETIC_GENERATORS);

/** Where a model runs: `cpu`, `cuda` (the current GPU; under `launch`, the rank's LOCAL_RANK GPU) or `cuda:N`. */
export const deviceSchema = z
  .string(got('cpu, cuda or cuda:N'))
  .regex(/^(cpu|cuda(:\d+)?)$/, got('cpu, cuda or cuda:N'))
  .describe("cpu, cuda (the rank's local GPU under launch) or cuda:N");

/** HF TrainingArguments' report_to: the metric sinks ('none' or [] for none). */
export const REPORT_TO = ['tensorboard'] as const;
const reportToSchema = z
  .union([z.literal('none'), z.enum(REPORT_TO), z.array(z.enum(REPORT_TO))], got(`none, ${REPORT_TO.join(', ')} or a list of them`))
  .transform((v) => (v === 'none' ? [] : typeof v === 'string' ? [v] : v))
  .describe('metric sinks, as HF report_to: none (default) or [tensorboard] (event files under <output_dir>/runs/)');

export const runConfigSchema = z
  .strictObject(
    {
      output_dir: z
        .string({ error: 'must be a directory path' })
        .min(1, { error: 'must be a directory path' })
        .describe('where every stage writes its artifacts'),
      task: z.enum(TASK_NAMES, { error: (iss) => `unknown task ${JSON.stringify(iss.input)} (one of: ${TASK_NAMES.join(', ')})` }),
      seed: int(0),
      data: z.strictObject(
        {
          train: filePath().optional().describe('a file in a format lib/tasks reads (Mentor-KD release JSON, GSM8K JSONL, ...)'),
          dev: filePath().optional().describe('held out of train (10%, seeded) when absent'),
          test: filePath().optional(),
          synthetic: z
            .strictObject({ train: int(1), dev: int(0), test: int(0), size: int(1) }, mapping('{train, dev, test, size}'))
            .optional()
            .describe(`generate the task instead (${SYNTHETIC_TASKS.join(', ')})`),
          fields: z
            .strictObject(
              {
                question: z.string().min(1, { error: 'must be a field name' }).optional(),
                answer: z.string().min(1, { error: 'must be a field name' }).optional(),
              },
              mapping('{question, answer}'),
            )
            .optional()
            .describe('the field names of custom JSON/JSONL files (e.g. {question: problem, answer: solution}); dotted paths reach nested fields'),
        },
        mapping(),
      ),
      teacher: z.strictObject(
        {
          url: z
            .string(got('an http(s) URL'))
            .regex(/^https?:\/\//, got('an http(s) URL'))
            .optional()
            .describe('an OpenAI-compatible base URL; when absent, the built-in simulated teacher on loopback'),
          model: z.string({ error: 'must be a model name' }).min(1, { error: 'must be a model name' }),
          api: oneOf(['chat', 'completions'], 'chat or completions'),
          apiKeyEnv: z.string({ error: 'must be an environment variable name' }),
          samples: int(1).describe('rationales per training question'),
          concurrency: int(1),
          embedded: z
            .strictObject({ errorRate: unitClosed(), latencyMs: int(0) }, mapping('{errorRate, latencyMs}'))
            .optional()
            .describe("the built-in simulated teacher's mistake rate and latency (used when teacher.url is absent)"),
          timeoutMs: int(1).describe('per request (connect to last byte), in ms'),
          maxRetryAfterMs: int(0).describe("longest wait a server's Retry-After is obeyed for, in ms (a longer one is capped)"),
          deadlineMs: int(1).optional().describe('wall-clock limit of the whole collection, in ms; none when absent (a rerun resumes from the cache)'),
          maxResponseBytes: int(1).describe('largest response body accepted after decompression, in bytes'),
        },
        mapping(),
      ),
      tokenizer: z
        .strictObject({ dir: z.string({ error: 'must be a directory path' }).optional(), vocabSize: int(8) }, mapping())
        .describe('a tokenizer.json directory; when absent one is built from the training text with vocabSize tokens'),
      mentor: z.strictObject({ init: modelInitSchema, train: pipelineTrainSchema, device: deviceSchema.optional() }, mapping()),
      augment: z.strictObject({ samples: int(1), temperature: positive(), maxNewTokens: int(1), batchSize: int(1) }, mapping()),
      student: z.strictObject(
        {
          init: modelInitSchema,
          train: pipelineTrainSchema,
          device: deviceSchema.optional(),
          modes: z
            .array(z.enum(STUDENT_MODES, { error: (iss) => `unknown mode ${JSON.stringify(iss.input)} (one of: ${STUDENT_MODES.join(', ')})` }), {
              error: `must list one or more of ${STUDENT_MODES.join(', ')}`,
            })
            .min(1, { error: `must list one or more of ${STUDENT_MODES.join(', ')}` }),
          // The KD weight λ and temperature τ, as train()'s `kd` takes them (defaults defined there).
          lambda: kdSettingsSchema.shape.lambda,
          tau: kdSettingsSchema.shape.tau,
          // The divergence D of the KD term and its parameter (jsd: beta; skew-kl, skew-reverse-kl: alpha).
          objective: z
            .strictObject({ divergence: kdSettingsSchema.shape.divergence, beta: kdSettingsSchema.shape.beta, alpha: kdSettingsSchema.shape.alpha }, mapping())
            .describe('the KD divergence: forward-kl (the paper), reverse-kl, jsd (beta), skew-kl / skew-reverse-kl (alpha), tvd'),
          // On-policy distillation (GKD), train()'s `onPolicy` (defaults defined there); the samples use augment.temperature and augment.maxNewTokens.
          onPolicy: z
            .strictObject({ fraction: onPolicySettingsSchema.shape.fraction, refreshEvery: onPolicySettingsSchema.shape.refreshEvery }, mapping())
            .prefault({})
            .describe(
              "fraction of each batch's rows (KD modes) trained on the student's own samples scored by the mentor, divergence only; resampled every refreshEvery steps",
            ),
          softLabels: oneOf(['online', 'offline'], 'online or offline').describe('online: the mentor runs in every step; offline: a top-k cache written once'),
          topK: int(1).describe('tokens kept per position in the offline cache'),
          teacherFraction: z
            .number(got('in (0, 1]'))
            .gt(0, got('in (0, 1]'))
            .max(1, got('in (0, 1]'))
            .describe("fraction of the teacher's training questions used (low-resource runs)"),
          mentorSamples: int(0).describe('mentor rationales per question used by the augmenting modes'),
          // The paper's baselines (docs/experiments.md): Distilling step-by-step (Hsieh et al. 2023) and MCC-KD (Chen et al. 2023).
          stepByStep: z
            .strictObject(
              { rationale_weight: z.number(got('a number >= 0')).min(0, got('a number >= 0')).default(STEP_BY_STEP_DEFAULTS.rationale_weight) },
              mapping('{rationale_weight}'),
            )
            .prefault({})
            .describe('step-by-step: L = (L_label + rationale_weight·L_rationale) / (1 + rationale_weight), each a per-task token mean (the paper: 1)'),
          mccKd: z
            .strictObject(
              {
                consistency_weight: z.number(got('a number >= 0')).min(0, got('a number >= 0')).default(MCC_KD_DEFAULTS.consistency_weight),
                rationales_per_question: int(2).default(MCC_KD_DEFAULTS.rationales_per_question),
              },
              mapping('{consistency_weight, rationales_per_question}'),
            )
            .prefault({})
            .describe(
              "mcc-kd: L = CE + consistency_weight·(bidirectional KL between the answer distributions after a question's rationales); rationales_per_question: the teacher's first, then the mentor's",
            ),
          budget: oneOf(STUDENT_BUDGETS, STUDENT_BUDGETS.join(', '))
            .default('epochs')
            .describe(
              "each student's training length: epochs = train's num_train_epochs (or max_steps) as given, so modes with more data take more steps; steps = train's max_steps for every mode; tokens = targetTokens (source + target tokens) for every mode",
            ),
          targetTokens: int(1).optional().describe('tokens each student trains on when budget is tokens (a mode may override it)'),
          modeSettings: z
            .partialRecord(
              z.enum(STUDENT_MODES, { error: (iss) => `unknown mode ${JSON.stringify(iss.input)} (one of: ${STUDENT_MODES.join(', ')})` }),
              z.strictObject({ train: trainOverrideSchema.optional(), targetTokens: int(1).optional() }, mapping('{train, targetTokens}')),
              mapping('a mapping of mode → {train, targetTokens}'),
            )
            .default({})
            .describe("per-mode overrides of student.train and targetTokens (e.g. a baseline's max_steps)"),
        },
        mapping(),
      ),
      evaluate: z.strictObject({ maxNewTokens: int(1), batchSize: int(1) }, mapping()),
      threads: int(0).describe('intra-op threads; 0 = every core'),
      device: deviceSchema.describe('where every model runs (mentor.device / student.device override it)'),
      report_to: reportToSchema,
    },
    mapping('a mapping of settings'),
  )
  .superRefine((c, ctx) => {
    if (c.teacher.url === undefined && c.teacher.embedded === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['teacher', 'url'],
        message: 'no teacher: give url (an OpenAI-compatible endpoint), or embedded: {errorRate, latencyMs} for the built-in simulated teacher',
      });
    }
    if (c.data.synthetic !== undefined) {
      if (!SYNTHETIC_TASKS.includes(c.task)) {
        ctx.addIssue({ code: 'custom', path: ['data', 'synthetic'], message: `task ${c.task} has no synthetic generator (${SYNTHETIC_TASKS.join(', ')} do)` });
      }
    } else if (!c.data.train || !c.data.test) {
      ctx.addIssue({ code: 'custom', path: ['data'], message: 'needs train and test files, or synthetic: {train, dev, test, size}' });
    }
    for (const model of ['mentor', 'student'] as const) {
      const t = c[model].train;
      if (t.num_train_epochs === undefined && t.max_steps === undefined)
        ctx.addIssue({ code: 'custom', path: [model, 'train', 'num_train_epochs'], message: 'give num_train_epochs or max_steps' });
      // LoRA adapts a pretrained base: its checkpoints hold the adapters and name that base's directory.
      if (t.lora && !('model_name_or_path' in c[model].init))
        ctx.addIssue({
          code: 'custom',
          path: [model, 'train', 'lora'],
          message: `needs ${model}.init.model_name_or_path (a base model directory); a model built from a config has none for the adapters to name`,
        });
    }
    // Every listed mode needs its budget's quantity (student.train or the mode's override).
    for (const mode of c.student.modes) {
      const o = c.student.modeSettings[mode];
      const path = ['student', 'modeSettings', mode];
      if (c.student.budget === 'steps' && (o?.train?.max_steps ?? c.student.train.max_steps) === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'train', 'max_steps'],
          message: `budget steps needs max_steps (student.train.max_steps or this mode's)`,
        });
      if (c.student.budget === 'tokens' && (o?.targetTokens ?? c.student.targetTokens) === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['student', 'targetTokens'],
          message: `budget tokens needs targetTokens (student.targetTokens or student.modeSettings.${mode}.targetTokens)`,
        });
    }
    if (c.student.onPolicy.fraction > 0 && c.student.softLabels !== 'online') {
      ctx.addIssue({
        code: 'custom',
        path: ['student', 'onPolicy', 'fraction'],
        message: "needs student.softLabels: online (the mentor scores the student's own samples as they are drawn)",
      });
    }
    if (c.student.modes.includes('mcc-kd') && c.student.mccKd.rationales_per_question > c.teacher.samples + c.augment.samples) {
      ctx.addIssue({
        code: 'custom',
        path: ['student', 'mccKd', 'rationales_per_question'],
        message: `${c.student.mccKd.rationales_per_question} exceeds the rationales a question can have: teacher.samples (${c.teacher.samples}) + augment.samples (${c.augment.samples})`,
      });
    }
    if (c.student.mentorSamples > c.augment.samples) {
      ctx.addIssue({
        code: 'custom',
        path: ['student', 'mentorSamples'],
        message: `${c.student.mentorSamples} exceeds augment.samples (${c.augment.samples})`,
      });
    }
  });

/** A validated run configuration: every default filled in, paths absolute (after validateConfig). */
export type RunConfig = z.output<typeof runConfigSchema>;
/** A run configuration as written: fields with a default may be left out. */
export type RunConfigInput = z.input<typeof runConfigSchema>;

/** The run configuration as JSON Schema (draft 2020-12), for editors and `mentor-kd config schema`. */
export function runConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(runConfigSchema, { io: 'input' }) as Record<string, unknown>;
}
