#!/usr/bin/env node
/**
 * clang-format over the native sources (native/, third-party code excepted), with the repository's
 * .clang-format. `--check` (npm run lint): report and fail on unformatted files, changing nothing;
 * otherwise (npm run format) rewrite them. Without clang-format on PATH it says so and succeeds,
 * so that `npm run lint` works where only Node is installed (apt-get install clang-format).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const check = process.argv.includes('--check');
const SOURCE = /\.(cc|h|cu|cuh|cpp|hpp)$/;
const SKIP = new Set(['third_party']);

function sources(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (SOURCE.test(e.name)) out.push(relative(root, p));
  }
  return out.sort();
}

const bin = process.env.CLANG_FORMAT || 'clang-format';
if (spawnSync(bin, ['--version'], { stdio: 'ignore' }).error) {
  console.warn(`clang-format: '${bin}' is not installed; native sources not ${check ? 'checked' : 'formatted'}`);
  process.exit(0);
}
const files = sources(join(root, 'native'));
const args = check ? ['--dry-run', '-Werror', ...files] : ['-i', ...files];
const r = spawnSync(bin, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  if (check) console.error('clang-format: native sources differ from .clang-format (npm run format fixes them)');
  process.exit(r.status ?? 1);
}
