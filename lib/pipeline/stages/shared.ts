/**
 * What the model stages share: the seq2seq examples, where a model runs (modelPlacement), model
 * initialisation, Hub ids made local, train()'s arguments, publishing a model.
 */
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ModelInit, PipelineTrainSettings, RunConfig } from '../../config/schema.js';
import { downloadModel, isHubId } from '../../model/hub.js';
import { T5Model, type Device, type LoadOptions } from '../../model/t5-model.js';
import type { ProcessGroup } from '../../parallel/process-group.js';
import { onMain } from '../../parallel/sharded.js';
import { TensorBoardWriter } from '../../logging/tensorboard.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { answersMatch, extractAnswer, normalizeGold } from '../../tasks/cleansing.js';
import type { TaskRecord } from '../../tasks/records.js';
import { latestCheckpoint, type Seq2SeqExample, type StepLog, type TrainOptions, type TrainResult } from '../../train/index.js';
import type { StageContext } from './context.js';
import type { FilteredRationale } from './filter.js';

/** The Fine-tune-CoT target: "{rationale} --> {answer}". */
export const target = (rationale: string, answer: string) => `${rationale} --> ${answer}`;

export const devExamples = (dev: readonly TaskRecord[]): Seq2SeqExample[] =>
  dev.map((r) => ({ id: r.id, source: r.question, target: r.answer, answer: r.answer }));

export const teacherExamples = (kept: readonly FilteredRationale[], task: StageContext['config']['task']): Seq2SeqExample[] =>
  kept.map((k) => ({ id: k.questionId, source: k.question, target: target(k.rationale, normalizeGold(k.answer, task)), answer: k.answer }));

/** The pipeline's models: the mentor, and the student (every mode). */
export type ModelRole = 'mentor' | 'student';

/**
 * Where a model of the pipeline runs: its own `device` (mentor.device / student.device, else the
 * run's `device`), with a bare `cuda` under a process group (`mentor-kd launch`) taking the rank's
 * local GPU (LOCAL_RANK), as torchrun workers do. Weights load in float32; `bf16` in the training
 * settings turns on autocast (on by default on CUDA, lib/config/train-settings.ts).
 */
export function modelPlacement(ctx: { config: RunConfig; group: ProcessGroup | undefined }, role: ModelRole): LoadOptions {
  const device = (ctx.config[role].device ?? ctx.config.device) as Device;
  return { device: device === 'cuda' && ctx.group ? `cuda:${ctx.group.localRank}` : device };
}

/**
 * The run's configuration with every Hub id (model inits, tokenizer.dir) replaced by its local
 * snapshot folder (lib/model/hub.ts). Under a process group rank 0 downloads while the others wait,
 * then they read the same cache without the network.
 */
export async function localizeHubIds(c: RunConfig, group: ProcessGroup | undefined, log: (line: string) => void): Promise<RunConfig> {
  const ids = [c.mentor.init, c.student.init].flatMap((i) => ('model_name_or_path' in i && isHubId(i.model_name_or_path) ? [i.model_name_or_path] : []));
  if (c.tokenizer.dir !== undefined && isHubId(c.tokenizer.dir)) ids.push(c.tokenizer.dir);
  if (!ids.length) return c;
  const fetchAll = async (env?: NodeJS.ProcessEnv) => {
    const dirs = new Map<string, string>();
    for (const id of new Set(ids)) dirs.set(id, await downloadModel(id, { log, ...(env ? { env } : {}) }));
    return dirs;
  };
  await onMain(group, () => fetchAll(), 'download the Hub models');
  // Every rank (rank 0 included) now finds the models in the cache.
  const dirs = await fetchAll({ ...process.env, HF_HUB_OFFLINE: '1' });
  const local = (init: ModelInit): ModelInit =>
    'model_name_or_path' in init && dirs.has(init.model_name_or_path) ? { model_name_or_path: dirs.get(init.model_name_or_path)! } : init;
  return {
    ...c,
    tokenizer: { ...c.tokenizer, ...(c.tokenizer.dir !== undefined && dirs.has(c.tokenizer.dir) ? { dir: dirs.get(c.tokenizer.dir)! } : {}) },
    mentor: { ...c.mentor, init: local(c.mentor.init) },
    student: { ...c.student, init: local(c.student.init) },
  };
}

export async function initModel(init: ModelInit, tok: Tokenizer, seed: number, placement: LoadOptions = {}): Promise<T5Model> {
  if ('model_name_or_path' in init) {
    const m = await T5Model.load(init.model_name_or_path, placement);
    if (m.info().vocabSize < tok.vocabSize)
      throw new Error(`model ${init.model_name_or_path} has vocab_size ${m.info().vocabSize} but the tokenizer has ${tok.vocabSize} tokens`);
    return m;
  }
  // From scratch: the vocabulary and special ids come from the tokenizer.
  const config = {
    model_type: 't5',
    decoder_start_token_id: tok.padId,
    pad_token_id: tok.padId,
    eos_token_id: tok.eosId,
    ...init.config,
    vocab_size: tok.vocabSize,
  };
  return T5Model.fromConfig(config, { seed, ...placement });
}

/**
 * train()'s settings and run-wide options: the configured settings as they are (same names), the
 * run's seed, the process group, dev evaluation by the task's answer rule, and resuming from the
 * stage's own checkpoints when a killed run left some.
 */
export async function trainArgs(settings: PipelineTrainSettings, ctx: StageContext, outputDir: string) {
  const c = ctx.config;
  // report_to: [tensorboard]: the steps' scalars under <output_dir>/runs/<stage>, HF's tag names.
  const tensorboard =
    c.report_to.includes('tensorboard') && ctx.isMain ? new TensorBoardWriter(join(c.output_dir, 'runs', basename(dirname(outputDir)))) : undefined;
  return {
    ...settings,
    // The pipeline's training always reports progress (a bar on a terminal, plain lines otherwise).
    progress: ctx.isMain,
    ...(tensorboard
      ? {
          onStep: (s: StepLog) =>
            tensorboard.addScalars(s.step, {
              'train/loss': s.loss,
              'train/ce': s.ce,
              'train/kl': s.kl,
              'train/consistency': s.consistency,
              'train/learning_rate': s.lr,
              'train/grad_norm': s.gradNorm,
              'train/epoch': s.epoch,
              'train/tokens_per_second': s.tokensPerSecond,
            }),
        }
      : {}),
    seed: c.seed,
    output_dir: outputDir,
    resume_from_checkpoint: existsSync(outputDir) && !!(await latestCheckpoint(outputDir)),
    ...(ctx.group ? { parallel: { group: ctx.group } } : {}),
    eval: {
      batchSize: c.evaluate.batchSize,
      maxNewTokens: c.evaluate.maxNewTokens,
      extractAnswer: (text: string) => extractAnswer(text, c.task),
      isCorrect: (p: string | undefined, gold: string) => answersMatch(p, normalizeGold(gold, c.task), c.task),
    },
  } satisfies Partial<TrainOptions>;
}

/** Copies the best (else last) checkpoint's HF model dir to `<dir>/model` and returns it. */
export function publishModel(result: TrainResult, dir: string, tok: Tokenizer): string {
  const src = result.bestCheckpoint ?? result.lastCheckpoint;
  if (!src) throw new Error(`training in ${dir} produced no checkpoint`);
  const out = join(dir, 'model');
  cpSync(src, out, { recursive: true, filter: (p) => !/optimizer|rng_state|trainer_state/.test(p.slice(src.length)) });
  writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(tok.json));
  writeFileSync(join(out, 'tokenizer_config.json'), JSON.stringify(tok.config, null, 2));
  return out;
}
