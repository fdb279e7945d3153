/**
 * Fuzz targets for the TypeScript loaders, with a seeded mutator (no dependency): the YAML/JSON
 * config loader (readConfigFile + validateConfig), the task file loaders (JSONL and JSON), and the
 * tokenizer files (tokenizer.json, tokenizer_config.json). The property, for any input: a result,
 * or an Error of the loader's own kind whose message names the file (or, for a config, the field)
 * — never another exception type (TypeError, RangeError, a bare SyntaxError), never a hang (each
 * input must finish within `slowMs`).
 *
 * Used by test/hostile-fuzz.test.ts (a few seconds) and scripts/fuzz/ts-fuzz.ts (`npm run fuzz --
 * <seconds>`, which also runs the native libFuzzer targets). Failing inputs are written to
 * build-fuzz/ts/<target>/ by the script.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, readConfigFile, validateConfig } from '../../lib/config/load.js';
import { defaultConfig } from '../../lib/config/defaults.js';
import { Tokenizer, buildT5Tokenizer } from '../../lib/model/tokenizer.js';
import { loadTaskFile } from '../../lib/tasks/loaders.js';
import { TaskDataError } from '../../lib/tasks/records.js';
import { stringify as toYaml } from 'yaml';

export interface FuzzFailure {
  target: string;
  input: Buffer;
  /** The extra file of a two-file target (tokenizer_config.json), when it was mutated too. */
  input2?: Buffer;
  reason: string;
}

export interface FuzzStats {
  target: string;
  runs: number;
  accepted: number;
  refused: number;
  failures: FuzzFailure[];
  slowestMs: number;
}

/** A small seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKENS = [
  'null',
  'true',
  '-1',
  '0',
  '1.5',
  '1e309',
  '-1e309',
  'NaN',
  '9007199254740993',
  '""',
  '[]',
  '{}',
  '[[[[[[[[',
  ']]]]',
  '{"',
  '"}',
  ':',
  ',',
  '\\u0000',
  '"__proto__"',
  '__proto__:',
  'constructor:',
  '&a',
  '*a',
  '!!binary',
  '---',
  '...',
  '? ',
  '- ',
  '\n  ',
  '\t',
  '#',
  '%YAML 1.2',
  '<<: *a',
  '"\\ud800"',
  '\u00e9',
  '\u2581',
  '\ufeff',
  '\u0000',
  '\r\n',
];
const BYTES = [0x00, 0xff, 0xfe, 0xc3, 0xe2, 0x80, 0xed, 0xa0, 0xf4, 0x90, 0x0a, 0x22, 0x7b, 0x5b];

/** One random byte-level or token-level mutation of `data` (with `other` for splices). */
export function mutate(data: Buffer, r: () => number, other?: Buffer): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const at = () => Math.floor(r() * (data.length + 1));
  const out = (() => {
    switch (Math.floor(r() * 9)) {
      case 0: {
        if (!data.length) return Buffer.from(pick(TOKENS));
        const b = Buffer.from(data);
        b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
        return b;
      }
      case 1: {
        const i = at();
        return Buffer.concat([data.subarray(0, i), Buffer.from([pick(BYTES)]), data.subarray(i)]);
      }
      case 2: {
        const i = at();
        const n = Math.floor(r() * 16) + 1;
        return Buffer.concat([data.subarray(0, i), data.subarray(i + n)]);
      }
      case 3: {
        const i = at();
        return Buffer.concat([data.subarray(0, i), Buffer.from(pick(TOKENS)), data.subarray(i)]);
      }
      case 4: {
        const i = at();
        const j = Math.min(data.length, i + Math.floor(r() * 64));
        return Buffer.concat([data.subarray(0, j), data.subarray(i, j), data.subarray(j)]);
      }
      case 5:
        return data.subarray(0, at());
      case 6: {
        if (!other?.length) return data;
        const i = at();
        const j = Math.floor(r() * other.length);
        return Buffer.concat([data.subarray(0, i), other.subarray(j, j + Math.floor(r() * 128))]);
      }
      case 7: {
        // Deep nesting: a stack-depth probe.
        const depth = Math.floor(r() * 5000);
        const i = at();
        return Buffer.concat([data.subarray(0, i), Buffer.from('['.repeat(depth) + ']'.repeat(depth)), data.subarray(i)]);
      }
      default: {
        const i = at();
        return Buffer.concat([data.subarray(0, i), Buffer.from(pick(TOKENS).repeat(Math.floor(r() * 50) + 1)), data.subarray(i)]);
      }
    }
  })();
  // Inputs stay small (the loaders' size limits are tested elsewhere).
  return out.length > 65536 ? out.subarray(0, 65536) : out;
}

/** A structural mutation: one node of a JSON value replaced by a hostile value. */
export function mutateValue(value: unknown, r: () => number): unknown {
  const hostile = [null, [], {}, '', -1, 0, 1.5, 1e308, Number.MAX_SAFE_INTEGER, 'x'.repeat(1000), true, [null], { __proto__: null, a: 1 }, { apiKey: 'k' }];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  if (value === null || typeof value !== 'object' || r() < 0.2) return structuredClone(pick(hostile));
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  if (!keys.length) return copy;
  const k = pick(keys);
  if (r() < 0.15 && !Array.isArray(copy)) {
    delete (copy as Record<string, unknown>)[k];
    return copy;
  }
  (copy as Record<string, unknown>)[k] = mutateValue((copy as Record<string, unknown>)[k], r);
  return copy;
}

interface Target {
  name: string;
  seeds: Buffer[];
  /** Writes the input, runs the loader; resolves 'accepted' | 'refused', or throws a failure reason. */
  run(input: Buffer, dir: string, r: () => number): Promise<'accepted' | 'refused'> | 'accepted' | 'refused';
  /** A structural mutation of a seed, when the target has one. */
  structured?(r: () => number): Buffer;
}

class PropertyViolation extends Error {}

function expectOwnError(err: unknown, kinds: readonly (new (...args: never[]) => Error)[], mustName: string[]): 'refused' {
  if (!(err instanceof Error) || !kinds.some((k) => err instanceof k)) {
    throw new PropertyViolation(
      `threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)} (not ${kinds.map((k) => k.name).join('/')})`,
    );
  }
  if (!mustName.some((s) => err.message.includes(s))) throw new PropertyViolation(`error does not name ${mustName.join(' or ')}: ${err.message}`);
  return 'refused';
}

function configTarget(): Target {
  const base = defaultConfig();
  const json = Buffer.from(JSON.stringify(base, null, 1));
  const yaml = Buffer.from(toYaml(base));
  return {
    name: 'config',
    seeds: [yaml, json, Buffer.from('task: gsm8k\nseed: 1\n'), Buffer.from('a: &a [*a]\n')],
    structured: (r) => (r() < 0.5 ? Buffer.from(toYaml(mutateValue(base, r))) : Buffer.from(JSON.stringify(mutateValue(base, r)))),
    run(input, dir, r) {
      const file = join(dir, r() < 0.5 ? 'config.yaml' : 'config.json');
      writeFileSync(file, input);
      try {
        validateConfig(readConfigFile(file), dir);
        return 'accepted';
      } catch (err) {
        // A ConfigError names the file (parse) or the field (schema).
        return expectOwnError(err, [ConfigError], [file, 'config: ']);
      }
    },
  };
}

function tasksTarget(): Target {
  const rec = (i: number) => ({ input: `Question ${i}: how many?`, answer: String(i), chain: 'Because.', id: `q${i}` });
  const rows = [0, 1, 2].map(rec);
  const gsm = [{ question: 'Tom has 3 apples. How many?', answer: 'He has <<3=3>>3.\n#### 3' }];
  return {
    name: 'tasks',
    seeds: [
      Buffer.from(rows.map((x) => JSON.stringify(x)).join('\n') + '\n'),
      Buffer.from(JSON.stringify(rows)),
      Buffer.from(gsm.map((x) => JSON.stringify(x)).join('\n')),
    ],
    structured: (r) => {
      const v = mutateValue(rows, r);
      return Buffer.from(r() < 0.5 && Array.isArray(v) ? v.map((x) => JSON.stringify(x) ?? 'undefined').join('\n') : (JSON.stringify(v) ?? ''));
    },
    run(input, dir, r) {
      const file = join(dir, r() < 0.6 ? 'data.jsonl' : 'data.json');
      writeFileSync(file, input);
      try {
        loadTaskFile(file);
        return 'accepted';
      } catch (err) {
        return expectOwnError(err, [TaskDataError], [file]);
      }
    },
  };
}

function tokenizerTarget(): Target {
  const tok = buildT5Tokenizer(['the cat sat on the mat', 'a b c d e f'], { vocabSize: 40, minCount: 1 });
  const json = Buffer.from(JSON.stringify(tok.json));
  const config = Buffer.from(JSON.stringify(tok.config));
  return {
    name: 'tokenizer',
    seeds: [json],
    structured: (r) => Buffer.from(JSON.stringify(mutateValue(tok.json, r)) ?? ''),
    async run(input, dir, r) {
      const tokFile = join(dir, 'tokenizer.json');
      const cfgFile = join(dir, 'tokenizer_config.json');
      writeFileSync(tokFile, input);
      const cfg = r() < 0.3 ? mutate(config, r) : config;
      writeFileSync(cfgFile, cfg);
      try {
        const t = await Tokenizer.load(dir);
        // A loaded tokenizer must also work.
        t.decode(t.encode('the cat sat'));
        return 'accepted';
      } catch (err) {
        return expectOwnError(err, [Error], [tokFile, cfgFile]);
      }
    },
  };
}

export const TARGET_NAMES = ['config', 'tasks', 'tokenizer'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

function makeTarget(name: TargetName): Target {
  return name === 'config' ? configTarget() : name === 'tasks' ? tasksTarget() : tokenizerTarget();
}

/**
 * Runs one target for `seconds` (or `maxRuns` inputs) from `seed`. Each input is the mutation of
 * a seed or of an earlier input (1–4 mutations), or a structural mutation.
 */
export async function fuzzTarget(
  name: TargetName,
  options: { seconds: number; seed?: number; maxRuns?: number; slowMs?: number; dir: string },
): Promise<FuzzStats> {
  const target = makeTarget(name);
  const r = rng(options.seed ?? 1);
  const slowMs = options.slowMs ?? 2000;
  const dir = join(options.dir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const stats: FuzzStats = { target: name, runs: 0, accepted: 0, refused: 0, failures: [], slowestMs: 0 };
  const pool: Buffer[] = [...target.seeds];
  const end = performance.now() + options.seconds * 1000;
  while (performance.now() < end && stats.runs < (options.maxRuns ?? Infinity)) {
    let input: Buffer;
    if (target.structured && r() < 0.25) input = target.structured(r);
    else {
      input = pool[Math.floor(r() * pool.length)]!;
      const n = 1 + Math.floor(r() * 4);
      for (let i = 0; i < n; i++) input = mutate(input, r, pool[Math.floor(r() * pool.length)]);
    }
    const t0 = performance.now();
    try {
      const outcome = await target.run(input, dir, r);
      stats[outcome]++;
      if (outcome === 'accepted' && pool.length < 256) pool.push(input);
    } catch (err) {
      stats.failures.push({ target: name, input, reason: err instanceof PropertyViolation ? err.message : `harness: ${String(err)}` });
    }
    const ms = performance.now() - t0;
    stats.slowestMs = Math.max(stats.slowestMs, ms);
    if (ms > slowMs) stats.failures.push({ target: name, input, reason: `took ${ms.toFixed(0)} ms (> ${slowMs} ms)` });
    stats.runs++;
  }
  return stats;
}
