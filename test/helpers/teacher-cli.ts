/**
 * The tasks and teacher subcommands as a process of their own (the `mentor-kd` binary without
 * the rest of the CLI), for tests that need signals and exit codes:
 *   node --import tsx test/helpers/teacher-cli.ts teacher serve --port 0 ...
 */
import { Command } from 'commander';
import { registerTaskCommands } from '../../lib/tasks/cli.js';
import { registerTeacherCommands } from '../../lib/teacher/cli.js';

const program = new Command().name('mentor-kd');
registerTaskCommands(program);
registerTeacherCommands(program);
program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`mentor-kd: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
