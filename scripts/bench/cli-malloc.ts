/**
 * The glibc malloc settings `bin/mentor-kd` exports before Node starts, read from that script so
 * that the benchmarks measure what the command runs (one place to change them).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/mentor-kd', import.meta.url));

/** NAME=value pairs of bin/mentor-kd's `export` line. */
export function cliMallocEnv(): Record<string, string> {
  const text = readFileSync(BIN, 'utf8');
  const line = /^\s*export (MALLOC_ARENA_MAX=.*)$/m.exec(text);
  if (!line) throw new Error(`${BIN}: no 'export MALLOC_ARENA_MAX=...' line`);
  const env: Record<string, string> = {};
  for (const pair of line[1]!.trim().split(/\s+/)) {
    const m = /^([A-Z_]+)=(.*)$/.exec(pair);
    if (!m) throw new Error(`${BIN}: cannot read '${pair}' in its export line`);
    env[m[1]!] = m[2]!;
  }
  return env;
}
