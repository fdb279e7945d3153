/** Distributed data-parallel training on libtorch c10d (Gloo on CPU, NCCL on CUDA), torchrun-compatible. */
export { readDistEnv, isDistributedEnv } from './env.js';
export type { DistEnv } from './env.js';
export { ProcessGroup, initProcessGroup, threadsPerProcess } from './process-group.js';
export type { Backend, InitOptions } from './process-group.js';
export { DataParallel, sgdStep } from './data-parallel.js';
export type { DataParallelOptions, ForwardBackwardOptions, AllreduceGradientsOptions } from './data-parallel.js';
export type { ReduceStats, ForwardBackwardResult, BucketInfo } from './native-types.js';
export { DistributedSampler, permutation, shardOf, unshard } from './sampler.js';
export type { DistributedSamplerOptions } from './sampler.js';
export { shardedMap, allreduceCounts, onMain, onMainShared } from './sharded.js';
export { checkSharedDirectory, agreeAcrossRanks } from './shared-fs.js';
export { saveDistCheckpoint, loadDistCheckpoint, readDistState, DIST_STATE_FILE } from './checkpoint.js';
export type { DistState } from './checkpoint.js';
export { launch, freePort } from './launch.js';
export type { LaunchOptions, LaunchResult, WorkerExit } from './launch.js';
export { registerDistCommands } from './cli.js';
