import type { Command } from 'commander';

/** Model subcommands (check, info). Filled in with the native model. */
export function registerModelCommands(program: Command): void {
  void program;
}
