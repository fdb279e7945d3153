/**
 * The one path a run configuration takes: the embedded demo (lib/config/defaults.ts) ← a YAML or
 * JSON file ← `--set a.b=value` flags ← `--output-dir`, then the schema (lib/config/schema.ts), then
 * paths resolved against the config file's folder and checked — all before any work starts, so a
 * bad field fails in a second, not after an hour of training. Every error is a ConfigError naming
 * the field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { defaultConfig } from './defaults.js';
import { runConfigSchema, type ModelInit, type RunConfig } from './schema.js';

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

/** Model inits are one of two shapes: an override naming the other shape replaces the base's. */
const INIT_VARIANTS = ['model_name_or_path', 'config'];

/**
 * Deep merge of plain objects; arrays and scalars from `over` replace. A model `init` that names
 * the other variant ({model_name_or_path} over {config} or back) replaces the base's init.
 */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isPlain(over)) return (over === undefined ? base : over) as T;
  if (!isPlain(base)) return over as T;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const switchesInit = k === 'init' && isPlain(v) && isPlain(out[k]) && INIT_VARIANTS.some((x) => x in v && !(x in (out[k] as Plain)));
    out[k] = switchesInit ? v : mergeConfig(out[k], v);
  }
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

/** `--set student.lambda=0.5`: a dot path and a JSON (or bare string) value. */
export function parseOverride(s: string): Plain {
  const eq = s.indexOf('=');
  if (eq < 1) throw new ConfigError('--set', `expected key=value, got ${JSON.stringify(s)}`);
  const path = s.slice(0, eq).split('.');
  const raw = s.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const out: Plain = {};
  let cur = out;
  path.forEach((k, i) => {
    if (i === path.length - 1) cur[k] = value;
    else cur = (cur[k] = {}) as Plain;
  });
  return out;
}

/** Settings renamed by the "one name per setting" change: an old name in a config points at its new one. */
const RENAMED: Record<string, string> = {
  runDir: 'output_dir',
  dir: 'model_name_or_path',
  epochs: 'num_train_epochs',
  batchSize: 'per_device_train_batch_size',
  gradientAccumulation: 'gradient_accumulation_steps',
  learningRate: 'learning_rate',
  schedule: 'lr_scheduler_type',
  warmupSteps: 'warmup_steps',
  weightDecay: 'weight_decay',
  gradClip: 'max_grad_norm',
  saveEvery: 'save_steps',
  keepLast: 'save_total_limit',
  cpuAutocast: 'bf16',
};

/** The keys an object schema at `path` knows (object fields, through optional/default/union/array). */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = (schema as z.ZodType)._zod.def as { type: string; innerType?: z.ZodType; options?: z.ZodType[]; element?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType> };
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'nullable':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return knownKeys(def.innerType!, path);
    case 'pipe':
      return knownKeys(def.in!, path);
    case 'union':
      return [...new Set(def.options!.flatMap((o) => knownKeys(o, path)))];
    case 'array':
      return path.length ? knownKeys(def.element!, path.slice(1)) : [];
    case 'object': {
      if (!path.length) return Object.keys(def.shape!);
      const next = def.shape![String(path[0])];
      return next ? knownKeys(next, path.slice(1)) : [];
    }
    default:
      return [];
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The nearest known key to an unknown one: its new name if it was renamed, else the closest spelling. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  const renamed = RENAMED[key];
  if (renamed && known.includes(renamed)) return renamed;
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(norm(key), norm(k));
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** The field name of a path: dot-joined, array indices dropped (the message names the value). */
const fieldOf = (path: readonly PropertyKey[]) => path.filter((p) => typeof p !== 'number').map(String).join('.') || 'config';

function configErrorOf(issues: readonly z.core.$ZodIssue[]): ConfigError {
  // An unknown key first: it usually explains a missing one.
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys') {
    const key = unknown.keys[0]!;
    const known = knownKeys(runConfigSchema, unknown.path);
    const near = suggestKey(key, known);
    const hint = near ? (RENAMED[key] === near ? ` (renamed ${near})` : ` (did you mean ${near}?)`) : known.length ? ` (known: ${known.join(', ')})` : '';
    return new ConfigError(fieldOf([...unknown.path, key]), `unknown setting${hint}`);
  }
  const first = issues[0]!;
  return new ConfigError(fieldOf(first.path), first.message);
}

/** Issues the schema leaves to zod's wording (a missing or mistyped value) in the config's "must be …, got …" shape. */
const parseError = (iss: z.core.$ZodRawIssue): string | undefined =>
  iss.code === 'invalid_type' ? `must be ${iss.expected === 'object' || iss.expected === 'record' ? 'a mapping' : `a ${iss.expected}`}, got ${JSON.stringify(iss.input)}` : undefined;

function resolveInit(field: string, init: ModelInit, baseDir: string): ModelInit {
  if (!('model_name_or_path' in init)) return init;
  const dir = resolve(baseDir, init.model_name_or_path);
  if (!existsSync(dir)) throw new ConfigError(`${field}.model_name_or_path`, `model directory ${dir} does not exist`);
  if (!existsSync(resolve(dir, 'config.json'))) throw new ConfigError(`${field}.model_name_or_path`, `${dir} has no config.json (not a HF model directory)`);
  return { model_name_or_path: dir };
}

/**
 * Validates a merged config (demo + file + flags) against the schema and resolves its paths:
 * relative paths are taken from `baseDir` (the config file's folder, or the working directory).
 * Returns a new object; throws a ConfigError naming the field.
 */
export function validateConfig(raw: unknown, baseDir = process.cwd()): RunConfig {
  const parsed = runConfigSchema.safeParse(raw, { error: parseError });
  if (!parsed.success) throw configErrorOf(parsed.error.issues);
  const c = parsed.data;
  c.output_dir = resolve(baseDir, c.output_dir);
  for (const k of ['train', 'dev', 'test'] as const) {
    const f = c.data[k];
    if (f === undefined) continue;
    const p = resolve(baseDir, f);
    if (!existsSync(p)) throw new ConfigError(`data.${k}`, `file ${p} does not exist`);
    c.data[k] = p;
  }
  if (c.tokenizer.dir !== undefined) {
    c.tokenizer.dir = resolve(baseDir, c.tokenizer.dir);
    if (!existsSync(resolve(c.tokenizer.dir, 'tokenizer.json'))) throw new ConfigError('tokenizer.dir', `${c.tokenizer.dir} has no tokenizer.json`);
  }
  c.mentor.init = resolveInit('mentor.init', c.mentor.init, baseDir);
  c.student.init = resolveInit('student.init', c.student.init, baseDir);
  return c;
}

export interface ConfigSources {
  /** A YAML or JSON file layered over the demo. */
  config?: string;
  /** `a.b=value` overrides, in order. */
  set?: string[];
  /** Overrides output_dir last. */
  outputDir?: string;
}

/** Demo ← config file ← --set flags ← --output-dir, validated before any work. */
export function resolveConfig(sources: ConfigSources = {}): RunConfig {
  let merged: Plain = defaultConfig();
  let baseDir = process.cwd();
  if (sources.config) {
    const file = resolve(sources.config);
    const fromFile = readConfigFile(file);
    // A file that names its own data replaces the demo's synthetic data rather than merging into it.
    if (isPlain(fromFile.data)) merged = { ...merged, data: {} };
    merged = mergeConfig(merged, fromFile);
    baseDir = dirname(file);
  }
  for (const s of sources.set ?? []) merged = mergeConfig(merged, parseOverride(s));
  if (sources.outputDir) merged = { ...merged, output_dir: resolve(sources.outputDir) };
  return validateConfig(merged, baseDir);
}
