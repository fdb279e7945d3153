// `mentor-kd report` only reads a run directory: on a partial run it runs no stage (no teacher call,
// no training) and names the stage that is missing; on a finished stage list it rebuilds the report.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../lib/config/load.js';
import { registerPipelineCommands } from '../lib/pipeline/cli.js';
import { runPipeline } from '../lib/pipeline/pipeline.js';
import { StageNotFinishedError } from '../lib/pipeline/run-dir.js';
import { runCli } from './helpers/cli.js';
import { tinyConfig } from './helpers/pipeline-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-report-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${p.slice(dir.length)}:${statSync(p).size}:${statSync(p).mtimeMs}`);
    }
  };
  walk(dir);
  return out.sort();
}

describe('report on a partial run directory', () => {
  it('runs no stage, names the missing one and leaves the directory as it was', async () => {
    const dir = join(root, 'partial');
    const c = validateConfig(tinyConfig(dir));
    await runPipeline(c, { until: 'data', log: () => undefined });
    const before = snapshot(dir);
    expect(readdirSync(join(dir, 'stages'))).toEqual(['data']);

    await expect(runPipeline(c, { readOnly: true, log: () => undefined })).rejects.toBeInstanceOf(StageNotFinishedError);
    await expect(runCli(registerPipelineCommands, ['report', dir])).rejects.toThrow(
      /is not a finished run: stage collect: not run yet.*Finished: data\. No stage was run/,
    );
    // Nothing was collected, trained or written (no stage folder, no report, same files and times).
    expect(readdirSync(join(dir, 'stages'))).toEqual(['data']);
    expect(existsSync(join(dir, 'report'))).toBe(false);
    expect(snapshot(dir)).toEqual(before);
  }, 60_000);

  it('a stage finished for other inputs is named as such, not rerun', async () => {
    const dir = join(root, 'stale');
    const c = validateConfig(tinyConfig(dir));
    await runPipeline(c, { until: 'collect', log: () => undefined });
    const changed = validateConfig({ ...tinyConfig(dir), teacher: { ...tinyConfig(dir).teacher, samples: 3 } });
    const before = snapshot(dir);
    await expect(runPipeline(changed, { readOnly: true, log: () => undefined })).rejects.toThrow(/stage collect: finished for other inputs/);
    expect(snapshot(dir)).toEqual(before);
  }, 60_000);
});

describe('report on a finished run', () => {
  it('rebuilds the report from the stages (none rerun): per-model facts, chance, faithfulness beside accuracy, samples', async () => {
    const dir = join(root, 'finished');
    const c = validateConfig(tinyConfig(dir));
    const first = await runPipeline(c, { log: () => undefined });
    const stagesBefore = readdirSync(join(dir, 'stages'))
      .filter((s) => s !== 'report')
      .map((s) => `${s}:${statSync(join(dir, 'stages', s, 'manifest.json')).mtimeMs}`);
    rmSync(join(dir, 'report'), { recursive: true });
    const { stdout } = await runCli(registerPipelineCommands, ['report', dir]);
    expect(stdout.join('\n')).toMatch(/report: .*report\.html/);
    // No stage ran again: every manifest is the one the first run wrote.
    expect(
      readdirSync(join(dir, 'stages'))
        .filter((s) => s !== 'report')
        .map((s) => `${s}:${statSync(join(dir, 'stages', s, 'manifest.json')).mtimeMs}`),
    ).toEqual(stagesBefore);

    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as {
      mentor: { testAccuracy: number; faithfulness: { total: number; faithful: number } };
      students: { mode: string; testAccuracy: number; faithfulness: { total: number; faithful: number; byCheck: { entities: number } } }[];
      chance: { accuracy: number; label: string };
    };
    expect(results.students.map((s) => s.mode)).toEqual(first.students.map((s) => s.mode));
    for (const m of [results.mentor, ...results.students]) {
      expect(m.faithfulness.total).toBe(80); // every test question of tinyConfig
      expect(m.faithfulness.faithful).toBeGreaterThanOrEqual(0);
      expect(m.faithfulness.faithful).toBeLessThanOrEqual(1);
    }
    expect(results.chance.accuracy).toBeGreaterThanOrEqual(0.5); // yes/no: random 50%, or the majority class when higher

    const html = readFileSync(join(dir, 'report', 'report.html'), 'utf8');
    for (const text of [
      'faithful rationales',
      'names only from the question',
      'parameters',
      'optimizer steps',
      'tokens seen',
      join(dir, 'stages', 'student-vanilla', 'model'),
      'Chance: always',
      'Training loss per objective',
      'KD divergence to the mentor',
      'Dev accuracy during training',
      'simulated-teacher: ',
      'Sample rationales',
    ])
      expect(html, text).toContain(text);
    expect(html).toMatch(/✓ correct/);
    expect(readdirSync(join(dir, 'report')).sort()).toEqual(['dev-accuracy.svg', 'loss.svg', 'report.html', 'report.md']);
  }, 900_000);
});
