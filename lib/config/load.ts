/**
 * The one path a run configuration takes: the base defaults or a named preset (lib/config/defaults.ts)
 * ← a YAML or JSON file ← `--set a.b=value` flags ← `--output-dir`, then the schema
 * (lib/config/schema.ts), then paths checked — all before any work starts, so a bad field fails in a
 * second, not after an hour of training. Every error is a ConfigError naming the field.
 *
 * Paths: a path written in a config file is taken from that file's folder; a path given on the
 * command line (`--output-dir`, `--set data.train=…`) and a preset's from the working directory. A
 * `model_name_or_path` (or `tokenizer.dir`) that is no local directory but looks like `org/name` is a
 * Hugging Face Hub id, downloaded when the run starts (lib/model/hub.ts), as transformers does.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { isHubId } from '../model/hub.js';
import { runtimeInfo } from '../native/index.js';
import { checkThreads, threadsForcedFromEnv } from '../runtime/env.js';
import { baseConfig, PRESETS, type PresetName } from './defaults.js';
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

/** Deepest nesting a config may have (the schema's is 5; a free T5 config adds a few). */
const MAX_CONFIG_DEPTH = 64;

/** Largest config file read (a config is a few KB; this only stops a wrong path from filling memory). */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * A YAML or JSON config file as a mapping. Every failure is a ConfigError naming the file: missing,
 * not a regular file (a FIFO would block the read forever), too large, not UTF-8, not parsable
 * (with YAML's line and column), or not a mapping.
 */
export function readConfigFile(path: string): Plain {
  if (!existsSync(path)) throw new ConfigError('file', `${path} not found`);
  const kind = path.endsWith('.json') ? 'JSON' : 'YAML';
  let bytes: Buffer;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_CONFIG_BYTES) throw new Error(`${st.size} bytes, more than the ${MAX_CONFIG_BYTES} a config may have`);
    bytes = readFileSync(path);
  } catch (e) {
    throw new ConfigError('file', `${path}: cannot read (${(e as Error).message})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError('file', `${path} is not valid ${kind}: not UTF-8 text`);
  }
  // The YAML parser takes seconds on thousands of nested flow brackets: bound the nesting first
  // (brackets inside strings count too, hence the margin over MAX_CONFIG_DEPTH).
  let depth = 0;
  let maxDepth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x5b || ch === 0x7b) maxDepth = Math.max(maxDepth, ++depth);
    else if ((ch === 0x5d || ch === 0x7d) && depth > 0) depth--;
  }
  if (maxDepth > 2 * MAX_CONFIG_DEPTH) throw new ConfigError('file', `${path} is not valid ${kind}: nested more than ${MAX_CONFIG_DEPTH} levels deep`);
  let value: unknown;
  try {
    value = kind === 'JSON' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError('file', `${path} is not valid ${kind}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isPlain(value)) throw new ConfigError('file', `${path} must hold a mapping of settings`);
  checkConfigShape(value, path);
  return value;
}

/**
 * A config value must be a tree: YAML aliases can make a cycle (`a: &a [*a]`), which would loop
 * or overflow the stack in every later walk, and a deep nesting overflows it too. Iterative, so
 * this check itself is safe at any depth. Shared (aliased) subtrees that are not cycles are fine.
 */
export function checkConfigShape(value: unknown, where: string): void {
  const onPath = new Set<object>();
  const stack: { v: unknown; path: string[]; exit?: boolean }[] = [{ v: value, path: [] }];
  while (stack.length) {
    const item = stack.pop()!;
    const v = item.v;
    if (v === null || typeof v !== 'object') continue;
    if (item.exit) {
      onPath.delete(v);
      continue;
    }
    const field = item.path.join('.') || 'config';
    if (onPath.has(v)) throw new ConfigError(field, `${where}: refers to itself (a YAML alias inside its own anchor)`);
    if (item.path.length > MAX_CONFIG_DEPTH) throw new ConfigError(field, `${where}: nested more than ${MAX_CONFIG_DEPTH} levels deep`);
    onPath.add(v);
    stack.push({ v, path: item.path, exit: true });
    const entries: [string, unknown][] = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    for (const [k, x] of entries) if (x !== null && typeof x === 'object') stack.push({ v: x, path: [...item.path, k] });
  }
}

/** Key names that hold a secret (compared lowercased, without `_` and `-`). */
const SECRET_KEYS = new Set([
  'apikey',
  'token',
  'accesstoken',
  'authtoken',
  'bearertoken',
  'password',
  'passwd',
  'secret',
  'secretkey',
  'clientsecret',
  'authorization',
]);

/** The dot path of the first key-like field in a raw config, or undefined (iterative: any depth). */
export function findSecretField(value: unknown): string | undefined {
  const stack: [unknown, string[]][] = [[value, []]];
  while (stack.length) {
    const [v, path] = stack.pop()!;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], [...path, String(i)]]);
    } else if (isPlain(v)) {
      const entries = Object.entries(v);
      for (const [k] of entries) if (SECRET_KEYS.has(k.toLowerCase().replace(/[_-]/g, ''))) return [...path, k].join('.');
      for (let i = entries.length - 1; i >= 0; i--) stack.push([entries[i]![1], [...path, entries[i]![0]]]);
    }
  }
  return undefined;
}

/**
 * A secret in a config (teacher.apiKey, api_key, token, password, secret, …) is refused: config
 * files are shared and copied into the run directory (config.json) and its report. The key is read
 * from the environment only, through `teacher.apiKeyEnv` (the variable's name). The message never
 * repeats the value.
 */
export function refuseSecrets(raw: unknown, where: string): void {
  const field = findSecretField(raw);
  if (field === undefined) return;
  throw new ConfigError(
    field,
    `${where} holds a secret; a key is never taken from a config (it would be copied into the run's config.json and report). ` +
      `Put it in an environment variable and name that variable in teacher.apiKeyEnv (default OPENAI_API_KEY)`,
  );
}

/** The thread count a config asks for, checked against the cores (MENTOR_KD_THREADS_FORCE=1 allows more). */
function checkConfigThreads(threads: number): void {
  if (threads <= 0) return;
  try {
    checkThreads(threads, 'threads', { force: threadsForcedFromEnv() });
  } catch (e) {
    throw new ConfigError('threads', (e as Error).message.replace(/^threads: /, ''));
  }
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
  const def = (schema as z.ZodType)._zod.def as {
    type: string;
    innerType?: z.ZodType;
    options?: z.ZodType[];
    element?: z.ZodType;
    in?: z.ZodType;
    shape?: Record<string, z.ZodType>;
  };
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
const fieldOf = (path: readonly PropertyKey[]) =>
  path
    .filter((p) => typeof p !== 'number')
    .map(String)
    .join('.') || 'config';

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
  iss.code === 'invalid_type'
    ? `must be ${iss.expected === 'object' || iss.expected === 'record' ? 'a mapping' : `a ${iss.expected}`}, got ${JSON.stringify(iss.input)}`
    : undefined;

/**
 * A model (or tokenizer) location as written: a local directory (resolved from `baseDir`), else a
 * Hub id kept as it is when it looks like one (`google/flan-t5-small`), else undefined.
 */
export function resolveModelLocation(value: string, baseDir: string): { dir: string } | { hubId: string } | undefined {
  const local = resolve(baseDir, value);
  if (existsSync(local)) return { dir: local };
  if (!isAbsolute(value) && !value.startsWith('.') && isHubId(value)) return { hubId: value };
  return undefined;
}

function resolveInit(field: string, init: ModelInit, baseDir: string): ModelInit {
  if (!('model_name_or_path' in init)) return init;
  const where = resolveModelLocation(init.model_name_or_path, baseDir);
  if (!where) throw new ConfigError(`${field}.model_name_or_path`, `model directory ${resolve(baseDir, init.model_name_or_path)} does not exist`);
  if ('hubId' in where) return { model_name_or_path: where.hubId };
  const dir = where.dir;
  if (!existsSync(resolve(dir, 'config.json'))) throw new ConfigError(`${field}.model_name_or_path`, `${dir} has no config.json (not a HF model directory)`);
  return { model_name_or_path: dir };
}

/**
 * `cuda`/`cuda:N` needs a CUDA device this process can see (runtime.info()); the native addon is
 * loaded only when a config asks for CUDA.
 */
export function checkDevices(c: RunConfig): void {
  for (const [field, device] of [
    ['device', c.device],
    ['mentor.device', c.mentor.device],
    ['student.device', c.student.device],
  ] as const) {
    if (device === undefined || device === 'cpu') continue;
    const info = runtimeInfo();
    if (!info.cudaAvailable) {
      throw new ConfigError(
        field,
        `${device}: no CUDA device is visible (${info.cudaCompiled ? 'this build has CUDA, but the driver reports no GPU' : `libtorch ${info.torchVersion} here is a CPU build`}); use cpu, or run on a machine with a GPU`,
      );
    }
  }
}

/**
 * Validates a merged config (demo + file + flags) against the schema and resolves its paths:
 * relative paths are taken from `baseDir` (the config file's folder, or the working directory), and
 * a CUDA device must be visible (unless `checkDevices: false`). Returns a new object; throws a
 * ConfigError naming the field.
 */
export function validateConfig(raw: unknown, baseDir = process.cwd(), options: { checkDevices?: boolean } = {}): RunConfig {
  checkConfigShape(raw, 'the configuration');
  refuseSecrets(raw, 'the configuration');
  const parsed = runConfigSchema.safeParse(raw, { error: parseError });
  if (!parsed.success) throw configErrorOf(parsed.error.issues);
  const c = parsed.data;
  checkConfigThreads(c.threads);
  // `report` reads a run made elsewhere: it loads no model, so a CUDA run is fine on a CPU machine.
  if (options.checkDevices !== false) checkDevices(c);
  // Each model records where it runs (the training stages' keys include it).
  c.mentor.device ??= c.device;
  c.student.device ??= c.device;
  c.output_dir = resolve(baseDir, c.output_dir);
  for (const k of ['train', 'dev', 'test'] as const) {
    const f = c.data[k];
    if (f === undefined) continue;
    const p = resolve(baseDir, f);
    if (!existsSync(p)) throw new ConfigError(`data.${k}`, `file ${p} does not exist`);
    c.data[k] = p;
  }
  if (c.tokenizer.dir !== undefined) {
    const where = resolveModelLocation(c.tokenizer.dir, baseDir);
    if (where && 'hubId' in where) c.tokenizer.dir = where.hubId;
    else {
      c.tokenizer.dir = resolve(baseDir, c.tokenizer.dir);
      if (!existsSync(resolve(c.tokenizer.dir, 'tokenizer.json'))) throw new ConfigError('tokenizer.dir', `${c.tokenizer.dir} has no tokenizer.json`);
    }
  }
  c.mentor.init = resolveInit('mentor.init', c.mentor.init, baseDir);
  c.student.init = resolveInit('student.init', c.student.init, baseDir);
  return c;
}

export interface ConfigSources {
  /** A named preset (`demo`) the file and flags are laid over; the base defaults otherwise. */
  preset?: string;
  /** A YAML or JSON file laid over the preset or the base defaults. */
  config?: string;
  /** `a.b=value` overrides, in order. */
  set?: string[];
  /** Overrides output_dir last. */
  outputDir?: string;
  /** false: do not require a visible CUDA device for `cuda` (`--dry-run` reports it as a finding instead). */
  checkDevices?: boolean;
}

/** The settings whose values are paths (model locations may be Hub ids instead: resolveModelLocation). */
const PATH_FIELDS: readonly (readonly string[])[] = [['output_dir'], ['data', 'train'], ['data', 'dev'], ['data', 'test']];
const MODEL_FIELDS: readonly (readonly string[])[] = [
  ['tokenizer', 'dir'],
  ['mentor', 'init', 'model_name_or_path'],
  ['student', 'init', 'model_name_or_path'],
];

/**
 * A copy of `raw` (one source: a file, one --set flag) with its relative paths made absolute from
 * `baseDir`, so that every source's paths keep their own base once merged. Hub ids stay as written.
 */
export function resolveSourcePaths(raw: Plain, baseDir: string): Plain {
  const out = structuredClone(raw);
  const visit = (path: readonly string[], model: boolean) => {
    let parent: unknown = out;
    for (const k of path.slice(0, -1)) parent = isPlain(parent) ? parent[k] : undefined;
    const key = path.at(-1)!;
    if (!isPlain(parent) || typeof parent[key] !== 'string' || parent[key] === '') return;
    const value = parent[key];
    if (model) {
      const where = resolveModelLocation(value, baseDir);
      parent[key] = where && 'hubId' in where ? where.hubId : resolve(baseDir, value);
    } else parent[key] = resolve(baseDir, value);
  };
  for (const p of PATH_FIELDS) visit(p, false);
  for (const p of MODEL_FIELDS) visit(p, true);
  return out;
}

export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** The preset's configuration, or a ConfigError naming the known ones. */
export function presetConfig(name: string): Plain {
  if (!Object.hasOwn(PRESETS, name)) throw new ConfigError('--preset', `unknown preset ${JSON.stringify(name)} (known: ${PRESET_NAMES.join(', ')})`);
  return PRESETS[name as PresetName]() as Plain;
}

/**
 * Base defaults or a preset ← config file ← --set flags ← --output-dir, validated before any work.
 * Paths in the file are taken from its folder; the preset's and the flags' from the working directory.
 */
export function resolveConfig(sources: ConfigSources = {}): RunConfig {
  const cwd = process.cwd();
  let merged: Plain = sources.preset !== undefined ? resolveSourcePaths(presetConfig(sources.preset), cwd) : baseConfig();
  if (sources.config) {
    const file = resolve(sources.config);
    const fromFile = readConfigFile(file);
    refuseSecrets(fromFile, file);
    // A file that names its own data replaces the preset's synthetic data rather than merging into it.
    if (isPlain(fromFile.data) && isPlain(merged.data)) merged = { ...merged, data: {} };
    merged = mergeConfig(merged, resolveSourcePaths(fromFile, dirname(file)));
  }
  for (const s of sources.set ?? []) {
    const over = parseOverride(s);
    refuseSecrets(over, '--set');
    merged = mergeConfig(merged, resolveSourcePaths(over, cwd));
  }
  if (sources.outputDir) merged = { ...merged, output_dir: resolve(cwd, sources.outputDir) };
  return validateConfig(merged, cwd, { checkDevices: sources.checkDevices !== false });
}
