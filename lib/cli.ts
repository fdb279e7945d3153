#!/usr/bin/env node
/** The `mentor-kd` command: commander wiring only; each area registers its own subcommands. */
import { Command } from 'commander';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from './native/loader.js';
import { cliMainFromEnv } from './runtime/env.js';
import { registerParallelCommands } from './parallel/cli.js';
import { registerPlanCommand } from './plan/cli.js';
import { registerModelCommands } from './model/cli.js';
import { registerPipelineCommands } from './pipeline/cli.js';
import { registerTaskCommands } from './tasks/cli.js';
import { registerTeacherCommands } from './teacher/cli.js';

/** The package's version (package.json), for `--version`. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('mentor-kd')
    .version(packageVersion(), '-V, --version', 'print the version of mentor-kd')
    .description('Mentor-KD: distil multi-step reasoning from a large LLM into a small FlanT5 (native libtorch core)')
    .showHelpAfterError();
  registerPipelineCommands(program);
  registerModelCommands(program);
  registerTaskCommands(program);
  registerTeacherCommands(program);
  registerParallelCommands(program);
  registerPlanCommand(program);
  return program;
}

// Run when executed directly, including through npm's bin symlink.
const isMain = !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain || cliMainFromEnv()) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(`mentor-kd: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
