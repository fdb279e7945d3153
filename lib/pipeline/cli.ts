/** `mentor-kd demo | run | <stage> | report | sweep`: the pipeline's commands. */
import type { Command } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDistributedEnv, readDistEnv } from '../parallel/env.js';
import { ProcessGroup } from '../parallel/process-group.js';
import { defaultConfig } from '../config/defaults.js';
import { ConfigError, mergeConfig, resolveConfig, validateConfig } from '../config/load.js';
import { runConfigJsonSchema, STUDENT_MODES, type StudentMode } from '../config/schema.js';
import { runPipeline, STAGES, type PipelineResult, type StageName } from './pipeline.js';
import { formatCell } from './report.js';
import { runSweep } from './sweep.js';
import { StageNotFinishedError } from './run-dir.js';

interface CommonFlags {
  config?: string;
  outputDir?: string;
  set?: string[];
}

export function printResults(r: PipelineResult): void {
  console.log('');
  console.log(`| model | ${r.task} (test accuracy) | dev accuracy |`);
  console.log('|---|---|---|');
  console.log(`| mentor | ${formatCell(r.mentor.testAccuracy ?? undefined)} | ${formatCell(r.mentor.devAccuracy ?? undefined)} |`);
  for (const s of r.students)
    console.log(
      `| student: ${s.mode} | ${formatCell(Number.isNaN(s.testAccuracy) ? undefined : s.testAccuracy)} | ${formatCell(s.devAccuracy ?? undefined)} |`,
    );
  if (r.report) console.log(`\nreport: ${r.report.html}`);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Runs `fn` in the process group the environment describes (under `mentor-kd launch`, torchrun,
 * Slurm), or alone. On failure the group is left as is: the process exits non-zero and the
 * launcher stops the other ranks.
 */
export async function inProcessGroup<T>(fn: (group: ProcessGroup | undefined) => Promise<T>): Promise<T> {
  if (!isDistributedEnv() || readDistEnv().worldSize === 1) return fn(undefined);
  const group = await ProcessGroup.init();
  const out = await fn(group);
  await group.destroy();
  return out;
}

/** Prints on rank 0 only (every rank holds the same results). */
const onRank0 = (group: ProcessGroup | undefined, f: () => void) => {
  if (!group || group.isMain) f();
};

function withCommon(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'run configuration (YAML or JSON); the embedded demo configuration otherwise')
    .option('--output-dir <dir>', 'run directory (overrides output_dir)')
    .option('--set <key=value>', 'override one setting, e.g. --set student.lambda=0.5 (repeatable)', collect);
}

export function registerPipelineCommands(program: Command): void {
  withCommon(program.command('demo'))
    .description('the whole pipeline on its embedded default: Coin Flip, a simulated teacher on loopback, small models from scratch (no network)')
    .action(async (flags: CommonFlags) => {
      const c = resolveConfig(flags);
      const t0 = performance.now();
      await inProcessGroup(async (group) => {
        const r = await runPipeline(c, { group });
        onRank0(group, () => {
          printResults(r);
          console.log(`demo finished in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        });
      });
    });

  withCommon(program.command('run'))
    .description('run the pipeline from a configuration file (stages already done are reused)')
    .action(async (flags: CommonFlags) => {
      const c = resolveConfig(flags);
      await inProcessGroup(async (group) => {
        const r = await runPipeline(c, { group });
        onRank0(group, () => printResults(r));
      });
    });

  for (const stage of STAGES.filter((s) => s !== 'report')) {
    withCommon(program.command(stage))
      .description(`run the pipeline up to the ${stage} stage (earlier stages are reused or run)`)
      .action(async (flags: CommonFlags) => {
        const c = resolveConfig(flags);
        await inProcessGroup(async (group) => {
          const r = await runPipeline(c, { until: stage as StageName, group });
          if (stage === 'evaluate') onRank0(group, () => printResults(r));
        });
      });
  }

  const list = (parse: (s: string) => number) => (v: string) =>
    v.split(',').map((x) => {
      const n = parse(x.trim());
      if (!Number.isFinite(n)) throw new ConfigError('sweep', `not a number: ${JSON.stringify(x)}`);
      return n;
    });
  withCommon(program.command('sweep'))
    .description("the paper's experiments: modes x fraction of teacher data x mentor rationales per question x seeds, one table (mean ± std)")
    .option(
      '--seeds <list>',
      'comma-separated seeds',
      list((x) => parseInt(x, 10)),
      [0, 1, 2],
    )
    .option('--fractions <list>', 'fractions of teacher data', list(parseFloat), [1])
    .option(
      '--mentor-samples <list>',
      'mentor rationales per question',
      list((x) => parseInt(x, 10)),
    )
    .option('--modes <list>', `student modes (${STUDENT_MODES.join(', ')})`, (v: string) => v.split(',') as StudentMode[])
    .action(async (flags: CommonFlags & { seeds: number[]; fractions: number[]; mentorSamples?: number[]; modes?: StudentMode[] }) => {
      const c = resolveConfig(flags);
      const grid = {
        seeds: flags.seeds,
        fractions: flags.fractions,
        mentorSamples: flags.mentorSamples ?? [c.student.mentorSamples],
        modes: flags.modes ?? c.student.modes,
      };
      for (const m of grid.modes) if (!STUDENT_MODES.includes(m)) throw new ConfigError('--modes', `unknown mode ${JSON.stringify(m)}`);
      for (const f of grid.fractions) if (!(f > 0 && f <= 1)) throw new ConfigError('--fractions', `${f} is not in (0, 1]`);
      await inProcessGroup(async (group) => {
        const { cells, report } = await runSweep(c, grid, { log: (l) => console.log(l), group });
        onRank0(group, () => {
          console.log('');
          for (const cell of cells)
            console.log(
              `${cell.mode.padEnd(12)} teacher ${(cell.fraction * 100).toFixed(0).padStart(3)}%  mentor x${cell.mentorSamples}: ${(100 * cell.mean).toFixed(1)} ± ${(100 * cell.std).toFixed(1)}  (${cell.accuracies.map((a) => (100 * a).toFixed(1)).join(', ')})`,
            );
          console.log(`\nsweep report: ${report.html}`);
        });
      });
    });

  program
    .command('report')
    .description('rebuild the Markdown/HTML report of a run directory from its finished stages (runs none)')
    .argument('<output-dir>', 'a run directory (holds config.json)')
    .action(async (outputDir: string) => {
      const cfgPath = join(resolve(outputDir), 'config.json');
      if (!existsSync(cfgPath)) throw new Error(`${cfgPath} not found: not a run directory`);
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
      } catch (e) {
        throw new ConfigError('file', `${cfgPath} is not valid JSON: ${(e as Error).message}`);
      }
      // A run's config.json is complete; settings added to mentor-kd since it was written take their defaults.
      const c = validateConfig(mergeConfig(defaultConfig(), raw));
      c.output_dir = resolve(outputDir); // the folder named here, wherever the run was made
      try {
        printResults(await runPipeline(c, { readOnly: true }));
      } catch (err) {
        if (!(err instanceof StageNotFinishedError)) throw err;
        const stagesDir = join(c.output_dir, 'stages');
        const finished = existsSync(stagesDir)
          ? readdirSync(stagesDir)
              .filter((s) => existsSync(join(stagesDir, s, 'manifest.json')))
              .sort()
          : [];
        throw new Error(
          `report: ${c.output_dir} is not a finished run: ${err.message}, and the stages after it need it. ` +
            `Finished: ${finished.length ? finished.join(', ') : 'none'}. No stage was run; ` +
            `\`mentor-kd run --config <your config> --output-dir ${c.output_dir}\` completes the run.`,
          { cause: err },
        );
      }
    });

  const config = program.command('config').description('the run configuration');
  config
    .command('schema')
    .description("print the run configuration's JSON Schema (for editors and validators)")
    .action(() => console.log(JSON.stringify(runConfigJsonSchema(), null, 2)));
  withCommon(config.command('show'))
    .description('print the resolved configuration (demo ← file ← --set ← --output-dir), validated, as JSON')
    .action((flags: CommonFlags) => console.log(JSON.stringify(resolveConfig(flags), null, 2)));
}
