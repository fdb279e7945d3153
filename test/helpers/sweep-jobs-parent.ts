/**
 * A sweep's parent in miniature, for test/sweep-jobs.test.ts: runUnits over three seeds, two at a
 * time, each unit ./sweep-jobs-child.mjs. argv: <dir> [--on-sigint] [--stubborn]. --on-sigint: a
 * SIGINT handler of its own (as the CLI has) notes which children had stopped when it ran, and
 * exits 130. --stubborn: the children ignore SIGINT/SIGTERM, and the grace period is 1 s.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcessRunner, runUnits, sweepUnits } from '../../lib/pipeline/sweep-jobs.js';

const [dir, ...flags] = process.argv.slice(2) as [string, ...string[]];
const stubborn = flags.includes('--stubborn');
if (flags.includes('--on-sigint'))
  process.once('SIGINT', () => {
    const stopped = [1, 2, 3].filter((seed) => existsSync(join(dir, `stopped-${seed}`)));
    process.stdout.write(`HANDLER stopped: ${stopped.join(',')}\n`);
    process.exit(130);
  });
const child = join(dirname(fileURLToPath(import.meta.url)), 'sweep-jobs-child.mjs');
const runner = childProcessRunner([dir, ...(stubborn ? ['--stubborn'] : [])], 1, [process.execPath, child]);
await runUnits(sweepUnits({ seeds: [1, 2, 3] }), 2, runner, (l) => process.stdout.write(l + '\n'), stubborn ? { graceMs: 1000 } : {});
process.stdout.write('TABLES\n'); // where the sweep would go on to its tables
