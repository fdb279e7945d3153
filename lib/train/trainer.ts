/**
 * The training loop: data → length-bucketed batches → native steps, with dev evaluation (best
 * checkpoint chosen on dev accuracy), atomic checkpoints with keep-last-N, exact resume, a
 * progress bar and JSON-lines metrics.
 *
 * Soft labels for a student come either from an online `mentor` (run in the same native step) or
 * from an offline `softLabels` cache; without either the loss is plain cross-entropy (training a
 * mentor, or vanilla fine-tuning).
 */
import { resolve, join } from 'node:path';
import { DataParallel } from '../parallel/data-parallel.js';
import type { ProcessGroup } from '../parallel/process-group.js';
import { shardOf } from '../parallel/sharded.js';
import { agreeAcrossRanks } from '../parallel/shared-fs.js';
import { allreduceCounts, onMain } from '../parallel/sharded.js';
import { CausalLM } from '../model/causal-model.js';
import { PromptFormat, type PromptFormatRecord } from '../model/chat-template.js';
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { BatchStream, collate, type CollatedBatch } from './batches.js';
import { exampleUnits, unitLength } from './example-groups.js';
import { rowObjective, type RowObjectiveOptions } from './row-objective.js';
import {
  checkpointName,
  latestCheckpoint,
  pruneCheckpoints,
  readTrainerState,
  removeStaleTemporaries,
  writeCheckpoint,
  type LogEntry,
  type TrainerState,
} from './checkpoints.js';
import { describeTruncation, tokenizeCausalDataset, tokenizeDataset, type Seq2SeqExample, type TruncationReport } from './data.js';
import { TrainEngine, type EngineOptions } from './engine.js';
import { evaluateGreedy, saveInterval, type EvaluateOptions } from './evaluate.js';
import { MetricsLog, TrainProgress } from './progress.js';
import { OnPolicySampler, onPolicySettingsSchema, splitOnPolicy, type OnPolicySettings, type OnPolicySettingsInput } from './on-policy.js';
import type { SoftLabelCache } from './soft-labels.js';
import { historyEntry, metricsRow, stepLog, type StepLog } from './step-record.js';
import type { PlanModelConfig } from '../plan/estimate.js';
import { trainingMemoryWarning } from '../plan/warn.js';
import { addLora, loraInfo } from '../model/lora.js';
import { checkSharding, saveOptimizerShards } from './sharding.js';
import {
  describeIssues,
  resolveBf16,
  kdSettingsSchema,
  trainSettingsSchema,
  type KdSettings,
  type KdSettingsInput,
  type TrainSettings,
  type TrainSettingsInput,
} from '../config/train-settings.js';

export type { StepLog } from './step-record.js';

/** Everything train() takes besides the written-down settings (lib/config/train-settings.ts). */
export interface TrainRunOptions {
  /** A T5 (encoder-decoder) or CausalLM (decoder-only) student; a mentor must be of the same family. */
  model: T5Model | CausalLM;
  tokenizer: Tokenizer;
  train: readonly Seq2SeqExample[];
  /** Dev split: evaluated at every checkpoint; the best checkpoint is chosen on it. Never pass test data. */
  dev?: readonly Seq2SeqExample[];
  /** Checkpoints go to <output_dir>/checkpoint-<step>. */
  output_dir: string;
  /** true: continue from the latest checkpoint in output_dir; a path: from that checkpoint. */
  resume_from_checkpoint?: boolean | string;
  eval?: EvaluateOptions;
  mentor?: T5Model | CausalLM;
  /**
   * Decoder-only students: how a source becomes the prompt (lib/train/data.ts causalPromptIds);
   * default PromptFormat.plain(). PromptFormat.load(modelDir) gives the model's chat template.
   */
  promptFormat?: PromptFormat;
  softLabels?: SoftLabelCache;
  /** KD loss (1-λ)·CE + λ·KL at temperature τ (defaults in lib/config/train-settings.ts). */
  kd?: KdSettingsInput;
  /**
   * On-policy / mixed distillation (lib/train/on-policy.ts): `fraction` of each batch's rows train on
   * the student's own samples (at `temperature`, up to `maxNewTokens`), resampled every
   * `refreshEvery` steps and scored by the online `mentor`; those rows take λ·D only (no CE).
   */
  onPolicy?: OnPolicySettingsInput;
  /**
   * Step-by-step (lib/train/step-by-step.ts): every row has a `task`, each task's CE is averaged
   * over its own target tokens in the step and weighted by taskWeights[task] (normalised to sum 1).
   */
  taskWeights?: RowObjectiveOptions['taskWeights'];
  /**
   * MCC-KD (lib/train/mcc-kd.ts): α (`weight`) of the bidirectional KL between the answer
   * distributions of rows sharing a `group` whose targets end with their `consistencyAnswer`.
   */
  consistency?: RowObjectiveOptions['consistency'];
  /** Progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Default: <output_dir>/metrics.jsonl. */
  metricsFile?: string;
  /** Called after every successful step (before any checkpoint of that step). */
  onStep?: (log: StepLog) => void | Promise<void>;
  /** Called after every checkpoint is complete on disk. */
  onCheckpoint?: (dir: string, step: number) => void | Promise<void>;
  /** Warnings and notices (default: console.warn). */
  logger?: (line: string) => void;
  /**
   * Data-parallel training over a process group (lib/parallel): rank r takes batches r·A … r·A+A−1 of
   * every A·W drawn from the shared stream (A = gradient accumulation, W = world size), gradients
   * are summed over ranks, dev evaluation is sharded, and rank 0 alone writes checkpoints, metrics
   * and logs. Resume needs the same world size.
   */
  parallel?: { group: ProcessGroup; bucketBytes?: number };
}

/** train()'s options: the training settings (HF TrainingArguments names) and the run's objects. */
export type TrainOptions = TrainSettingsInput & TrainRunOptions;

export interface EvalLog {
  step: number;
  accuracy: number;
  correct: number;
  total: number;
  checkpoint: string;
}

export interface TrainResult {
  globalStep: number;
  /** Per-step losses of this invocation (after any resume). */
  steps: StepLog[];
  evaluations: EvalLog[];
  bestCheckpoint: string | null;
  bestMetric: number | null;
  lastCheckpoint: string | null;
  resumedFrom: string | null;
  truncation: { train: TruncationReport; dev?: TruncationReport };
  /** Decoder-only students: how the prompts were formatted (record it with the run). */
  promptFormat?: PromptFormatRecord;
  seconds: number;
}

export class TrainingStoppedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly lastGoodCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingStoppedError';
  }
}

/** The engine's options from the resolved settings: the same names, every value given. */
function engineOptions(s: TrainSettings, kd: KdSettings, totalSteps: number, mentor: T5Model | CausalLM | undefined): EngineOptions {
  return {
    mentor,
    learning_rate: s.learning_rate,
    lr_scheduler_type: s.lr_scheduler_type,
    warmup_steps: s.warmup_steps,
    max_steps: totalSteps,
    weight_decay: s.weight_decay,
    adam_beta1: s.adam_beta1,
    adam_beta2: s.adam_beta2,
    adam_epsilon: s.adam_epsilon,
    max_grad_norm: s.max_grad_norm,
    lambda: kd.lambda,
    tau: kd.tau,
    divergence: kd.divergence,
    beta: kd.beta,
    alpha: kd.alpha,
    seed: s.seed,
    bf16: s.bf16,
    activationCheckpointing: s.activationCheckpointing,
    sharding: s.sharding,
  };
}

/** The keys of train()'s options that are not settings (a Record, so that the list stays complete). */
const RUN_KEYS: Record<keyof TrainRunOptions, true> = {
  model: true,
  tokenizer: true,
  train: true,
  dev: true,
  output_dir: true,
  resume_from_checkpoint: true,
  eval: true,
  mentor: true,
  promptFormat: true,
  softLabels: true,
  kd: true,
  onPolicy: true,
  taskWeights: true,
  consistency: true,
  progress: true,
  metricsFile: true,
  onStep: true,
  onCheckpoint: true,
  logger: true,
  parallel: true,
};

/** Validates the settings in train()'s options (defaults filled in); errors name the field. */
function parseSettings(options: TrainOptions): { settings: TrainSettings; kd: KdSettings; onPolicy: OnPolicySettings } {
  if (!options.output_dir) throw new Error('train: output_dir is required');
  const written = Object.fromEntries(Object.entries(options).filter(([key]) => !Object.hasOwn(RUN_KEYS, key)));
  const settings = trainSettingsSchema.safeParse(written);
  if (!settings.success) throw new Error(describeIssues(settings.error, 'train'));
  const kd = kdSettingsSchema.safeParse(options.kd ?? {});
  if (!kd.success) throw new Error(describeIssues(kd.error, 'train: kd'));
  const onPolicy = onPolicySettingsSchema.safeParse(options.onPolicy ?? {});
  if (!onPolicy.success) throw new Error(describeIssues(onPolicy.error, 'train: onPolicy'));
  return { settings: settings.data, kd: kd.data, onPolicy: onPolicy.data };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const { settings: s, kd, onPolicy } = parseSettings(options);
  const o: TrainRunOptions = options;
  const { model, tokenizer, output_dir: outputDir } = o;
  const group = o.parallel?.group;
  const world = group?.worldSize ?? 1;
  const isMain = !group || group.isMain;
  const log = isMain ? (o.logger ?? ((line: string) => console.warn(line))) : () => undefined;
  const batchSize = s.per_device_train_batch_size;
  const accumulation = s.gradient_accumulation_steps;
  const { seed, bucketBatches, maxSourceLength, maxTargetLength } = s;
  if (o.mentor && o.softLabels) throw new Error('train: give soft labels as an online mentor or as a cache (softLabels), not both');
  if (s.max_steps === undefined && s.num_train_epochs === undefined) throw new Error('train: give max_steps or num_train_epochs');
  if (onPolicy.fraction > 0 && !o.mentor)
    throw new Error("train: onPolicy.fraction > 0 needs an online mentor (mentor): it scores the student's samples, which no soft-label cache holds");
  if (onPolicy.fraction > 0 && group && world > 1) throw new Error('train: onPolicy is not supported with data parallelism yet (parallel)');
  // train.sharding splits optimizer state over the ranks of `parallel` (lib/train/sharding.ts).
  checkSharding(s.sharding, group, log);
  const sampler = new OnPolicySampler(onPolicy, seed, maxTargetLength);
  // Decoder-only students: prompt + completion rows scored on the completion (lib/train/data.ts).
  const causal = model instanceof CausalLM;
  const promptFormat = causal ? (o.promptFormat ?? PromptFormat.plain()) : undefined;
  if (causal) {
    const unsupported: [boolean, string][] = [
      [!!o.softLabels, 'an offline soft-label cache (softLabels): give an online mentor'],
      [onPolicy.fraction > 0, 'onPolicy'],
      [!!group, 'data parallelism (parallel)'],
    ];
    for (const [given, what] of unsupported) if (given) throw new Error(`train: a decoder-only (CausalLM) student does not support ${what} yet`);
  }

  // LoRA (lib/model/lora.ts): adapters on the student, base frozen; only they train and are checkpointed.
  if (s.lora) {
    if (causal) throw new Error('train: lora is implemented for T5 students only');
    if (group) throw new Error('train: lora with data parallelism (parallel) is not supported yet');
    // Checkpoints hold the adapters only; loading one merges them into the base named in adapter_config.json.
    if (!model.info().sourceDir)
      throw new Error(
        'train: lora needs a base model loaded from a directory (model_name_or_path), not one built from a config: its checkpoints name the base they adapt',
      );
    if (!loraInfo(model as T5Model)) addLora(model as T5Model, s.lora, seed, 'train: lora');
    else log('mentor-kd: the model already has LoRA adapters; train.lora is not applied again');
  }

  // ---- data
  const tokenize = (examples: readonly Seq2SeqExample[], name: string) =>
    promptFormat
      ? tokenizeCausalDataset(examples, tokenizer, { maxSourceLength, maxTargetLength, name, promptFormat })
      : tokenizeDataset(examples, tokenizer, { maxSourceLength, maxTargetLength, name });
  const trainSet = tokenize(o.train, 'train');
  const devSet = o.dev?.length ? tokenize(o.dev, 'dev') : undefined;
  const metrics: Pick<MetricsLog, 'append' | 'truncateAfter'> = isMain
    ? new MetricsLog(o.metricsFile ?? join(outputDir, 'metrics.jsonl'))
    : { append: () => undefined, truncateAfter: () => 0 };
  for (const set of [trainSet, devSet]) {
    if (!set) continue;
    metrics.append({ event: 'truncation', dataset: set.name, ...set.truncation });
    if (set.truncation.targetTruncated > 0 || set.truncation.sourceTruncated > 0) log(`mentor-kd: ${describeTruncation(set.name, set.truncation)}`);
  }
  // Rows sharing a group are one unit of the stream (a batch holds batchSize units): lib/train/example-groups.ts.
  const units = exampleUnits(trainSet.examples);
  if (sampler.active && units.length !== trainSet.examples.length) throw new Error('train: onPolicy does not combine with grouped rows (group)');
  const objective = rowObjective(o, tokenizer, causal);
  const stream = new BatchStream(
    units.map((u) => unitLength(u, trainSet.examples)),
    { batchSize, seed, bucketBatches },
  );
  const totalSteps = s.max_steps ?? Math.ceil((s.num_train_epochs! * stream.batchesPerEpoch()) / (accumulation * world));
  // save_steps as a ratio: the same number of checkpoints (dev evaluations, best-checkpoint picks) for any run length.
  const saveEvery = saveInterval(s.save_steps, totalSteps);

  if (o.softLabels) {
    const info = o.softLabels.info();
    if (info.metadata.train_fingerprint !== trainSet.fingerprint) {
      throw new Error(
        `train: soft-label cache ${info.dir} was built for other training data (its fingerprint differs: another dataset, tokenizer or max length)`,
      );
    }
    if (info.numExamples !== trainSet.examples.length)
      throw new Error(`train: soft-label cache ${info.dir} has ${info.numExamples} examples, the training set ${trainSet.examples.length}`);
  }
  const softMode: TrainerState['soft_labels'] = o.mentor ? 'online' : o.softLabels ? 'offline' : 'none';
  // The schedule as trainer_state.json records it (its field names are the checkpoint format's).
  const schedule = { kind: s.lr_scheduler_type, lr: s.learning_rate, warmup_steps: s.warmup_steps, total_steps: totalSteps };

  // A run the memory planner says will not fit is warned about before any work (CPU models).
  if (!(model instanceof CausalLM) && model.info().device === 'cpu') {
    const longest = (k: 'sourceIds' | 'targetIds') => trainSet.examples.reduce((m, e) => Math.max(m, e[k].length), 0);
    const shape = { batch: batchSize, longestSource: longest('sourceIds'), longestTarget: longest('targetIds'), ranks: world };
    const warning = trainingMemoryWarning(model.config() as unknown as PlanModelConfig, {
      ...shape,
      bf16: resolveBf16(s.bf16, 'cpu'),
      activationCheckpointing: s.activationCheckpointing,
      sharding: s.sharding,
      lora: s.lora,
    });
    if (warning) log(warning);
  }

  // bf16 unset: the engine resolves it from the model's device (resolveBf16).
  const engine = await TrainEngine.create(model, engineOptions(s, kd, totalSteps, o.mentor), o.softLabels);

  let bestMetric: number | null = null;
  let bestCheckpoint: string | null = null;
  let bestStep: number | null = null;
  let lastCheckpoint: string | null = null;
  let resumedFrom: string | null = null;
  let tokensSeen = 0;
  let history: LogEntry[] = [];
  const steps: StepLog[] = [];
  const evaluations: EvalLog[] = [];
  let progress: TrainProgress | undefined;
  let step = 0;

  try {
    if (isMain) await removeStaleTemporaries(outputDir);
    // Before any resume: a sharded optimizer (train.sharding) is built here and loads its shard.
    const dp = group && !(model instanceof CausalLM) ? DataParallel.create(group, model, { bucketBytes: o.parallel?.bucketBytes }) : undefined;
    if (dp) engine.setDistributed(dp);
    // ---- resume
    let resumeDir: string | null = null;
    if (o.resume_from_checkpoint)
      resumeDir = typeof o.resume_from_checkpoint === 'string' ? o.resume_from_checkpoint : ((await latestCheckpoint(outputDir)) ?? null);
    if (group) {
      // Each rank looked at its own filesystem: without a shared one, rank 0 would resume while the
      // others start afresh (or the reverse), silently.
      const view = { resume: !!o.resume_from_checkpoint, from: resumeDir ? resolve(resumeDir) : null };
      await agreeAcrossRanks(group, view, 'where training starts', (v) =>
        !v.resume ? 'from scratch' : v.from ? `resume from ${v.from}` : `resume, but no complete checkpoint in ${resolve(outputDir)}`,
      ).catch((err: Error) => {
        throw new Error(`train: ${err.message} (is output_dir on a filesystem every node mounts? rank 0 alone writes the checkpoints)`);
      });
    }
    if (o.resume_from_checkpoint) {
      const dir = resumeDir;
      if (!dir) throw new Error(`train: resume requested but ${outputDir} holds no complete checkpoint`);
      const state = await readTrainerState(dir);
      const expect: [string, unknown, unknown][] = [
        ['world_size', state.world_size ?? 1, world],
        ['batch_size', state.batch_size, batchSize],
        ['gradient_accumulation', state.gradient_accumulation, accumulation],
        ['seed', state.seed, seed],
        ['bucket_batches', state.bucket_batches, bucketBatches],
        ['soft_labels', state.soft_labels, softMode],
        ['schedule', state.schedule.kind, schedule.kind],
        ['lr', state.schedule.lr, schedule.lr],
        ['warmup_steps', state.schedule.warmup_steps, schedule.warmup_steps],
      ];
      // The decay of linear/cosine depends on the total; constant does not.
      if (schedule.kind !== 'constant') expect.push(['total_steps', state.schedule.total_steps, schedule.total_steps]);
      for (const [field, was, now] of expect) {
        if (was !== now) throw new Error(`train: cannot resume exactly from ${dir}: ${field} was ${String(was)}, now ${String(now)}`);
      }
      if (state.train_fingerprint !== trainSet.fingerprint) {
        throw new Error(`train: cannot resume from ${dir}: it was trained on other data (fingerprint differs: another dataset, tokenizer or max length)`);
      }
      await engine.loadCheckpoint(dir); // refuses another architecture, naming the field
      await sampler.load(dir); // the on-policy samples not yet trained on
      stream.seek(state.data_position);
      bestMetric = state.best_metric;
      bestStep = state.best_step;
      bestCheckpoint = state.best_checkpoint;
      lastCheckpoint = resolve(dir);
      tokensSeen = state.tokens_seen;
      history = state.log_history ?? [];
      resumedFrom = resolve(dir);
      // The steps after the checkpoint are trained again: their rows from the interrupted run go.
      const dropped = metrics.truncateAfter(state.global_step);
      metrics.append({ event: 'resume', from: resumedFrom, step: state.global_step, ...(dropped ? { metrics_rows_dropped: dropped } : {}) });
    }

    if (dp) {
      // Every replica starts from rank 0's parameters; steps then sum gradients over ranks.
      await dp.broadcastParameters(0);
    }
    step = engine.globalStep;
    progress = new TrainProgress(isMain && (o.progress ?? !!process.stderr.isTTY), totalSteps, step);

    const saveCheckpoint = async (): Promise<void> => {
      const final = resolve(join(outputDir, checkpointName(step)));
      if (devSet) {
        // Sharded over ranks; the counts are summed, so every rank picks the same best checkpoint.
        const shard = group ? shardOf(devSet.examples, group.rank, world).items : devSet.examples;
        const local = await evaluateGreedy(model, tokenizer, shard, o.eval);
        const counts = await allreduceCounts(group, { correct: local.correct, total: local.total });
        const ev = { ...local, correct: counts.correct, total: counts.total, accuracy: counts.total ? counts.correct / counts.total : 0 };
        const entry: EvalLog = { step, accuracy: ev.accuracy, correct: ev.correct, total: ev.total, checkpoint: final };
        evaluations.push(entry);
        metrics.append({ step, eval_accuracy: ev.accuracy, eval_correct: ev.correct, eval_total: ev.total, eval_seconds: ev.seconds });
        history.push({ step, eval_accuracy: ev.accuracy });
        progress?.log(`step ${step}: dev accuracy ${(100 * ev.accuracy).toFixed(2)}% (${ev.correct}/${ev.total})`);
        // Strictly better only: on a tie the earlier checkpoint stays best.
        if (bestMetric === null || ev.accuracy > bestMetric) {
          bestMetric = ev.accuracy;
          bestStep = step;
          bestCheckpoint = final;
        }
      }
      const state: TrainerState = {
        format: 'mentor-kd-trainer-state',
        version: 1,
        global_step: step,
        data_position: stream.position,
        seed,
        total_steps: totalSteps,
        batch_size: batchSize,
        gradient_accumulation: accumulation,
        bucket_batches: bucketBatches,
        train_fingerprint: trainSet.fingerprint,
        soft_labels: softMode,
        schedule,
        best_metric: bestMetric,
        best_step: bestStep,
        best_checkpoint: bestCheckpoint,
        tokens_seen: tokensSeen,
        log_history: history,
        ...(group ? { world_size: world } : {}),
      };
      // Replicas are identical: rank 0 writes, the others wait for it (and fail if it failed).
      const written = resolve(join(outputDir, checkpointName(step)));
      // train.sharding: every rank's optimizer shard first, into a folder rank 0 then moves them from.
      const shards = await saveOptimizerShards(engine, group, s.sharding, outputDir, step);
      await onMain(group, async () => {
        await writeCheckpoint(outputDir, step, state, async (tmp) => {
          await engine.saveCheckpoint(tmp);
          await shards?.moveInto(tmp);
          await tokenizer.save(tmp);
          if (sampler.active) await sampler.save(tmp);
        });
        metrics.append({ event: 'checkpoint', step, dir: written });
        const protect = new Set<string>([written]);
        if (bestCheckpoint) protect.add(bestCheckpoint);
        await pruneCheckpoints(outputDir, s.save_total_limit, protect);
      });
      lastCheckpoint = written;
      await o.onCheckpoint?.(lastCheckpoint, step);
    };

    while (step < totalSteps) {
      const tStep = performance.now();
      const batches: CollatedBatch[] = [];
      let epoch = 0;
      if (sampler.active && sampler.refreshesAt(step)) {
        // The student as it is now samples the on-policy rows of the next refreshEvery steps.
        const steps = Math.min(onPolicy.refreshEvery, totalSteps - step);
        const ahead = stream.peek(steps * accumulation).map((b) => b.indices.map((j) => trainSet.examples[j]!));
        const window = Array.from({ length: steps }, (_, k) => ahead.slice(k * accumulation, (k + 1) * accumulation));
        await sampler.refresh(model as T5Model, step, window); // onPolicy is refused for causal students above
      }
      for (let i = 0; i < accumulation * world; i++) {
        const next = stream.next();
        epoch = next.epoch;
        if (Math.floor(i / accumulation) !== (group?.rank ?? 0)) continue;
        const examples = next.indices.flatMap((u) => units[u]!).map((j) => trainSet.examples[j]!);
        if (!sampler.active) {
          batches.push(...objective.collate(examples));
          continue;
        }
        // Off-policy rows (gold targets: CE and D) and on-policy rows (the student's samples: D only).
        const split = splitOnPolicy(examples, sampler.take(step, i));
        if (split.offPolicy.length) batches.push(collate(split.offPolicy, tokenizer.padId));
        if (split.onPolicy.length) batches.push({ ...collate(split.onPolicy, tokenizer.padId), ceWeight: 0 });
      }
      objective.weigh(batches);
      const r = await engine.step(batches);
      if (r.status !== 'ok') {
        const failed = step + 1;
        metrics.append({ event: 'stopped', step: failed, loss: r.loss, grad_norm: r.gradNorm, reason: 'non-finite loss or gradient' });
        throw new TrainingStoppedError(
          `train: stopped at step ${failed}: the loss is ${r.loss} and the gradient norm ${r.gradNorm} (NaN/Inf); ` +
            `this step was not applied and no checkpoint was written after it. ` +
            (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}.` : 'No checkpoint had been saved yet.') +
            ` Lower the learning rate, check the data, or resume from that checkpoint.`,
          failed,
          lastCheckpoint,
        );
      }
      step = r.step;
      const seconds = (performance.now() - tStep) / 1000;
      tokensSeen += r.tokens + r.sourceTokens;
      const entry = stepLog(r, epoch, seconds);
      steps.push(entry);
      history.push(historyEntry(entry));
      metrics.append(metricsRow(entry));
      progress.update(entry);
      await o.onStep?.(entry);
      if ((saveEvery > 0 && step % saveEvery === 0) || step === totalSteps) await saveCheckpoint();
    }
  } finally {
    progress?.stop();
    engine.dispose();
  }

  return {
    globalStep: step,
    steps,
    evaluations,
    bestCheckpoint,
    bestMetric,
    lastCheckpoint,
    resumedFrom,
    truncation: { train: trainSet.truncation, ...(devSet ? { dev: devSet.truncation } : {}) },
    ...(promptFormat ? { promptFormat: promptFormat.describe() } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}
