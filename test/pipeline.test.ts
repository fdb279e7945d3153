/**
 * The pipeline end to end on a tiny configuration: every stage's artifacts, the filter keeping
 * exactly the correct rationales, students that learned; SIGKILL during augment and during
 * train-student, then the same command, reaching the same final results; bad configs refused
 * before any work, naming the field.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baseConfig } from '../lib/config/defaults.js';
import { validateConfig, ConfigError, mergeConfig, readConfigFile, resolveConfig } from '../lib/config/load.js';
import { runConfigJsonSchema, runConfigSchema } from '../lib/config/schema.js';
import { runPipeline, type PipelineResult } from '../lib/pipeline/pipeline.js';
import type { TeacherSample } from '../lib/teacher/collector.js';
import { PIPELINE_STAGES, tinyConfig } from './helpers/pipeline-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-pipeline-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const CLI = join(__dirname, '..', 'lib', 'cli.ts');

function cliRun(configFile: string, killWhen?: () => boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', configFile], {
      env: { ...process.env, MENTOR_KD_CLI_MAIN: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = killWhen
      ? setInterval(() => {
          if (killWhen()) {
            child.kill('SIGKILL');
            clearInterval(timer);
          }
        }, 20)
      : undefined;
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      resolvePromise({ code, signal, out });
    });
  });
}

const results = (dir: string) => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as PipelineResult;
const predictions = (dir: string, stage: string) => readFileSync(join(dir, 'stages', stage, 'predictions.jsonl'), 'utf8');

describe('pipeline', () => {
  let reference: PipelineResult;
  const refDir = join(root, 'reference');

  it('runs every stage, filters exactly, and the students learn', async () => {
    const c = tinyConfig(refDir);
    reference = await runPipeline(validateConfig(c as never), { log: () => {} });
    const stages = readdirSync(join(refDir, 'stages')).sort();
    expect(stages).toEqual([...PIPELINE_STAGES].sort());
    for (const s of stages) expect(existsSync(join(refDir, 'stages', s, 'manifest.json')), s).toBe(true);
    for (const f of [
      'report/report.md',
      'report/report.html',
      'results.json',
      'stages/train-mentor/model/model.safetensors',
      'stages/student-vanilla/model/config.json',
    ]) {
      expect(existsSync(join(refDir, f)), f).toBe(true);
    }
    // The filter keeps exactly the teacher samples whose answer was right.
    const samples = JSON.parse(readFileSync(join(refDir, 'stages/collect/samples.json'), 'utf8')) as TeacherSample[];
    const kept = JSON.parse(readFileSync(join(refDir, 'stages/filter/kept.json'), 'utf8')) as { questionId: string; rationale: string }[];
    const correct = samples.filter((s) => s.correct);
    expect(correct.length).toBeLessThan(samples.length); // the simulated teacher did make mistakes
    expect(kept.map((k) => `${k.questionId}|${k.rationale}`)).toEqual(correct.map((s) => `${s.questionId}|${s.rationale.trim()}`));
    // Mentor rationales are filtered the same way.
    const aug = JSON.parse(readFileSync(join(refDir, 'stages/augment/kept.json'), 'utf8')) as { correct: boolean }[];
    expect(aug.every((r) => r.correct)).toBe(true);
    // Coin Flip is yes/no: chance is 50%. Both students must beat it clearly.
    expect(reference.students.map((s) => s.mode)).toEqual(['vanilla', 'mentor-kd']);
    for (const s of reference.students) expect(s.testAccuracy, s.mode).toBeGreaterThan(0.6);
    const html = readFileSync(join(refDir, 'report/report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('mentor-kd');
  }, 600_000);

  it('a rerun reuses every stage', async () => {
    const again = await runPipeline(validateConfig(tinyConfig(refDir) as never), { log: () => {} });
    expect(again.students).toEqual(reference.students);
  }, 120_000);

  it.each([
    ['augment', (dir: string) => existsSync(join(dir, 'stages/augment/generated.jsonl'))],
    [
      'student-mentor-kd-m2',
      (dir: string) =>
        existsSync(join(dir, 'stages/student-mentor-kd-m2/train')) &&
        readdirSync(join(dir, 'stages/student-mentor-kd-m2/train')).some((f) => f.startsWith('checkpoint-')),
    ],
  ])(
    'SIGKILL during %s, then the same command: same final results',
    async (stage, started) => {
      const dir = join(root, `killed-${stage}`);
      const cfgFile = join(root, `killed-${stage}.json`);
      writeFileSync(cfgFile, JSON.stringify(tinyConfig(dir)));
      const first = await cliRun(cfgFile, () => started(dir));
      expect(first.signal, first.out).toBe('SIGKILL');
      expect(existsSync(join(dir, 'stages', stage, 'manifest.json'))).toBe(false); // killed mid-stage
      const second = await cliRun(cfgFile);
      expect(second.code, second.out).toBe(0);
      expect(second.out).toMatch(/\[data\] \(reused\)/);
      const r = results(dir);
      expect(r.students).toEqual(reference.students);
      expect(r.mentor).toEqual(reference.mentor);
      for (const s of ['evaluate-student-vanilla', 'evaluate-student-mentor-kd-m2']) expect(predictions(dir, s)).toBe(predictions(refDir, s));
    },
    600_000,
  );
});

describe('bad configs', () => {
  it('are refused before any work, naming the field', () => {
    const dir = join(root, 'never');
    const cases: [string[], RegExp][] = [
      [['task="chess"'], /config: task: unknown task "chess"/],
      [['student.lambda=1.5'], /config: student\.lambda: must be in \[0, 1\], got 1\.5/],
      [['student.tau=0'], /config: student\.tau: must be > 0, got 0/],
      [
        ['mentor.init={"model_name_or_path":"/nonexistent/flan-t5-large"}'],
        /config: mentor\.init\.model_name_or_path: model directory \/nonexistent\/flan-t5-large does not exist/,
      ],
      [['student.modes=["vanilla","distill"]'], /config: student\.modes: unknown mode "distill"/],
      [['student.lamda=0.5'], /config: student\.lamda: unknown setting \(did you mean lambda\?\)/],
      [['mentor.train.epochs=3'], /config: mentor\.train\.epochs: unknown setting \(renamed num_train_epochs\)/],
      [['student.train.per_device_train_batch_size=0'], /config: student\.train\.per_device_train_batch_size: must be a positive integer, got 0/],
    ];
    for (const [set, re] of cases) {
      expect(() => resolveConfig({ preset: 'demo', outputDir: dir, set })).toThrow(ConfigError);
      expect(() => resolveConfig({ preset: 'demo', outputDir: dir, set })).toThrow(re);
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('the demo is a valid config; the schema exports as JSON Schema', () => {
    const c = resolveConfig({ preset: 'demo', outputDir: join(root, 'never') });
    expect(c.student.lambda).toBe(0.3);
    expect(c.student.tau).toBe(2);
    expect(c.mentor.train.num_train_epochs).toBe(30);
    const schema = runConfigJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    expect(Object.keys(schema.properties)).toContain('output_dir');
    expect(Object.keys(schema.properties.student!.properties!)).toEqual(expect.arrayContaining(['lambda', 'tau', 'train']));
  });

  it('the example config matches the schema (its model and data files aside)', () => {
    const file = readConfigFile(join(__dirname, '..', 'examples', 'svamp-openai.yaml'));
    const parsed = runConfigSchema.safeParse(mergeConfig(baseConfig(), file));
    expect(parsed.error?.issues ?? []).toEqual([]);
    expect(parsed.data?.mentor.init).toEqual({ model_name_or_path: 'google/flan-t5-large' });
  });
});
