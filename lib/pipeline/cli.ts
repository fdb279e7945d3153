/** `mentor-kd demo | run | <stage> | report | sweep`: the pipeline's commands. */
import type { Command } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDistributedEnv, readDistEnv } from '../parallel/env.js';
import { ProcessGroup } from '../parallel/process-group.js';
import { baseConfig } from '../config/defaults.js';
import { dryRun, formatFindings } from '../config/dry-run.js';
import { ConfigError, mergeConfig, PRESET_NAMES, resolveConfig, validateConfig } from '../config/load.js';
import type { RunConfig } from '../config/schema.js';
import { STUDENT_MODES, type StudentMode } from '../config/schema.js';
import { configFileJsonSchema } from '../config/json-schema.js';
import { runPipeline, STAGES, type PipelineResult, type StageName } from './pipeline.js';
import { formatCell } from './report.js';
import { parseIntegerList, parseSweepObjective, parseTaskList, runSweep, type SweepGrid, type SweepObjective } from './sweep.js';
import { methodName } from './sweep-tables.js';
import { childProcessRunner, runUnits, sweepUnits } from './sweep-jobs.js';
import { availableParallelism } from 'node:os';
import { StageNotFinishedError } from './run-dir.js';

interface CommonFlags {
  config?: string;
  preset?: string;
  outputDir?: string;
  set?: string[];
  printConfig?: boolean;
  dryRun?: boolean;
}

/** A URL with its password and key-like query parameters hidden (a teacher URL may carry them). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/key|token|secret|sig|password/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return url;
  }
}

/** The configuration as `--print-config` shows it: secrets redacted (a config holds none but what a URL may carry). */
export function redactConfig(c: RunConfig): RunConfig {
  return c.teacher.url === undefined ? c : { ...c, teacher: { ...c.teacher, url: redactUrl(c.teacher.url) } };
}

/**
 * The command's configuration, or undefined when the command is done already: `--print-config`
 * prints it, `--dry-run` checks everything and sets the exit code. `run`, the stages and `sweep`
 * need a config file or a preset: the base defaults alone name no data, teacher or models.
 */
async function configFor(command: string, flags: CommonFlags): Promise<RunConfig | undefined> {
  if (flags.config === undefined && flags.preset === undefined)
    throw new Error(
      `${command}: no configuration given. For the demo run \`mentor-kd demo\` (or \`mentor-kd ${command} --preset demo\`); ` +
        `for your own run give --config <file.yaml> (examples/svamp-openai.yaml is a real run; \`mentor-kd config schema\` lists every setting)`,
    );
  let c: RunConfig;
  try {
    c = resolveConfig({ ...flags, checkDevices: !flags.dryRun });
  } catch (err) {
    if (!flags.dryRun || !(err instanceof ConfigError)) throw err;
    // The configuration itself is the first finding: the other checks need a valid one.
    console.log(formatFindings([{ level: 'error', field: err.field, message: err.message.replace(/^config: [^:]+: /, '') }]));
    process.exitCode = 1;
    return undefined;
  }
  if (flags.printConfig) {
    console.log(JSON.stringify(redactConfig(c), null, 2));
    return undefined;
  }
  if (flags.dryRun) {
    const findings = await dryRun(c);
    console.log(formatFindings(findings));
    process.exitCode = findings.some((f) => f.level === 'error') ? 1 : 0;
    return undefined;
  }
  return c;
}

/**
 * Ctrl-C during a run: every file is written whole (temporary + rename, or one appended line), so
 * exiting between two writes leaves the run directory consistent; say where it is and how to go on,
 * and exit 130 as shells expect.
 */
function onInterrupt(outputDir: string): void {
  process.once('SIGINT', () => {
    const again = ['mentor-kd', ...process.argv.slice(2)].map((a) => (/^[\w./:=@,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
    process.stderr.write(
      `\nmentor-kd: interrupted. The run directory ${outputDir} keeps every finished stage and the last checkpoint of the current one; ` +
        `the same command resumes from there:\n  ${again}\n`,
    );
    process.exit(130);
  });
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
    .option('-c, --config <file>', 'run configuration (YAML or JSON); its relative paths are taken from its folder')
    .option('--preset <name>', `start from a named configuration (${PRESET_NAMES.join(', ')}); a --config file is laid over it`)
    .option('--output-dir <dir>', 'run directory (overrides output_dir; relative to the working directory)')
    .option('--set <key=value>', 'override one setting, e.g. --set student.lambda=0.5 (repeatable; paths relative to the working directory)', collect)
    .option('--print-config', 'print the resolved configuration (secrets redacted) and exit')
    .option('--dry-run', 'check everything (files, model directories, Hub ids, teacher endpoint) without running, list the findings, exit 0 or 1');
}

export function registerPipelineCommands(program: Command): void {
  withCommon(program.command('demo'))
    .description('the whole pipeline on its embedded default: Coin Flip, a simulated teacher on loopback, small models from scratch (no network)')
    .action(async (flags: CommonFlags) => {
      const c = await configFor('demo', { ...flags, preset: flags.preset ?? 'demo' });
      if (!c) return;
      onInterrupt(c.output_dir);
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
    .description('run the pipeline from a configuration file or a preset (stages already done are reused)')
    .action(async (flags: CommonFlags) => {
      const c = await configFor('run', flags);
      if (!c) return;
      onInterrupt(c.output_dir);
      await inProcessGroup(async (group) => {
        const r = await runPipeline(c, { group });
        onRank0(group, () => printResults(r));
      });
    });

  for (const stage of STAGES.filter((s) => s !== 'report')) {
    withCommon(program.command(stage))
      .description(`run the pipeline up to the ${stage} stage (earlier stages are reused or run)`)
      .action(async (flags: CommonFlags) => {
        const c = await configFor(stage, flags);
        if (!c) return;
        onInterrupt(c.output_dir);
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
  /** A flag's parser whose Error becomes a ConfigError naming the flag. */
  const flagParser =
    <T>(flag: string, parse: (v: string) => T) =>
    (v: string): T => {
      try {
        return parse(v);
      } catch (err) {
        throw new ConfigError(flag, (err as Error).message.replace(/^--[a-z-]+: /, ''));
      }
    };
  type SweepFlags = {
    seeds: number[];
    fractions: number[];
    mentorSamples?: number[];
    modes?: StudentMode[];
    objectives?: SweepObjective[];
    tasks?: SweepGrid['tasks'];
    computeMatched?: 'also' | 'only' | true;
    baseline?: StudentMode;
    jobs?: number;
    report: boolean;
  };
  withCommon(program.command('sweep'))
    .description("the paper's experiments: modes x fraction of teacher data x mentor rationales per question x seeds, one table (mean ± std)")
    .option(
      '--seeds <list>',
      'seeds: a list with ranges, e.g. 0-4 or 0,2,5',
      flagParser('--seeds', (v) => parseIntegerList(v)),
      [0, 1, 2],
    )
    .option('--fractions <list>', 'fractions of teacher data', list(parseFloat), [1])
    .option(
      '--mentor-samples <list>',
      'mentor rationales per question',
      list((x) => parseInt(x, 10)),
    )
    .option('--modes <list>', `student modes (${STUDENT_MODES.join(', ')})`, (v: string) => v.split(',') as StudentMode[])
    .option(
      '--objectives <list>',
      'KD objectives to compare, e.g. forward-kl,reverse-kl,jsd:0.5,forward-kl+on-policy:0.5 (jsd:<beta>, skew-kl:<alpha>, +on-policy:<fraction>)',
      (v: string) =>
        v.split(',').map((x) => {
          try {
            return parseSweepObjective(x);
          } catch (err) {
            throw new ConfigError('--objectives', (err as Error).message.replace(/^--objectives: /, ''));
          }
        }),
    )
    .option(
      '--tasks <list>',
      'tasks, each generated locally in its own run directories (e.g. coin_flip,last_letter_concatenation)',
      flagParser('--tasks', parseTaskList),
    )
    .option(
      '--compute-matched [which]',
      "also train every baseline mode for mentor-kd's optimizer steps (tokens under student.budget: tokens) at the same seed: also (beside the baselines' own budget) or only",
      flagParser('--compute-matched', (v) => {
        if (v !== 'also' && v !== 'only') throw new Error(`expected also or only, got ${JSON.stringify(v)}`);
        return v;
      }),
    )
    .option(
      '--baseline <mode>',
      'paired differences (95% t interval, p-value) against this mode, e.g. vanilla (its compute-matched run with --compute-matched)',
    )
    .option(
      '--jobs <n>',
      'grid points (task, seed) run at a time, each in a process of its own with threads / n intra-op threads (default 1)',
      flagParser('--jobs', (v) => {
        const n = Number(v);
        if (!(Number.isInteger(n) && n >= 1)) throw new Error(`expected a positive integer, got ${JSON.stringify(v)}`);
        return n;
      }),
    )
    .option('--no-report', 'train and evaluate only, write no sweep report (what each --jobs process does)')
    .action(async (flags: CommonFlags & SweepFlags) => {
      const c = await configFor('sweep', flags);
      if (!c) return;
      onInterrupt(c.output_dir);
      const grid = {
        seeds: flags.seeds,
        fractions: flags.fractions,
        mentorSamples: flags.mentorSamples ?? [c.student.mentorSamples],
        modes: flags.modes ?? c.student.modes,
        ...(flags.objectives ? { objectives: flags.objectives } : {}),
        ...(flags.tasks ? { tasks: flags.tasks } : {}),
        ...(flags.computeMatched ? { computeMatched: flags.computeMatched === true ? 'also' : flags.computeMatched } : {}),
        ...(flags.baseline ? { baseline: flags.baseline } : {}),
      } satisfies SweepGrid;
      if (grid.baseline && !grid.modes.includes(grid.baseline))
        throw new ConfigError('--baseline', `${grid.baseline} is not among the modes (${grid.modes.join(', ')})`);
      for (const m of grid.modes) if (!STUDENT_MODES.includes(m)) throw new ConfigError('--modes', `unknown mode ${JSON.stringify(m)}`);
      for (const f of grid.fractions) if (!(f > 0 && f <= 1)) throw new ConfigError('--fractions', `${f} is not in (0, 1]`);
      const jobs = flags.jobs ?? 1;
      if (jobs > 1) {
        if (isDistributedEnv()) throw new ConfigError('--jobs', 'runs grid points in processes of its own; under a process group give --jobs 1');
        // Every process of the sweep (the children and the final pass here) runs at the same thread count: results depend on it.
        c.threads = c.threads > 0 ? c.threads : Math.max(1, Math.floor(availableParallelism() / jobs));
        const t0 = performance.now();
        await runUnits(sweepUnits(grid), jobs, childProcessRunner(process.argv.slice(2), c.threads), (l) => console.log(l));
        console.log(
          `[sweep] every grid point trained in ${((performance.now() - t0) / 60_000).toFixed(1)} min (${jobs} at a time); the tables reuse their stages`,
        );
      }
      await inProcessGroup(async (group) => {
        const { cells, report } = await runSweep(c, grid, { log: (l) => console.log(l), group, report: flags.report });
        onRank0(group, () => {
          console.log('');
          for (const cell of cells)
            console.log(
              `${cell.task}: ${methodName(cell).padEnd(12)} teacher ${(cell.fraction * 100).toFixed(0).padStart(3)}%  mentor x${cell.mentorSamples}: ${(100 * cell.mean).toFixed(1)} ± ${(100 * cell.std).toFixed(1)}  (${cell.accuracies.map((a) => (100 * a).toFixed(1)).join(', ')})`,
            );
          if (report) console.log(`\nsweep report: ${report.html}\ntables (tasks x methods, paired differences): ${join(c.output_dir, 'sweep', 'tables.md')}`);
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
      const c = validateConfig(mergeConfig(baseConfig(), raw), resolve(outputDir), { checkDevices: false });
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
    .action(() => console.log(JSON.stringify(configFileJsonSchema(), null, 2)));
  withCommon(config.command('show'))
    .description('print the resolved configuration (base or preset ← file ← --set ← --output-dir), validated, secrets redacted, as JSON')
    .action(async (flags: CommonFlags) => {
      const c = await configFor('config show', flags);
      if (c) console.log(JSON.stringify(redactConfig(c), null, 2));
    });
}
