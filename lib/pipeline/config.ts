/**
 * Run configuration: one object for the whole pipeline, read from YAML or JSON, with CLI overrides,
 * validated before any work starts so a bad field fails in a second, not after an hour of training.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isTaskName, TASK_NAMES, type TaskName } from '../tasks/registry.js';

export const STUDENT_MODES = ['vanilla', 'mentor-kd', 'augment-only', 'kd-only'] as const;
export type StudentMode = (typeof STUDENT_MODES)[number];

/** A model to start from: a HF model directory, or a T5 config to initialise at random. */
export type ModelInit = { dir: string } | { config: Record<string, unknown> };

export interface TrainSettings {
  epochs: number;
  /** Examples per batch on each rank (the effective batch is batchSize × gradientAccumulation × ranks). */
  batchSize: number;
  /** Batches accumulated per optimizer step (default 1). */
  gradientAccumulation?: number;
  learningRate: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  weightDecay: number;
  maxSourceLength: number;
  maxTargetLength: number;
  gradClip: number;
  /** Checkpoint and evaluate on dev (the best checkpoint is kept) every this many steps; 0 = at the end. */
  saveEvery: number;
  /** Checkpoints kept besides the best one. */
  keepLast: number;
  /** bf16 autocast on CPU (default false): ~1.3x faster on CPUs with AVX512-BF16/AMX, slower elsewhere. */
  cpuAutocast?: boolean;
}

export interface RunConfig {
  /** Where every stage writes its artifacts. */
  runDir: string;
  task: TaskName;
  seed: number;
  data: {
    /** Files in a format lib/tasks reads (Mentor-KD release JSON, GSM8K JSONL, ...). */
    train?: string;
    dev?: string;
    test?: string;
    /** Generate the task instead (last_letter_concatenation, coin_flip). */
    synthetic?: { train: number; dev: number; test: number; size: number };
  };
  teacher: {
    /** An OpenAI-compatible base URL; when absent, the built-in simulated teacher on loopback. */
    url?: string;
    model: string;
    api: 'chat' | 'completions';
    apiKeyEnv: string;
    /** Rationales per training question. */
    samples: number;
    concurrency: number;
    /** The built-in teacher's mistake rate and latency. */
    embedded: { errorRate: number; latencyMs: number };
  };
  /** A tokenizer.json directory; when absent one is built from the training text. */
  tokenizer: { dir?: string; vocabSize: number };
  mentor: { init: ModelInit; train: TrainSettings };
  augment: { samples: number; temperature: number; maxNewTokens: number; batchSize: number };
  student: {
    init: ModelInit;
    train: TrainSettings;
    modes: StudentMode[];
    lambda: number;
    tau: number;
    softLabels: 'online' | 'offline';
    topK: number;
    /** Fraction of the teacher's training questions used (low-resource runs). */
    teacherFraction: number;
    /** Mentor rationales per question used by the augmenting modes. */
    mentorSamples: number;
  };
  evaluate: { maxNewTokens: number; batchSize: number };
  /** Intra-op threads; 0 = every core. */
  threads: number;
}

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`config: ${field}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge of plain objects; arrays and scalars from `over` replace. */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isPlain(over)) return (over === undefined ? base : over) as T;
  if (!isPlain(base)) return over as T;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = v === undefined ? out[k] : mergeConfig(out[k], v);
  return out as T;
}

export function readConfigFile(path: string): Plain {
  if (!existsSync(path)) throw new ConfigError('file', `${path} not found`);
  const text = readFileSync(path, 'utf8');
  let value: unknown;
  try {
    value = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError('file', `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (!isPlain(value)) throw new ConfigError('file', `${path} must hold a mapping of settings`);
  return value;
}

function num(field: string, v: unknown, check: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new ConfigError(field, `must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}
const int = (field: string, v: unknown, min = 0) => num(field, v, (x) => Number.isInteger(x) && x >= min, `an integer >= ${min}`);

function checkInit(field: string, init: unknown, baseDir: string): ModelInit {
  if (!isPlain(init)) throw new ConfigError(field, 'must be {dir: <HF model directory>} or {config: {...T5 config}}');
  if (typeof init.dir === 'string') {
    const dir = isAbsolute(init.dir) ? init.dir : resolve(baseDir, init.dir);
    if (!existsSync(dir)) throw new ConfigError(`${field}.dir`, `model directory ${dir} does not exist`);
    if (!existsSync(resolve(dir, 'config.json'))) throw new ConfigError(`${field}.dir`, `${dir} has no config.json (not a HF model directory)`);
    return { dir };
  }
  if (isPlain(init.config)) return { config: init.config };
  throw new ConfigError(field, 'must be {dir: <HF model directory>} or {config: {...T5 config}}');
}

function checkTrain(field: string, t: Plain): TrainSettings {
  int(`${field}.epochs`, t.epochs, 1);
  int(`${field}.batchSize`, t.batchSize, 1);
  if (t.gradientAccumulation !== undefined) int(`${field}.gradientAccumulation`, t.gradientAccumulation, 1);
  num(`${field}.learningRate`, t.learningRate, (x) => x > 0 && x < 1, 'in (0, 1)');
  if (!['constant', 'linear', 'cosine'].includes(String(t.schedule))) throw new ConfigError(`${field}.schedule`, `must be constant, linear or cosine, got ${JSON.stringify(t.schedule)}`);
  int(`${field}.warmupSteps`, t.warmupSteps);
  num(`${field}.weightDecay`, t.weightDecay, (x) => x >= 0, '>= 0');
  int(`${field}.maxSourceLength`, t.maxSourceLength, 2);
  int(`${field}.maxTargetLength`, t.maxTargetLength, 2);
  num(`${field}.gradClip`, t.gradClip, (x) => x >= 0, '>= 0 (0 disables)');
  int(`${field}.saveEvery`, t.saveEvery);
  int(`${field}.keepLast`, t.keepLast);
  if (t.cpuAutocast !== undefined && typeof t.cpuAutocast !== 'boolean') throw new ConfigError(`${field}.cpuAutocast`, `must be true or false, got ${JSON.stringify(t.cpuAutocast)}`);
  return t as unknown as TrainSettings;
}

/**
 * Validates a merged config (defaults + file + flags). Relative paths are taken from `baseDir`
 * (the config file's folder, or the working directory). Throws a ConfigError naming the field.
 */
export function validateConfig(raw: Plain, baseDir = process.cwd()): RunConfig {
  const c = raw as unknown as RunConfig;
  if (typeof c.runDir !== 'string' || c.runDir === '') throw new ConfigError('runDir', 'must be a directory path');
  c.runDir = resolve(baseDir, c.runDir);
  if (typeof c.task !== 'string' || !isTaskName(c.task)) {
    throw new ConfigError('task', `unknown task ${JSON.stringify(c.task)} (one of: ${TASK_NAMES.join(', ')})`);
  }
  int('seed', c.seed);
  if (!isPlain(c.data)) throw new ConfigError('data', 'must be a mapping');
  const d = c.data as Plain;
  for (const k of ['train', 'dev', 'test'] as const) {
    if (d[k] === undefined) continue;
    if (typeof d[k] !== 'string') throw new ConfigError(`data.${k}`, 'must be a file path');
    const p = resolve(baseDir, d[k] as string);
    if (!existsSync(p)) throw new ConfigError(`data.${k}`, `file ${p} does not exist`);
    (c.data as Plain)[k] = p;
  }
  if (d.synthetic !== undefined) {
    if (!isPlain(d.synthetic)) throw new ConfigError('data.synthetic', 'must be {train, dev, test, size}');
    if (!['last_letter_concatenation', 'coin_flip'].includes(c.task)) {
      throw new ConfigError('data.synthetic', `task ${c.task} has no synthetic generator (last_letter_concatenation, coin_flip do)`);
    }
    for (const k of ['train', 'dev', 'test', 'size']) int(`data.synthetic.${k}`, (d.synthetic as Plain)[k], k === 'size' || k === 'train' ? 1 : 0);
  } else if (!d.train || !d.test) {
    throw new ConfigError('data', 'needs train and test files, or synthetic: {train, dev, test, size}');
  }
  const t = c.teacher as unknown as Plain;
  if (!isPlain(t)) throw new ConfigError('teacher', 'must be a mapping');
  if (t.url !== undefined && (typeof t.url !== 'string' || !/^https?:\/\//.test(t.url))) throw new ConfigError('teacher.url', `must be an http(s) URL, got ${JSON.stringify(t.url)}`);
  if (typeof t.model !== 'string' || !t.model) throw new ConfigError('teacher.model', 'must be a model name');
  if (t.api !== 'chat' && t.api !== 'completions') throw new ConfigError('teacher.api', `must be chat or completions, got ${JSON.stringify(t.api)}`);
  int('teacher.samples', t.samples, 1);
  int('teacher.concurrency', t.concurrency, 1);
  if (!isPlain(t.embedded)) throw new ConfigError('teacher.embedded', 'must be {errorRate, latencyMs}');
  num('teacher.embedded.errorRate', (t.embedded as Plain).errorRate, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  int('teacher.embedded.latencyMs', (t.embedded as Plain).latencyMs);
  if (c.tokenizer.dir !== undefined) {
    c.tokenizer.dir = resolve(baseDir, c.tokenizer.dir);
    if (!existsSync(resolve(c.tokenizer.dir, 'tokenizer.json'))) throw new ConfigError('tokenizer.dir', `${c.tokenizer.dir} has no tokenizer.json`);
  }
  int('tokenizer.vocabSize', c.tokenizer.vocabSize, 8);
  c.mentor.init = checkInit('mentor.init', c.mentor.init, baseDir);
  checkTrain('mentor.train', c.mentor.train as unknown as Plain);
  int('augment.samples', c.augment.samples, 1);
  num('augment.temperature', c.augment.temperature, (x) => x > 0, '> 0');
  int('augment.maxNewTokens', c.augment.maxNewTokens, 1);
  int('augment.batchSize', c.augment.batchSize, 1);
  const s = c.student;
  s.init = checkInit('student.init', s.init, baseDir);
  checkTrain('student.train', s.train as unknown as Plain);
  if (!Array.isArray(s.modes) || s.modes.length === 0) throw new ConfigError('student.modes', `must list one or more of ${STUDENT_MODES.join(', ')}`);
  for (const m of s.modes) if (!STUDENT_MODES.includes(m)) throw new ConfigError('student.modes', `unknown mode ${JSON.stringify(m)} (one of: ${STUDENT_MODES.join(', ')})`);
  num('student.lambda', s.lambda, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  num('student.tau', s.tau, (x) => x > 0, '> 0');
  if (s.softLabels !== 'online' && s.softLabels !== 'offline') throw new ConfigError('student.softLabels', `must be online or offline, got ${JSON.stringify(s.softLabels)}`);
  int('student.topK', s.topK, 1);
  num('student.teacherFraction', s.teacherFraction, (x) => x > 0 && x <= 1, 'in (0, 1]');
  int('student.mentorSamples', s.mentorSamples);
  if (s.mentorSamples > c.augment.samples) throw new ConfigError('student.mentorSamples', `${s.mentorSamples} exceeds augment.samples (${c.augment.samples})`);
  int('evaluate.maxNewTokens', c.evaluate.maxNewTokens, 1);
  int('evaluate.batchSize', c.evaluate.batchSize, 1);
  int('threads', c.threads);
  return c;
}
