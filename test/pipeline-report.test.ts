// `mentor-kd report` only reads a run directory: on a partial run it runs no stage (no teacher call,
// no training) and names the stage that is missing; on a finished stage list it rebuilds the report.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
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
