/** The native runtime: libtorch's intra-op threads and default generator's seed. */
export { setNumThreads, manualSeed } from '../native/index.js';
export type { RuntimeInfo } from '../native/index.js';
