/** Types of the distributed binding (native/bindings/dist_binding.cc). */
import { native } from '../native.js';
import type { NativeT5Model, Seq2SeqBatch } from '../model/t5-model.js';
import type { Tensor } from '../model/tensor.js';

export interface NativeGroupOptions {
  rank: number;
  worldSize: number;
  localRank?: number;
  masterAddr: string;
  masterPort: number;
  backend: 'gloo' | 'nccl';
  timeoutMs: number;
}

export interface NativeProcessGroup {
  rank(): number;
  size(): number;
  backend(): 'gloo' | 'nccl';
  transport(): string;
  timeoutMs(): number;
  broken(): boolean;
  allreduce(t: Tensor, op: 'sum' | 'max' | 'min'): Promise<Tensor>;
  broadcast(t: Tensor, root: number): Promise<Tensor>;
  allgather(t: Tensor): Promise<Tensor[]>;
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array[]>;
  broadcastBytes(bytes: Uint8Array, root: number): Promise<Uint8Array>;
  barrier(): Promise<void>;
  patientBarrier(what: string): Promise<void>;
  destroy(): Promise<void>;
}

export interface ReduceStats {
  /** Gradient buckets all-reduced. */
  buckets: number;
  /** Buckets whose all-reduce started during backward (overlapping it). */
  startedInBackward: number;
  /** Seconds spent waiting for the reductions after backward. */
  waitSeconds: number;
}

export interface ForwardBackwardResult {
  /** Mean cross-entropy over the union of every rank's target tokens. */
  loss: number;
  /** Mean cross-entropy over this rank's target tokens. */
  localLoss: number;
  localTokens: number;
  globalTokens: number;
  reduce: ReduceStats;
  seconds: number;
}

export interface BucketInfo {
  names: string[];
  numel: number;
  bytes: number;
  dtype: string;
}

export interface NativeDataParallel {
  forwardBackward(microBatches: Seq2SeqBatch[], options: { train?: boolean; zeroGrad?: boolean; overlap?: boolean }): Promise<ForwardBackwardResult>;
  allreduceGradients(options: { average?: 'mean' | 'sum'; localTokens?: number; scale?: number }): Promise<ReduceStats & { globalTokens?: number }>;
  broadcastParameters(root: number): Promise<void>;
  buckets(): BucketInfo[];
}

export interface DistBinding {
  /** False when the addon was built against a libtorch without c10d/Gloo. */
  available: boolean;
  nccl: boolean;
  ProcessGroup: { create(options: NativeGroupOptions): Promise<NativeProcessGroup> };
  DataParallel: { create(group: NativeProcessGroup, model: NativeT5Model, options: { bucketBytes?: number }): NativeDataParallel };
  sgdStep(model: NativeT5Model, lr: number): Promise<void>;
}

export function distBinding(): DistBinding {
  const d = native().dist as DistBinding | undefined;
  if (!d) throw new Error('mentor-kd: this native addon has no distributed binding (rebuild it: npm run build:native)');
  return d;
}
