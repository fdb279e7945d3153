// Lets `node-gyp rebuild` build the addon: the real build is CMake (cmake-js), run
// in build/cmake so it cannot clash with node-gyp's own files in build/, then the
// addon is copied to build/Release where node-gyp-build looks.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
execFileSync(process.execPath, [cmakeJs, 'compile', '--out', join(root, 'build', 'cmake'), '--CDCMAKE_BUILD_TYPE=Release'], { cwd: root, stdio: 'inherit' });
mkdirSync(join(root, 'build', 'Release'), { recursive: true });
copyFileSync(join(root, 'build', 'cmake', 'Release', 'mentor_kd.node'), join(root, 'build', 'Release', 'mentor_kd.node'));
