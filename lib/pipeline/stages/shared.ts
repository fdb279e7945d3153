/** What the training stages share: the seq2seq examples, model initialisation, train()'s arguments, publishing a model. */
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelInit, PipelineTrainSettings } from '../../config/schema.js';
import { T5Model } from '../../model/t5-model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { answersMatch, extractAnswer, normalizeGold } from '../../tasks/cleansing.js';
import type { TaskRecord } from '../../tasks/records.js';
import { latestCheckpoint, type Seq2SeqExample, type TrainOptions, type TrainResult } from '../../train/index.js';
import type { StageContext } from './context.js';
import type { FilteredRationale } from './filter.js';

/** The Fine-tune-CoT target: "{rationale} --> {answer}". */
export const target = (rationale: string, answer: string) => `${rationale} --> ${answer}`;

export const devExamples = (dev: readonly TaskRecord[]): Seq2SeqExample[] =>
  dev.map((r) => ({ id: r.id, source: r.question, target: r.answer, answer: r.answer }));

export const teacherExamples = (kept: readonly FilteredRationale[], task: StageContext['config']['task']): Seq2SeqExample[] =>
  kept.map((k) => ({ id: k.questionId, source: k.question, target: target(k.rationale, normalizeGold(k.answer, task)), answer: k.answer }));

export async function initModel(init: ModelInit, tok: Tokenizer, seed: number): Promise<T5Model> {
  if ('model_name_or_path' in init) {
    const m = await T5Model.load(init.model_name_or_path);
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
  return T5Model.fromConfig(config, { seed });
}

/**
 * train()'s settings and run-wide options: the configured settings as they are (same names), the
 * run's seed, the process group, dev evaluation by the task's answer rule, and resuming from the
 * stage's own checkpoints when a killed run left some.
 */
export async function trainArgs(settings: PipelineTrainSettings, ctx: StageContext, outputDir: string) {
  const c = ctx.config;
  return {
    ...settings,
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
