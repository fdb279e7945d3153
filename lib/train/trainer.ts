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
import { shardOf } from '../parallel/sampler.js';
import { agreeAcrossRanks } from '../parallel/shared-fs.js';
import { allreduceCounts, onMain } from '../parallel/sharded.js';
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { BatchStream, collate, exampleLength } from './batches.js';
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
import { describeTruncation, tokenizeDataset, type Seq2SeqExample, type TruncationReport } from './data.js';
import { TrainEngine } from './engine.js';
import { evaluateGreedy, type EvaluateOptions } from './evaluate.js';
import { MetricsLog, TrainProgress } from './progress.js';
import type { SoftLabelCache } from './soft-labels.js';

export interface TrainOptions {
  model: T5Model;
  tokenizer: Tokenizer;
  train: readonly Seq2SeqExample[];
  /** Dev split: evaluated at every checkpoint; the best checkpoint is chosen on it. Never pass test data. */
  dev?: readonly Seq2SeqExample[];
  outputDir: string;
  /** Stop after this many optimizer steps (or give `epochs`). */
  maxSteps?: number;
  epochs?: number;
  /** Examples per micro-batch (default 8). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulation?: number;
  lr?: number;
  schedule?: 'constant' | 'linear' | 'cosine';
  warmupSteps?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Gradient clipping by global norm (default 1; <= 0 disables). */
  maxGradNorm?: number;
  seed?: number;
  maxSourceLength?: number;
  maxTargetLength?: number;
  /** Batches per length bucket (default 50). */
  bucketBatches?: number;
  /** Save (and evaluate on dev) every this many steps; 0 = only at the end. */
  saveEvery?: number;
  /** Checkpoints kept besides the best one (default 3). */
  keepLast?: number;
  eval?: EvaluateOptions;
  mentor?: T5Model;
  softLabels?: SoftLabelCache;
  /** KD loss (1-λ)·CE + λ·KL at temperature τ (default λ 0.3, τ 2). */
  kd?: { lambda?: number; tau?: number };
  /** true: continue from the latest checkpoint in outputDir; a path: from that checkpoint. */
  resume?: boolean | string;
  /** Progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Default: <outputDir>/metrics.jsonl. */
  metricsFile?: string;
  /** Called after every successful step (before any checkpoint of that step). */
  onStep?: (log: StepLog) => void | Promise<void>;
  /** Called after every checkpoint is complete on disk. */
  onCheckpoint?: (dir: string, step: number) => void | Promise<void>;
  /** bf16 autocast on CUDA (default true; ignored on CPU). */
  mixedPrecision?: boolean;
  /** bf16 autocast on CPU too (default false): ~1.3x faster where the CPU has AVX512-BF16/AMX; see docs/training.md. */
  cpuAutocast?: boolean;
  /** Warnings and notices (default: console.warn). */
  logger?: (line: string) => void;
  /**
   * Data-parallel training over a process group (lib/parallel): rank r takes batches r·A … r·A+A−1 of
   * every A·W drawn from the shared stream (A = gradient accumulation, W = world size), gradients
   * are summed over ranks, dev evaluation is sharded, and rank 0 alone writes checkpoints, metrics
   * and logs. Resume needs the same world size.
   */
  dist?: { group: ProcessGroup; bucketBytes?: number };
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  ce: number;
  kl: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  sourceTokens: number;
  /** (source + target tokens) per second of wall time of this step. */
  tokensPerSecond: number;
  seconds: number;
}

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

function positiveInt(name: string, v: number | undefined, fallback: number, allowZero = false): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < (allowZero ? 0 : 1)) throw new Error(`train: ${name} must be ${allowZero ? 'a non-negative' : 'a positive'} integer, got ${v}`);
  return x;
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const { model, tokenizer, outputDir } = options;
  const group = options.dist?.group;
  const world = group?.worldSize ?? 1;
  const isMain = !group || group.isMain;
  const log = isMain ? (options.logger ?? ((line: string) => console.warn(line))) : () => undefined;
  if (!outputDir) throw new Error('train: outputDir is required');
  const batchSize = positiveInt('batchSize', options.batchSize, 8);
  const accumulation = positiveInt('gradientAccumulation', options.gradientAccumulation, 1);
  const seed = positiveInt('seed', options.seed, 42, true);
  const bucketBatches = positiveInt('bucketBatches', options.bucketBatches, 50);
  const saveEvery = positiveInt('saveEvery', options.saveEvery, 0, true);
  const keepLast = positiveInt('keepLast', options.keepLast, 3, true);
  const maxSourceLength = positiveInt('maxSourceLength', options.maxSourceLength, 512);
  const maxTargetLength = positiveInt('maxTargetLength', options.maxTargetLength, 512);
  if (options.mentor && options.softLabels) throw new Error('train: give soft labels as an online mentor or as a cache (softLabels), not both');
  if (options.maxSteps === undefined && options.epochs === undefined) throw new Error('train: give maxSteps or epochs');

  // ---- data
  const trainSet = tokenizeDataset(options.train, tokenizer, { maxSourceLength, maxTargetLength, name: 'train' });
  const devSet = options.dev?.length ? tokenizeDataset(options.dev, tokenizer, { maxSourceLength, maxTargetLength, name: 'dev' }) : undefined;
  const metrics: Pick<MetricsLog, 'append'> = isMain ? new MetricsLog(options.metricsFile ?? join(outputDir, 'metrics.jsonl')) : { append: () => undefined };
  for (const set of [trainSet, devSet]) {
    if (!set) continue;
    metrics.append({ event: 'truncation', dataset: set.name, ...set.truncation });
    if (set.truncation.targetTruncated > 0 || set.truncation.sourceTruncated > 0) log(`mentor-kd: ${describeTruncation(set.name, set.truncation)}`);
  }
  const stream = new BatchStream(trainSet.examples.map(exampleLength), { batchSize, seed, bucketBatches });
  const totalSteps = options.maxSteps !== undefined
    ? positiveInt('maxSteps', options.maxSteps, 1)
    : Math.ceil((positiveInt('epochs', options.epochs, 1) * stream.batchesPerEpoch()) / (accumulation * world));

  if (options.softLabels) {
    const info = options.softLabels.info();
    if (info.metadata.train_fingerprint !== trainSet.fingerprint) {
      throw new Error(`train: soft-label cache ${info.dir} was built for other training data (its fingerprint differs: another dataset, tokenizer or max length)`);
    }
    if (info.numExamples !== trainSet.examples.length) throw new Error(`train: soft-label cache ${info.dir} has ${info.numExamples} examples, the training set ${trainSet.examples.length}`);
  }
  const softMode: TrainerState['soft_labels'] = options.mentor ? 'online' : options.softLabels ? 'offline' : 'none';
  const schedule = { kind: options.schedule ?? 'constant', lr: options.lr ?? 3e-4, warmup_steps: options.warmupSteps ?? 0, total_steps: totalSteps };

  const engine = await TrainEngine.create(
    model,
    {
      mentor: options.mentor,
      lr: schedule.lr,
      schedule: schedule.kind,
      warmupSteps: schedule.warmup_steps,
      totalSteps,
      weightDecay: options.weightDecay ?? 0,
      beta1: options.beta1,
      beta2: options.beta2,
      eps: options.eps,
      maxGradNorm: options.maxGradNorm ?? 1,
      kdLambda: options.kd?.lambda ?? 0.3,
      kdTau: options.kd?.tau ?? 2,
      seed,
      mixedPrecision: options.mixedPrecision,
      cpuAutocast: options.cpuAutocast,
    },
    options.softLabels,
  );

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
    // ---- resume
    let resumeDir: string | null = null;
    if (options.resume) resumeDir = typeof options.resume === 'string' ? options.resume : ((await latestCheckpoint(outputDir)) ?? null);
    if (group) {
      // Each rank looked at its own filesystem: without a shared one, rank 0 would resume while the
      // others start afresh (or the reverse), silently.
      const view = { resume: !!options.resume, from: resumeDir ? resolve(resumeDir) : null };
      await agreeAcrossRanks(group, view, 'where training starts', (v) =>
        !v.resume ? 'from scratch' : v.from ? `resume from ${v.from}` : `resume, but no complete checkpoint in ${resolve(outputDir)}`,
      ).catch((err: Error) => {
        throw new Error(`train: ${err.message} (is outputDir on a filesystem every node mounts? rank 0 alone writes the checkpoints)`);
      });
    }
    if (options.resume) {
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
      stream.seek(state.data_position);
      bestMetric = state.best_metric;
      bestStep = state.best_step;
      bestCheckpoint = state.best_checkpoint;
      lastCheckpoint = resolve(dir);
      tokensSeen = state.tokens_seen;
      history = state.log_history ?? [];
      resumedFrom = resolve(dir);
      metrics.append({ event: 'resume', from: resumedFrom, step: state.global_step });
    }

    if (group) {
      // Every replica starts from rank 0's parameters; steps then sum gradients over ranks.
      const dp = DataParallel.create(group, model, { bucketBytes: options.dist?.bucketBytes });
      await dp.broadcastParameters(0);
      engine.setDistributed(dp);
    }
    step = engine.globalStep;
    progress = new TrainProgress(isMain && (options.progress ?? !!process.stderr.isTTY), totalSteps, step);

    const saveCheckpoint = async (): Promise<void> => {
      const final = resolve(join(outputDir, checkpointName(step)));
      if (devSet) {
        // Sharded over ranks; the counts are summed, so every rank picks the same best checkpoint.
        const shard = group ? shardOf(devSet.examples, group.rank, world).items : devSet.examples;
        const local = await evaluateGreedy(model, tokenizer, shard, options.eval);
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
      await onMain(group, async () => {
        await writeCheckpoint(outputDir, step, state, async (tmp) => {
          await engine.saveCheckpoint(tmp);
          await tokenizer.save(tmp);
        });
        metrics.append({ event: 'checkpoint', step, dir: written });
        const protect = new Set<string>([written]);
        if (bestCheckpoint) protect.add(bestCheckpoint);
        await pruneCheckpoints(outputDir, keepLast, protect);
      });
      lastCheckpoint = written;
      await options.onCheckpoint?.(lastCheckpoint, step);
    };

    while (step < totalSteps) {
      const tStep = performance.now();
      const batches = [];
      let epoch = 0;
      for (let i = 0; i < accumulation * world; i++) {
        const next = stream.next();
        epoch = next.epoch;
        if (Math.floor(i / accumulation) === (group?.rank ?? 0)) batches.push(collate(next.indices.map((j) => trainSet.examples[j]!), tokenizer.padId));
      }
      const r = await engine.step(batches);
      if (!r.finite) {
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
      const entry: StepLog = {
        step,
        epoch,
        loss: r.loss,
        ce: r.ce,
        kl: r.kl,
        lr: r.lr,
        gradNorm: r.gradNorm,
        tokens: r.tokens,
        sourceTokens: r.sourceTokens,
        tokensPerSecond: (r.tokens + r.sourceTokens) / seconds,
        seconds,
      };
      steps.push(entry);
      history.push({ step, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm });
      metrics.append({
        step, epoch, loss: r.loss, ce: r.ce, kl: r.kl, lr: r.lr, grad_norm: r.gradNorm,
        tokens: r.tokens, source_tokens: r.sourceTokens, tokens_per_s: entry.tokensPerSecond, step_seconds: seconds,
      });
      progress.update({ step, loss: r.loss, tokensPerSecond: entry.tokensPerSecond, lr: r.lr });
      await options.onStep?.(entry);
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
    seconds: (performance.now() - t0) / 1000,
  };
}
