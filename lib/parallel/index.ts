/** Data-parallel training on libtorch c10d (Gloo on CPU, NCCL on CUDA), torchrun-compatible. */
export { readDistEnv, isDistributedEnv } from './env.js';
export type { DistEnv } from './env.js';
export { ProcessGroup, initProcessGroup, threadsPerProcess } from './process-group.js';
export type { Backend, InitOptions } from './process-group.js';
export { DataParallel } from './data-parallel.js';
export type { DataParallelOptions, AllreduceGradientsOptions } from './data-parallel.js';
export type { ReduceStats, BucketInfo } from './data-parallel.js';
export { shardedMap, allreduceCounts, onMain, onMainShared, shardOf, unshard } from './sharded.js';
export { checkSharedDirectory, agreeAcrossRanks } from './shared-fs.js';
export { launch, freePort } from './launch.js';
export type { LaunchOptions, LaunchResult, WorkerExit } from './launch.js';
