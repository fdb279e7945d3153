/** The native runtime: what it runs on (info), libtorch's intra-op threads and default generator's seed. */
export { setNumThreads, manualSeed, runtimeInfo as info } from '../native/index.js';
export type { RuntimeInfo } from '../native/index.js';
