/**
 * Runs the TypeScript loader fuzz targets (scripts/fuzz/targets.ts) for a bounded time each:
 *   npx tsx scripts/fuzz/ts-fuzz.ts [seconds-per-target=60] [seed=time] [target ...]
 * Prints runs/accepted/refused per target; failing inputs land in build-fuzz/ts/<target>/ and the
 * exit code is 1 when there is any. The input being tried is in build-fuzz/ts/work/<target>/ (the
 * file the loader reads): when the run is killed for a hang (scripts/fuzz/run.sh runs it under
 * `timeout`), that file is the input that hung.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TARGET_NAMES, fuzzTarget, type TargetName } from './targets.js';

// The YAML parser warns (process.emitWarning) on odd tags in mutated configs: not findings, only noise.
process.removeAllListeners('warning');
const seconds = Number(process.argv[2] ?? 60);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
if (!(seconds > 0)) throw new Error(`ts-fuzz: seconds must be positive, got ${process.argv[2]}`);
const asked = process.argv.slice(4);
for (const name of asked) {
  if (!(TARGET_NAMES as readonly string[]).includes(name)) throw new Error(`ts-fuzz: unknown target '${name}' (targets: ${TARGET_NAMES.join(', ')})`);
}
const targets: readonly TargetName[] = asked.length ? (asked as TargetName[]) : TARGET_NAMES;
// One work folder per target set, so targets can run side by side in separate processes.
const work = join('build-fuzz', 'ts', asked.length ? `work-${asked.join('-')}` : 'work');
mkdirSync(work, { recursive: true });
let failed = 0;
try {
  for (const name of targets) {
    console.log(`fuzz: ts:${name} for ${seconds}s (seed ${seed})`);
    const s = await fuzzTarget(name, { seconds, seed, dir: work });
    console.log(
      `  ${s.runs} runs (${(s.runs / seconds).toFixed(0)}/s): ${s.accepted} accepted, ${s.refused} refused with a named error, slowest ${s.slowestMs.toFixed(0)} ms, ${s.failures.length} failures`,
    );
    if (s.failures.length) {
      const out = join('build-fuzz', 'ts', name);
      mkdirSync(out, { recursive: true });
      s.failures.slice(0, 20).forEach((f, i) => {
        writeFileSync(join(out, `failure-${i}.bin`), f.input);
        writeFileSync(join(out, `failure-${i}.txt`), f.reason + '\n');
        console.log(`  failure ${i}: ${f.reason.slice(0, 300)}`);
      });
      failed += s.failures.length;
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failed) {
  console.error(`fuzz: ${failed} failing inputs (build-fuzz/ts/)`);
  process.exit(1);
}
