/** Run commander subcommands in-process and capture what they print. */
import { Command } from 'commander';
import { vi } from 'vitest';

export async function runCli(register: (program: Command) => void, args: string[]): Promise<{ stdout: string[]; stderr: string[] }> {
  const program = new Command().exitOverride();
  register(program);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void stdout.push(a.join(' ')));
  const err = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void stderr.push(a.join(' ')));
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  return { stdout, stderr };
}
