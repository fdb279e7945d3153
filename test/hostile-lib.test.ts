/**
 * Hostile inputs and misuse, library part (issue "Hostile inputs and misuse"): thread counts,
 * undecodable text, empty and duplicate data, tokenizer files, config parse errors, secrets in a
 * config, metrics rows after a resume. Each case is a clear Error naming the file/field/line, or a
 * correct result; the process stays alive.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfigFile, resolveConfig, validateConfig } from '../lib/config/load.js';
import { defaultConfig } from '../lib/config/defaults.js';
import { Tokenizer, buildT5Tokenizer } from '../lib/model/tokenizer.js';
import { setNumThreads } from '../lib/native/index.js';
import { buildSplits, countDuplicates, describeDuplicates } from '../lib/pipeline/stages/data.js';
import { checkThreads, threadsFromEnv } from '../lib/runtime/env.js';
import { loadTaskFile } from '../lib/tasks/loaders.js';
import { TaskDataError } from '../lib/tasks/records.js';
import { train } from '../lib/train/index.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-hostile-lib-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const cores = availableParallelism();

describe('threads', () => {
  it('MENTOR_KD_THREADS above the cores is an Error naming the variable, unless forced', () => {
    expect(() => threadsFromEnv({ MENTOR_KD_THREADS: '100000' })).toThrow(
      /MENTOR_KD_THREADS=100000: 100000 threads is more than this machine's \d+ cores.*MENTOR_KD_THREADS_FORCE=1/,
    );
    expect(threadsFromEnv({ MENTOR_KD_THREADS: '100000', MENTOR_KD_THREADS_FORCE: '1' })).toBe(100000);
    expect(() => threadsFromEnv({ MENTOR_KD_THREADS: 'many' })).toThrow(/MENTOR_KD_THREADS="many": threads must be a positive integer/);
    expect(() => threadsFromEnv({ MENTOR_KD_THREADS: '-2' })).toThrow(/MENTOR_KD_THREADS="-2"/);
    expect(() => threadsFromEnv({ MENTOR_KD_THREADS: '1.5' })).toThrow(/MENTOR_KD_THREADS="1.5"/);
    expect(threadsFromEnv({ MENTOR_KD_THREADS: String(cores) })).toBe(cores);
    expect(threadsFromEnv({})).toBeUndefined();
  });

  it('setNumThreads refuses more threads than cores (and non-integers) before libtorch sees them', () => {
    expect(() => setNumThreads(100000)).toThrow(/setNumThreads: 100000 threads is more than this machine's/);
    expect(() => setNumThreads(0)).toThrow(/setNumThreads: threads must be a positive integer, got 0/);
    expect(() => setNumThreads(Number.NaN)).toThrow(/positive integer/);
    expect(() => checkThreads(cores + 1, 'x', { force: true })).not.toThrow();
    setNumThreads(1);
  });

  it("the pipeline's threads setting is checked with the config", () => {
    const c = defaultConfig();
    c.threads = 100000;
    expect(() => validateConfig(c)).toThrow(/config: threads: 100000 threads is more than this machine's \d+ cores/);
  });

  it('a process started with MENTOR_KD_THREADS=100000 exits with the Error instead of starting 100000 threads', () => {
    let out = '';
    try {
      execFileSync(process.execPath, ['--import', 'tsx', '-e', "import('./lib/native/index.ts').then((m) => m.native())"], {
        env: { ...process.env, MENTOR_KD_THREADS: '100000', MENTOR_KD_THREADS_FORCE: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      });
    } catch (e) {
      out = String((e as { stderr?: Buffer }).stderr ?? '');
    }
    expect(out).toMatch(/MENTOR_KD_THREADS=100000: 100000 threads is more than/);
  });
});

describe('task data', () => {
  it('non-UTF-8 bytes in a question are an Error naming the file and line (not U+FFFD)', () => {
    const file = join(work, 'latin1.jsonl');
    const good = Buffer.from('{"input": "How many apples?", "answer": "3"}\n');
    const bad = Buffer.concat([Buffer.from('{"input": "Caf'), Buffer.from([0xe9]), Buffer.from(' au lait?", "answer": "2"}\n')]);
    writeFileSync(file, Buffer.concat([good, good, bad]));
    let err: unknown;
    try {
      loadTaskFile(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TaskDataError);
    expect((err as Error).message).toBe(`${file}:3: not valid UTF-8 text: byte 0xe9 at byte 15 of the line (re-encode the file as UTF-8)`);
    // Same in a JSON array file; a truncated multi-byte character at the end too.
    const arr = join(work, 'bad.json');
    writeFileSync(arr, Buffer.concat([Buffer.from('[\n{"input": "x", "answer": "1"}\n]\n'), Buffer.from([0xe2, 0x82])]));
    expect(() => loadTaskFile(arr)).toThrow(new RegExp(`${arr}:4: not valid UTF-8 text: byte 0xe2`));
  });

  it('valid UTF-8 (multi-byte, BOM) still loads', () => {
    const file = join(work, 'utf8.jsonl');
    writeFileSync(file, '\uFEFF{"input": "Café — 3 €?", "answer": "3"}\n');
    expect(loadTaskFile(file).records[0]!.question).toBe('Café — 3 €?');
  });

  it('a FIFO as a data file is refused, not read forever', () => {
    const fifo = join(work, 'fifo.jsonl');
    execFileSync('mkfifo', [fifo]);
    expect(() => loadTaskFile(fifo)).toThrow(new RegExp(`${fifo}: cannot read: not a regular file`));
  });

  it('an empty train file is an Error naming the setting and the file; duplicates are counted and warned about', () => {
    const empty = join(work, 'empty.jsonl');
    writeFileSync(empty, '\n');
    const test = join(work, 'test.jsonl');
    writeFileSync(test, ['{"input": "q1", "answer": "1"}', '{"input": "q2", "answer": "2"}'].join('\n'));
    const input = { task: 'gsm8k', seed: 0, data: { train: empty, test } } as Parameters<typeof buildSplits>[0];
    expect(() => buildSplits(input)).toThrow(`data.train: ${empty} holds no records (an empty train split would train on nothing)`);
    const emptyArray = join(work, 'empty.json');
    writeFileSync(emptyArray, '[]');
    expect(() => buildSplits({ ...input, data: { train: test, test: emptyArray } })).toThrow(/data\.test: .*empty\.json holds no records/);

    const dup = join(work, 'dup.jsonl');
    const rows = [
      '{"input": "q1", "answer": "1"}',
      '{"input": "q1", "answer": "1"}',
      '{"input": "q3", "answer": "3"}',
      '{"input": "q3 ", "answer": "3"}',
      '{"input": "q4", "answer": "4"}',
    ];
    writeFileSync(dup, rows.join('\n'));
    const devFile = join(work, 'dev.jsonl');
    writeFileSync(devFile, '{"input": "q4", "answer": "4"}\n');
    const splits = buildSplits({ ...input, data: { train: dup, dev: devFile, test } });
    const d = countDuplicates(splits);
    expect(d).toEqual({ train: 2, dev: 0, test: 0, testInTrain: 1, devInTrain: 1 });
    expect(describeDuplicates(d)).toBe(
      'data: warning: 2 duplicate records in train, 1 dev questions also in train, 1 test questions also in train or dev (the test accuracy is inflated)',
    );
  });
});

describe('tokenizer files', () => {
  const dir = join(work, 'tok');
  mkdirSync(dir, { recursive: true });

  it('a tokenizer.json holding null, or a malformed tokenizer_config.json, is an Error naming the file', async () => {
    await buildT5Tokenizer(['a b c a b c'], { vocabSize: 20, minCount: 1 }).save(dir);
    await expect(Tokenizer.load(dir)).resolves.toBeInstanceOf(Tokenizer);
    const cfg = join(dir, 'tokenizer_config.json');
    const tok = join(dir, 'tokenizer.json');
    const good = readFileSync(tok);
    writeFileSync(cfg, '{"eos_token": "</s>", ');
    await expect(Tokenizer.load(dir)).rejects.toThrow(new RegExp(`^${cfg}: not valid JSON`));
    writeFileSync(cfg, 'null');
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${cfg}: expected a JSON object, got null`);
    writeFileSync(cfg, '{"pad_token": null, "eos_token": 7}');
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${cfg}: field "eos_token" must be a token string, got 7`);
    writeFileSync(cfg, '{"pad_token": {"content": "<pad>"}, "eos_token": "</nope>"}');
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${tok}: cannot build the tokenizer (no eos token ("</nope>") in the vocabulary)`);
    writeFileSync(cfg, '{}');
    writeFileSync(tok, 'null');
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${tok}: expected a JSON object, got null`);
    writeFileSync(tok, Buffer.from([0x7b, 0xff, 0x7d]));
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${tok}: not valid UTF-8 text`);
    writeFileSync(tok, '{"model": null}');
    await expect(Tokenizer.load(dir)).rejects.toThrow(new RegExp(`^${tok}: cannot build the tokenizer`));
    // Found by the fuzzer: files that build but fail on first use are load errors naming the file.
    const parsed = JSON.parse(good.toString()) as Record<string, Record<string, unknown>>;
    const { single: _single, ...noSingle } = parsed.post_processor!;
    writeFileSync(tok, JSON.stringify({ ...parsed, post_processor: noSingle }));
    await expect(Tokenizer.load(dir)).rejects.toThrow(new RegExp(`^${tok}: cannot build the tokenizer`));
    const meta = structuredClone(parsed) as { pre_tokenizer: { pretokenizers: { replacement?: string }[] } };
    meta.pre_tokenizer.pretokenizers[1]!.replacement = '['.repeat(5000);
    writeFileSync(tok, JSON.stringify(meta));
    const t0 = performance.now();
    await expect(Tokenizer.load(dir)).rejects.toThrow(
      `${tok}: field "pre_tokenizer.pretokenizers[1].replacement" must be one character (HF's Metaspace takes a char), got 5000 characters`,
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    writeFileSync(tok, good);
    await expect(Tokenizer.load(dir)).resolves.toBeInstanceOf(Tokenizer);
    // @ts-expect-error: the hostile call
    await expect(Tokenizer.load(null)).rejects.toThrow('tokenizer: the model directory must be a non-empty path, got null');
  });
});

describe('config files', () => {
  it('YAML and JSON parse errors name the file (and YAML its line)', () => {
    const y = join(work, 'bad.yaml');
    writeFileSync(y, 'task: gsm8k\nteacher: [unclosed\n');
    expect(() => readConfigFile(y)).toThrow(new RegExp(`^config: file: ${y} is not valid YAML: .*line`, 's'));
    const j = join(work, 'bad.json');
    writeFileSync(j, '{"task": ');
    expect(() => readConfigFile(j)).toThrow(new RegExp(`^config: file: ${j} is not valid JSON: `));
    const dupKey = join(work, 'dup.yaml');
    writeFileSync(dupKey, 'seed: 1\nseed: 2\n');
    expect(() => readConfigFile(dupKey)).toThrow(new RegExp(`${dupKey} is not valid YAML: Map keys must be unique`));
    const latin1 = join(work, 'latin1.yaml');
    writeFileSync(latin1, Buffer.from([0x74, 0x61, 0x73, 0x6b, 0x3a, 0x20, 0xe9, 0x0a]));
    expect(() => readConfigFile(latin1)).toThrow(`config: file: ${latin1} is not valid YAML: not UTF-8 text`);
    expect(() => readConfigFile(work)).toThrow(`config: file: ${work}: cannot read (not a regular file)`);
    const list = join(work, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    expect(() => readConfigFile(list)).toThrow(`${list} must hold a mapping of settings`);
  });

  it('a YAML alias cycle or a very deep nesting is a ConfigError naming the file, not a hang or a stack overflow', () => {
    const cyc = join(work, 'cycle.yaml');
    writeFileSync(cyc, 'teacher: &a [*a]\n');
    expect(() => readConfigFile(cyc)).toThrow(`config: teacher.0: ${cyc}: refers to itself (a YAML alias inside its own anchor)`);
    const deep = join(work, 'deep.json');
    writeFileSync(deep, '{"mentor": ' + '['.repeat(5000) + ']'.repeat(5000) + '}');
    expect(() => readConfigFile(deep)).toThrow(`config: file: ${deep} is not valid JSON: nested more than 64 levels deep`);
    const deepYaml = join(work, 'deep.yaml');
    writeFileSync(deepYaml, 'a: ' + '['.repeat(3000) + '"x", {' + ']'.repeat(10));
    const t0 = performance.now();
    expect(() => readConfigFile(deepYaml)).toThrow(`config: file: ${deepYaml} is not valid YAML: nested more than 64 levels deep`);
    expect(performance.now() - t0).toBeLessThan(500);
    const deepTree = join(work, 'deep-tree.yaml');
    writeFileSync(deepTree, Array.from({ length: 70 }, (_, i) => ' '.repeat(i) + 'k:').join('\n') + ' 1\n');
    expect(() => readConfigFile(deepTree)).toThrow(new RegExp(`${deepTree}: nested more than 64 levels deep`));
    // Shared (aliased) subtrees that are not cycles are fine.
    const shared = join(work, 'shared.yaml');
    writeFileSync(shared, 'a: &t {x: 1}\nb: *t\n');
    expect(readConfigFile(shared)).toEqual({ a: { x: 1 }, b: { x: 1 } });
  });

  it('a key in a config is refused, naming the field and teacher.apiKeyEnv, without repeating the value', () => {
    const file = join(work, 'key.yaml');
    writeFileSync(file, 'teacher:\n  apiKey: sk-planted-123\n');
    let err: Error | undefined;
    try {
      resolveConfig({ config: file });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe('teacher.apiKey');
    expect(err!.message).toMatch(new RegExp(`^config: teacher.apiKey: ${file} holds a secret; .*teacher\\.apiKeyEnv`));
    expect(err!.message).not.toContain('sk-planted-123');
    for (const key of ['api_key', 'API-KEY', 'token', 'password', 'secret', 'client_secret', 'access_token']) {
      expect(() => resolveConfig({ set: [`teacher.${key}=sk-planted-123`] })).toThrow(new RegExp(`config: teacher.${key}: --set holds a secret`));
    }
    expect(() => validateConfig({ ...defaultConfig(), teacher: { ...defaultConfig().teacher, apiKey: 'x' } })).toThrow(
      /config: teacher.apiKey: the configuration holds a secret/,
    );
    // Names that merely contain "token" are not secrets.
    const c = defaultConfig();
    (c.mentor.init as { config: Record<string, unknown> }).config.eos_token_id = 1;
    expect(() => validateConfig(c)).not.toThrow();
  });

  it("the pipeline's teacher settings have timeoutMs, maxRetryAfterMs, deadlineMs and maxResponseBytes", () => {
    const c = validateConfig(defaultConfig());
    expect(c.teacher).toMatchObject({ timeoutMs: 60_000, maxRetryAfterMs: 60_000, maxResponseBytes: 32 * 1024 * 1024 });
    expect(c.teacher.deadlineMs).toBeUndefined();
    expect(resolveConfig({ preset: 'demo', set: ['teacher.deadlineMs=5000'] }).teacher.deadlineMs).toBe(5000);
    expect(() => resolveConfig({ preset: 'demo', set: ['teacher.timeoutMs=0'] })).toThrow(/config: teacher.timeoutMs: must be an integer >= 1, got 0/);
    expect(() => resolveConfig({ preset: 'demo', set: ['teacher.maxRetryAfterMs=-1'] })).toThrow(/config: teacher.maxRetryAfterMs: must be an integer >= 0/);
  });
});

describe('metrics after a resume', () => {
  it('metrics.jsonl holds each step once after resuming from an earlier checkpoint', async () => {
    const dir = join(work, 'metrics');
    const tokenizer = toyTokenizer();
    const base = { tokenizer, train: reversalTask(24, 3), per_device_train_batch_size: 4, learning_rate: 1e-3, progress: false, logger: () => {} } as const;
    await train({ ...base, model: await tinyModel({ vocabSize: tokenizer.vocabSize, seed: 2 }), output_dir: dir, max_steps: 6, save_steps: 4 });
    // As if killed after step 6's row but before its checkpoint: the latest complete one is 4.
    rmSync(join(dir, 'checkpoint-6'), { recursive: true });
    const r = await train({
      ...base,
      model: await tinyModel({ vocabSize: tokenizer.vocabSize, seed: 2 }),
      output_dir: dir,
      max_steps: 8,
      save_steps: 4,
      resume_from_checkpoint: true,
    });
    expect(r.steps.map((s) => s.step)).toEqual([5, 6, 7, 8]);
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step?: number; event?: string; metrics_rows_dropped?: number });
    const stepRows = rows.filter((x) => x.event === undefined && typeof x.step === 'number').map((x) => x.step);
    expect(stepRows).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rows.filter((x) => x.event === 'checkpoint').map((x) => x.step)).toEqual([4, 8]);
    // Steps 5 and 6 and the checkpoint-6 event of the first run were dropped, and that is said.
    expect(rows.find((x) => x.event === 'resume')).toMatchObject({ step: 4, metrics_rows_dropped: 3 });
  });
});

describe('the process stays alive', () => {
  it('a hostile loader input in a child process gives an Error, exit code 1, no signal', async () => {
    const file = join(work, 'child.jsonl');
    writeFileSync(file, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d, 0x0a]));
    const code = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '-e',
          `import('./lib/tasks/loaders.ts').then((m) => { try { m.loadTaskFile(${JSON.stringify(file)}); } catch (e) { console.error(e.message); process.exit(1); } })`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (c, s) => resolve({ code: c, signal: s, err }));
    });
    expect(code).toMatchObject({ code: 1, signal: null });
    expect(code.err).toContain(`${file}:1: not valid UTF-8 text: byte 0xc3`);
    expect(existsSync(file)).toBe(true);
  });
});
