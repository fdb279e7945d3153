// A grid point in miniature, for test/helpers/sweep-jobs-parent.ts: argv <dir> [--stubborn] --seeds <n> ...
// It says it is running (ready-<n>), then runs until SIGINT or SIGTERM, on which it takes half a
// second to stop (as a training run finishing its write) and leaves stopped-<n>; --stubborn: it
// ignores them (only SIGKILL stops it). Bounded: 60 s.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout } from 'node:timers';

const args = process.argv.slice(2);
const [dir] = args;
const seed = args[args.indexOf('--seeds') + 1];
const stubborn = args.includes('--stubborn');
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(
    sig,
    () =>
      stubborn ||
      setTimeout(() => {
        writeFileSync(join(dir, `stopped-${seed}`), sig);
        process.exit(sig === 'SIGINT' ? 130 : 143);
      }, 500),
  );
writeFileSync(join(dir, `ready-${seed}`), String(process.pid));
setTimeout(() => process.exit(0), 60_000);
