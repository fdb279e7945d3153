/**
 * Which family (T5 encoder-decoder or causal decoder-only) each model of the pipeline is, as HF's
 * Auto classes decide it: a model directory by its config.json's model_type, a from-scratch
 * `init.config` by its `model_type` (llama, qwen2 or t5; t5 when absent, the configs written before
 * causal models existed). Also the one-vocabulary rule of knowledge distillation (the KD loss
 * compares the mentor's and the student's distributions token by token, so both must have the same
 * tokens at the same ids): checked before any work, naming both sizes and tokenizers otherwise.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelInit, RunConfig, StudentMode } from '../config/schema.js';
import { modelFamily, type ModelFamily } from '../model/auto-model.js';
import { CausalLM } from '../model/causal-model.js';
import { PromptFormat, type PromptFormatRecord } from '../model/chat-template.js';
import { T5Model, type LoadOptions } from '../model/t5-model.js';
import { Tokenizer } from '../model/tokenizer.js';
import { initModel as initT5Model } from './stages/shared.js';

export type { ModelFamily } from '../model/auto-model.js';
export type PipelineModel = T5Model | CausalLM;

/** model_type values a from-scratch `init.config` may name, and their family. */
const SCRATCH_TYPES: Record<string, ModelFamily> = { t5: 't5', llama: 'causal', qwen2: 'causal' };

/** Student modes whose loss compares the mentor's token distributions with the student's. */
export const KD_MODES: readonly StudentMode[] = ['mentor-kd', 'kd-only'];

/** What the pipeline knows of a model before building it. */
export interface ModelDescription {
  role: 'mentor' | 'student';
  family: ModelFamily;
  /** model_type (t5, llama, qwen2). */
  modelType: string;
  /** The model directory, or undefined for a from-scratch model. */
  dir?: string;
  /** Its output vocabulary (config.json's vocab_size); undefined from scratch (the run tokenizer's size). */
  vocabSize?: number;
  /** The model directory's tokenizer.json, when it has one. */
  tokenizerFile?: string;
  /** A from-scratch causal config that gives its own (padded) vocab_size. */
  scratchPadded?: boolean;
}

function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: cannot read a JSON config (${(e as Error).message})`, { cause: e });
  }
}

/** The family, model_type and vocabulary of `<role>.init`; an Error naming the field or file otherwise. */
export async function describeInit(role: 'mentor' | 'student', init: ModelInit): Promise<ModelDescription> {
  if ('model_name_or_path' in init) {
    const dir = init.model_name_or_path;
    const family = await modelFamily(dir);
    const config = readConfig(dir);
    const vocab = config.vocab_size;
    const tokenizerFile = join(dir, 'tokenizer.json');
    return {
      role,
      family,
      modelType: String(config.model_type),
      dir,
      ...(typeof vocab === 'number' ? { vocabSize: vocab } : {}),
      ...(existsSync(tokenizerFile) ? { tokenizerFile } : {}),
    };
  }
  const type = init.config.model_type ?? 't5';
  const family = typeof type === 'string' ? SCRATCH_TYPES[type] : undefined;
  if (!family) throw new Error(`${role}.init.config.model_type: ${JSON.stringify(type)} is not supported (one of ${Object.keys(SCRATCH_TYPES).join(', ')})`);
  // A from-scratch causal model may pad its vocabulary (vocab_size ≥ the tokenizer's), as HF
  // checkpoints do, e.g. to KD-pair it with a pretrained Qwen2 mentor (151936 rows, 151646 tokens).
  const padded = family === 'causal' && typeof init.config.vocab_size === 'number' ? { vocabSize: init.config.vocab_size, scratchPadded: true } : {};
  return { role, family, modelType: type as string, ...padded };
}

/** The families of the run's two models (mentor first). */
export async function describeModels(c: RunConfig): Promise<{ mentor: ModelDescription; student: ModelDescription }> {
  return { mentor: await describeInit('mentor', c.mentor.init), student: await describeInit('student', c.student.init) };
}

/** The run's tokenizer as the pre-flight check knows it: where it comes from, and its size when it can be known before building it. */
export interface RunTokenizerInfo {
  name: string;
  vocabSize?: number;
}

/**
 * The run tokenizer before any stage: tokenizer.dir, else a causal model directory's own (as the
 * tokenizer stage picks it), loaded to count its tokens; or one built from the data (size unknown yet).
 */
export async function runTokenizerInfo(c: RunConfig, models: { mentor: ModelDescription; student: ModelDescription }): Promise<RunTokenizerInfo> {
  const dir = c.tokenizer.dir ?? [models.mentor, models.student].find((m) => m.family === 'causal' && m.dir && m.tokenizerFile)?.dir;
  if (dir === undefined) return { name: 'built from the data' };
  return { name: join(dir, 'tokenizer.json'), vocabSize: (await Tokenizer.load(dir)).vocabSize };
}

const where = (d: ModelDescription, tokenizer: RunTokenizerInfo) =>
  d.dir
    ? `${d.role} ${d.dir} (vocab_size ${d.vocabSize ?? '?'}, tokenizer ${d.tokenizerFile ?? tokenizer.name})`
    : `${d.role} from scratch (vocab_size ${d.scratchPadded ? d.vocabSize : (tokenizer.vocabSize ?? 'of the tokenizer')}, tokenizer ${tokenizer.name})`;

/**
 * The one-vocabulary rule, before any stage runs: when a KD mode is listed, the mentor and the
 * student must be of one family (the trainer runs the mentor teacher-forced on the student's batch)
 * and have the same vocab_size (a from-scratch model takes the run tokenizer's size; beside a model
 * directory it cannot be a tokenizer built from the data), and two model directories with their
 * own tokenizer.json must have tokenizers of one size.
 */
export async function checkKdVocabulary(
  c: RunConfig,
  models: { mentor: ModelDescription; student: ModelDescription },
  runTokenizer: RunTokenizerInfo,
): Promise<void> {
  const kd = c.student.modes.filter((m) => KD_MODES.includes(m));
  if (!kd.length) return;
  const { mentor, student } = models;
  const modes = kd.join(', ');
  if (mentor.family !== student.family)
    throw new Error(
      `student.modes: ${modes} distills the mentor's token distributions into the student, which needs one model family: ` +
        `mentor.init is ${mentor.modelType} (${mentor.family}), student.init is ${student.modelType} (${student.family})`,
    );
  const fail = (why: string) =>
    new Error(`student.modes: ${modes} needs one vocabulary for mentor and student, ${why}: ${where(mentor, runTokenizer)}; ${where(student, runTokenizer)}`);
  const size = (d: ModelDescription) => (d.dir || d.scratchPadded ? d.vocabSize : runTokenizer.vocabSize);
  const [m, s] = [size(mentor), size(student)];
  if (!mentor.dir !== !student.dir && runTokenizer.vocabSize === undefined)
    throw fail(
      'but one is a model directory with its own vocabulary and the other is built from scratch on a tokenizer built from the data (give tokenizer.dir)',
    );
  if (m !== undefined && s !== undefined && m !== s) throw fail(`but the vocab sizes differ (${m} vs ${s})`);
  if (mentor.tokenizerFile && student.tokenizerFile && mentor.dir && student.dir) {
    const [a, b] = [(await Tokenizer.load(mentor.dir)).vocabSize, (await Tokenizer.load(student.dir)).vocabSize];
    if (a !== b) throw fail(`but their tokenizers differ (${a} vs ${b} tokens)`);
  }
}

/**
 * After the tokenizer stage: a from-scratch model takes the built tokenizer's size, so the rule is
 * checked again with it (KD modes).
 */
export async function checkKdVocabularyWith(
  c: RunConfig,
  models: { mentor: ModelDescription; student: ModelDescription },
  tok: Tokenizer,
  tokenizerDir: string,
): Promise<void> {
  await checkKdVocabulary(c, models, { name: join(tokenizerDir, 'tokenizer.json'), vocabSize: tok.vocabSize });
}

/**
 * The model `<role>.init` describes: loaded from its directory (a vocabulary smaller than the
 * tokenizer's is refused), or initialised at random from `init.config` with the vocabulary and
 * special ids of the run tokenizer.
 */
export async function initModel(init: ModelInit, tok: Tokenizer, seed: number, placement: LoadOptions = {}): Promise<PipelineModel> {
  const family = 'model_name_or_path' in init ? await modelFamily(init.model_name_or_path) : SCRATCH_TYPES[String(init.config.model_type ?? 't5')];
  if (family !== 'causal') return initT5Model(init, tok, seed, placement);
  if ('model_name_or_path' in init) {
    const m = await CausalLM.load(init.model_name_or_path, placement);
    if (m.info().vocabSize < tok.vocabSize) {
      m.dispose();
      throw new Error(`model ${init.model_name_or_path} has vocab_size ${m.info().vocabSize} but the tokenizer has ${tok.vocabSize} tokens`);
    }
    return m;
  }
  // From scratch: the vocabulary and special ids come from the tokenizer (no BOS: the demo
  // tokenizer has none, and the plain prompts are encoded without one).
  const given = init.config.vocab_size;
  if (given !== undefined && (typeof given !== 'number' || given < tok.vocabSize))
    throw new Error(`init.config.vocab_size: ${JSON.stringify(given)} is smaller than the tokenizer's ${tok.vocabSize} tokens`);
  const config = { bos_token_id: null, pad_token_id: tok.padId, eos_token_id: tok.eosId, ...init.config, vocab_size: given ?? tok.vocabSize };
  return CausalLM.fromConfig(config, { seed, ...placement });
}

/** A published model directory as the class its config.json's model_type names. */
export async function loadPipelineModel(dir: string, placement: LoadOptions = {}): Promise<PipelineModel> {
  return (await modelFamily(dir)) === 't5' ? T5Model.load(dir, placement) : CausalLM.load(dir, placement);
}

/**
 * How a causal model's prompts are formatted: the chat template of the run tokenizer's
 * tokenizer_config.json (the one published beside every model of the run) when it has one, else
 * plain `Q: … A:`. T5 models take the question as it is (null).
 */
export function promptFormatFor(model: PipelineModel, tok: Tokenizer): PromptFormat | null {
  return model instanceof CausalLM ? PromptFormat.fromTokenizerConfig(tok.config) : null;
}

/** The family and prompt format a stage records in its manifest. */
export interface ModelRecord {
  family: ModelFamily;
  modelType: string;
  /** The chat template or plain Q/A (causal); absent for T5 (the question is the encoder input). */
  promptFormat?: PromptFormatRecord;
}

export function modelRecord(model: PipelineModel, tok: Tokenizer): ModelRecord {
  if (model instanceof CausalLM)
    return { family: 'causal', modelType: model.info().modelType, promptFormat: PromptFormat.fromTokenizerConfig(tok.config).describe() };
  return { family: 't5', modelType: 't5' };
}
