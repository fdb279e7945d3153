/**
 * The CLI around a run: presets (the demo is one, `run` without a config refuses), --print-config,
 * --dry-run, --version, where paths resolve from, the device setting, data.fields, Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { defaultConfig } from '../lib/config/defaults.js';
import { dryRun, formatFindings } from '../lib/config/dry-run.js';
import { ConfigError, resolveConfig, validateConfig } from '../lib/config/load.js';
import { T5Model } from '../lib/model/t5-model.js';
import { runtimeInfo } from '../lib/native/index.js';
import { buildSplits } from '../lib/pipeline/stages/data.js';
import { initModel, modelPlacement } from '../lib/pipeline/stages/shared.js';
import type { ProcessGroup } from '../lib/parallel/process-group.js';
import { buildT5Tokenizer } from '../lib/model/tokenizer.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-cli-run-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const CLI = join(__dirname, '..', 'lib', 'cli.ts');
const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };

function cli(args: string[], opts: { onOutput?: (out: string, kill: (s: NodeJS.Signals) => void) => void } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: join(__dirname, '..'), // where `--import tsx` resolves
      env: { ...process.env, MENTOR_KD_CLI_MAIN: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const seen = () => opts.onOutput?.(stdout + stderr, (s) => child.kill(s));
    child.stdout.on('data', (d) => ((stdout += d), seen()));
    child.stderr.on('data', (d) => ((stderr += d), seen()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

/** A small HF-style JSONL data set with its own field names. */
function writeJsonl(file: string, rows: object[]): string {
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

describe('presets and config sources', () => {
  it('the demo is a preset; the base alone is no configuration; an unknown preset names the known ones', () => {
    const demo = resolveConfig({ preset: 'demo', outputDir: join(root, 'demo') });
    expect(demo.task).toBe('coin_flip');
    expect(demo.mentor.train.num_train_epochs).toBe(30);
    expect(() => resolveConfig({})).toThrow(ConfigError);
    expect(() => resolveConfig({ preset: 'demoo' })).toThrow(/config: --preset: unknown preset "demoo" \(known: demo, demo-causal, demo-sweep\)/);
  });

  it('a config file is laid over the base defaults, not the demo: what it leaves out takes the defaults', () => {
    const dir = join(root, 'own');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'run.yaml');
    writeFileSync(
      file,
      [
        'output_dir: out',
        'task: coin_flip',
        'data: { synthetic: { train: 10, dev: 2, test: 4, size: 2 } }',
        'teacher: { model: m, embedded: { errorRate: 0, latencyMs: 0 } }',
        'mentor: { init: { config: { d_model: 8 } }, train: { num_train_epochs: 1 } }',
        'student: { init: { config: { d_model: 8 } }, train: { max_steps: 3 } }',
      ].join('\n'),
    );
    const c = resolveConfig({ config: file });
    expect(c.mentor.train.weight_decay).toBe(0); // the demo's 0.01 is not inherited
    expect(c.mentor.train.learning_rate).toBe(3e-4);
    expect(c.mentor.train.save_total_limit).toBe(3);
    expect(c.device).toBe('cpu');
    expect(c.report_to).toEqual([]);
    // No teacher.url and no built-in teacher: refused, not silently simulated.
    writeFileSync(join(dir, 'noteacher.yaml'), readFileSync(file, 'utf8').replace(/teacher: .*/, 'teacher: { model: gpt-4o-mini }'));
    expect(() => resolveConfig({ config: join(dir, 'noteacher.yaml') })).toThrow(/config: teacher\.url: no teacher: give url .* or embedded/);
  });

  it('paths in a config file resolve from its folder; --output-dir and --set paths from the working directory', () => {
    const dir = join(root, 'paths', 'cfg');
    mkdirSync(dir, { recursive: true });
    const rows = [
      { input: 'A coin is heads up. Ann flips it. Is it still heads up?', answer: 'no' },
      { input: 'A coin is heads up. Bo does not flip it. Is it still heads up?', answer: 'yes' },
    ];
    writeFileSync(join(dir, 'train.json'), JSON.stringify(rows));
    const cwdData = join(root, 'paths', 'test.json');
    writeFileSync(cwdData, JSON.stringify(rows));
    const file = join(dir, 'run.yaml');
    writeFileSync(file, `output_dir: runs/x\ndata: { train: train.json, test: train.json }\n`);
    const cwd = process.cwd();
    process.chdir(join(root, 'paths'));
    try {
      const c = resolveConfig({ preset: 'demo', config: file, set: ['data.test=test.json'] });
      expect(c.output_dir).toBe(join(dir, 'runs', 'x'));
      expect(c.data.train).toBe(join(dir, 'train.json'));
      expect(c.data.test).toBe(cwdData);
      expect(resolveConfig({ preset: 'demo', config: file, outputDir: 'elsewhere' }).output_dir).toBe(join(root, 'paths', 'elsewhere'));
      expect(resolveConfig({ preset: 'demo', set: ['output_dir=o2'] }).output_dir).toBe(join(root, 'paths', 'o2'));
      // A model location that is no local directory but looks like org/name is a Hub id, kept as written.
      expect(resolveConfig({ preset: 'demo', set: ['mentor.init={"model_name_or_path":"google/flan-t5-small"}'] }).mentor.init).toEqual({
        model_name_or_path: 'google/flan-t5-small',
      });
    } finally {
      process.chdir(cwd);
    }
  });
});

describe('device', () => {
  it('is validated, recorded per model (stage keys include it) and passed to every model load', async () => {
    const c = resolveConfig({ preset: 'demo', outputDir: join(root, 'dev') });
    expect([c.device, c.mentor.device, c.student.device]).toEqual(['cpu', 'cpu', 'cpu']);
    expect(() => resolveConfig({ preset: 'demo', set: ['device=gpu'] })).toThrow(/config: device: must be cpu, cuda or cuda:N, got "gpu"/);
    if (!runtimeInfo().cudaAvailable) {
      expect(() => resolveConfig({ preset: 'demo', set: ['device=cuda'] })).toThrow(/config: device: cuda: no CUDA device is visible/);
      expect(() => resolveConfig({ preset: 'demo', set: ['student.device=cuda:1'] })).toThrow(/config: student\.device: cuda:1: no CUDA device is visible/);
    }
    // Placement: the model's own device, a bare cuda taking the rank's local GPU under a process group.
    const cuda = { ...c, device: 'cuda', mentor: { ...c.mentor, device: undefined }, student: { ...c.student, device: 'cuda:3' } };
    expect(modelPlacement({ config: cuda, group: undefined }, 'mentor')).toEqual({ device: 'cuda' });
    expect(modelPlacement({ config: cuda, group: { localRank: 1 } as ProcessGroup }, 'mentor')).toEqual({ device: 'cuda:1' });
    expect(modelPlacement({ config: cuda, group: { localRank: 1 } as ProcessGroup }, 'student')).toEqual({ device: 'cuda:3' });
    // initModel hands the placement to the native load.
    const spy = vi.spyOn(T5Model, 'fromConfig');
    const tok = buildT5Tokenizer(['a b c d e f'], { vocabSize: 40 });
    const m = await initModel(
      { config: { d_model: 8, d_kv: 4, d_ff: 16, num_layers: 1, num_heads: 2 } },
      tok,
      1,
      modelPlacement({ config: c, group: undefined }, 'student'),
    );
    expect(spy.mock.calls[0]![1]).toEqual({ seed: 1, device: 'cpu' });
    expect(m.info().device).toBe('cpu');
    m.dispose();
    spy.mockRestore();
  });
});

describe('data.fields', () => {
  it('maps the question and answer fields of HF-style JSONL; a missing field names the file, line and field', () => {
    const dir = join(root, 'fields');
    mkdirSync(dir, { recursive: true });
    const good = [
      { problem: 'A coin is heads up. Ann flips it. Is it still heads up?', solution: 'no' },
      { problem: 'A coin is heads up. Bo does not flip it. Is it still heads up?', solution: 'yes' },
    ];
    const train = writeJsonl(join(dir, 'train.jsonl'), good);
    const test = writeJsonl(join(dir, 'test.jsonl'), [good[0]!, { problem: 'A coin is heads up. Is it still heads up?' }]);
    const c = validateConfig({
      ...defaultConfig(),
      output_dir: join(dir, 'out'),
      data: { train, dev: train, test: train, fields: { question: 'problem', answer: 'solution' } },
    });
    const splits = buildSplits(c);
    expect(splits.train.map((r) => [r.question, r.answer])).toEqual(good.map((r) => [r.problem, r.solution]));
    expect(() => buildSplits({ ...c, data: { ...c.data, test } })).toThrow(
      /^data\.test: .*test\.jsonl:2: field "solution": missing \(data\.fields: question → problem, answer → solution\)$/,
    );
    expect(() => validateConfig({ ...defaultConfig(), data: { train, test, fields: { question: 'problem', anwser: 'x' } } })).toThrow(
      /config: data\.fields\.anwser: unknown setting \(did you mean answer\?\)/,
    );
  });
});

describe('dry run', () => {
  it('lists a finding per check: data read through the mapping, the teacher endpoint, model directories; exits 1 on an error', async () => {
    const dir = join(root, 'dry');
    mkdirSync(dir, { recursive: true });
    const server = createServer((req, res) => {
      res.writeHead(req.headers.authorization === 'Bearer sk-good' ? 200 : 401, { 'content-type': 'application/json' });
      res.end('{"data":[]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    try {
      const data = writeJsonl(join(dir, 'd.jsonl'), [{ q: 'Is it?', a: 'yes' }, { q: 'Is it not?' }]);
      const fixture = join(__dirname, 'fixtures', 't5-hf-reference', 'flan-t5-tiny-gated-gelu-seed1');
      const c = validateConfig({
        ...defaultConfig(),
        output_dir: join(dir, 'out'),
        data: { train: data, test: data, fields: { question: 'q', answer: 'a' } },
        teacher: { ...defaultConfig().teacher, url, apiKeyEnv: 'DRY_RUN_KEY' },
        mentor: { ...defaultConfig().mentor, init: { model_name_or_path: fixture } },
      });
      const findings = await dryRun(c, { env: { DRY_RUN_KEY: 'sk-good' }, timeoutMs: 5000 });
      const by = Object.fromEntries(findings.map((f) => [f.field, f]));
      expect(by['data.train']).toMatchObject({ level: 'error', message: expect.stringMatching(/d\.jsonl:2: field "a": missing/) });
      expect(by['teacher.url']).toMatchObject({ level: 'ok', message: expect.stringMatching(/reachable \(GET \/models: 200\)/) });
      expect(by['mentor.init']).toMatchObject({ level: 'ok', message: expect.stringMatching(/: t5, model\.safetensors$/) });
      expect(by['student.init']).toMatchObject({ level: 'ok', message: expect.stringMatching(/from scratch \(a t5 config, d_model \d+\)/) });
      const causal = await dryRun(resolveConfig({ preset: 'demo-causal', outputDir: join(dir, 'causal') }), { env: {}, timeoutMs: 2000 });
      expect(causal.find((f) => f.field === 'student.init')).toMatchObject({
        level: 'ok',
        message: expect.stringMatching(/from scratch \(a qwen2 config, hidden_size \d+\)/),
      });
      expect(formatFindings(findings)).toMatch(/dry run: 2 errors; nothing was run$/);
      const refused = await dryRun(c, { env: { DRY_RUN_KEY: 'sk-bad' }, timeoutMs: 5000 });
      expect(refused.find((f) => f.field === 'teacher.url')).toMatchObject({
        level: 'error',
        message: expect.stringMatching(/refused the key \(401\): check DRY_RUN_KEY/),
      });
      await new Promise<void>((r) => server.close(() => r()));
      const down = await dryRun(c, { env: {}, timeoutMs: 2000 });
      expect(down.find((f) => f.field === 'teacher.url')).toMatchObject({ level: 'error', message: expect.stringMatching(/unreachable within 2 s/) });
    } finally {
      server.close();
    }
  });
});

describe('the command line', () => {
  it('--version; run without a config refuses and says how to run the demo; --print-config; --dry-run exit codes', async () => {
    const [version, bare, printed, dry, badDevice] = await Promise.all([
      cli(['--version']),
      cli(['run']),
      cli(['demo', '--print-config', '--output-dir', join(root, 'printed')]),
      cli(['run', '--preset', 'demo', '--dry-run', '--output-dir', join(root, 'dry')]),
      cli(['run', '--preset', 'demo', '--dry-run', '--set', 'mentor.train.learning_rat=1']),
    ]);
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/mentor-kd: run: no configuration given\. For the demo run `mentor-kd demo` \(or `mentor-kd run --preset demo`\)/);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout)).toMatchObject({ output_dir: join(root, 'printed'), task: 'coin_flip', device: 'cpu' });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^ok {6}output_dir: .*dry: writable$/m);
    expect(dry.stdout).toMatch(/dry run: every check passed; nothing was run\n$/);
    expect(badDevice.code).toBe(1);
    expect(badDevice.stdout).toMatch(/^error {3}mentor\.train\.learning_rat: unknown setting \(did you mean learning_rate\?\)$/m);
  }, 120_000);

  it('Ctrl-C during a run says where the run is and how to resume, and exits 130', async () => {
    let sent = false;
    const r = await cli(['run', '--preset', 'demo', '--output-dir', join(root, 'interrupted'), '--set', 'teacher.embedded.latencyMs=50'], {
      onOutput: (out, kill) => {
        if (!sent && out.includes('[data]')) {
          sent = true;
          kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/mentor-kd: interrupted\. The run directory .*interrupted keeps every finished stage/);
    expect(r.stderr).toContain(`mentor-kd run --preset demo --output-dir ${join(root, 'interrupted')} --set teacher.embedded.latencyMs=50`);
    // The finished stage is kept: the same command reuses it.
    expect(JSON.parse(readFileSync(join(root, 'interrupted', 'stages', 'data', 'manifest.json'), 'utf8'))).toMatchObject({ stage: 'data' });
  }, 120_000);
});
