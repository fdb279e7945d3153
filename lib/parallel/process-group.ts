/**
 * A process group on libtorch's c10d (TCPStore rendezvous; Gloo on CPU, NCCL on CUDA), built from
 * the torchrun environment contract.
 *
 * Every collective is a Promise resolved on a native worker thread: the event loop never blocks,
 * and collectives run in the order they were called (the native side enforces it), as c10d
 * requires on every rank. A collective that fails — a peer died, or did not arrive within the
 * timeout — rejects with an Error naming the rank(s), e.g.
 * `dist: 'allreduce' (collective #7) failed on rank 0 of 2: rank 1 did not arrive within the 30000 ms timeout ...`,
 * and the group is unusable afterwards (end the job: the launcher stops the others).
 */
import { availableParallelism } from 'node:os';
import { callNative, native } from '../native/loader.js';
import type { NativeProcessGroup } from '../native/binding.js';
import type { Tensor } from '../model/tensor.js';
import { distBackendFromEnv, distTimeoutMsFromEnv, glooSocketIfname } from '../runtime/env.js';
import { readDistEnv, type DistEnv } from './env.js';

export type Backend = 'gloo' | 'nccl';

export interface InitOptions {
  /** Default: from the environment (readDistEnv). */
  rank?: number;
  worldSize?: number;
  localRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** 'auto' (default): NCCL when CUDA is available and the build has it, else Gloo. */
  backend?: Backend | 'auto';
  /** Rendezvous and per-collective timeout (default MENTOR_KD_DIST_TIMEOUT_MS or 30 minutes, as torch). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function timeoutFrom(options: InitOptions, env: NodeJS.ProcessEnv): number {
  if (options.timeoutMs !== undefined) {
    if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1) throw new Error(`timeoutMs must be a positive integer, got ${options.timeoutMs}`);
    return options.timeoutMs;
  }
  return distTimeoutMsFromEnv(env) ?? 30 * 60 * 1000;
}

export class ProcessGroup {
  private constructor(
    private handle: NativeProcessGroup | null,
    /** The contract this group was built from (rank, sizes, node, master). */
    readonly env: DistEnv,
  ) {}

  /**
   * Joins the group: rank 0 hosts the TCPStore on MASTER_ADDR:MASTER_PORT, every rank waits for
   * all WORLD_SIZE ranks (up to the timeout; the error names the missing ranks).
   */
  static async init(options: InitOptions = {}): Promise<ProcessGroup> {
    const penv = options.env ?? process.env;
    const fromEnv = readDistEnv(penv);
    const env: DistEnv = {
      ...fromEnv,
      rank: options.rank ?? fromEnv.rank,
      worldSize: options.worldSize ?? fromEnv.worldSize,
      localRank: options.localRank ?? fromEnv.localRank,
      masterAddr: options.masterAddr ?? fromEnv.masterAddr,
      masterPort: options.masterPort ?? fromEnv.masterPort,
    };
    if (env.rank >= env.worldSize) throw new Error(`RANK=${env.rank} is not < WORLD_SIZE=${env.worldSize}`);
    const requested = options.backend ?? ((distBackendFromEnv(penv) as Backend | 'auto' | undefined) || 'auto');
    if (!['auto', 'gloo', 'nccl'].includes(requested)) throw new Error(`backend must be 'auto', 'gloo' or 'nccl', got '${requested}'`);
    const d = native().parallel;
    if (!d.available) {
      throw new Error(
        "mentor-kd: this build has no distributed support (libtorch without c10d/Gloo); rebuild against libtorch-dev + libgloo-dev or PyTorch's libtorch",
      );
    }
    const backend: Backend = requested === 'auto' ? (d.nccl && native().runtime.info().cudaAvailable ? 'nccl' : 'gloo') : requested;
    const timeoutMs = timeoutFrom(options, penv);
    const h = await callNative(() =>
      d.ProcessGroup.create({
        rank: env.rank,
        worldSize: env.worldSize,
        localRank: env.localRank,
        masterAddr: env.masterAddr,
        masterPort: env.masterPort,
        backend,
        timeoutMs,
        socketIfname: glooSocketIfname(penv),
      }),
    );
    return new ProcessGroup(h, env);
  }

  /** The native handle, for DataParallel. */
  get native(): NativeProcessGroup {
    if (!this.handle) throw new Error('ProcessGroup: used after destroy()');
    return this.handle;
  }

  get rank(): number {
    return this.env.rank;
  }
  get worldSize(): number {
    return this.env.worldSize;
  }
  get localRank(): number {
    return this.env.localRank;
  }
  /** Rank 0: the one that writes checkpoints and logs. */
  get isMain(): boolean {
    return this.env.rank === 0;
  }
  get backend(): Backend {
    return this.native.backend();
  }
  /**
   * Where this rank's collectives connect, in words: `gloo on 127.0.0.1 (MASTER_ADDR is loopback)`,
   * `gloo on 10.0.0.2 (the local address that routes to MASTER_ADDR=10.0.0.1)`, the
   * GLOO_SOCKET_IFNAME interfaces, or `nccl`.
   */
  get transport(): string {
    return this.native.transport();
  }
  get timeoutMs(): number {
    return this.native.timeoutMs();
  }
  /** True after a failed collective: the group cannot be used any more. */
  get broken(): boolean {
    return this.native.broken();
  }
  /** The device this rank should put its model on: cuda:LOCAL_RANK for NCCL, cpu for Gloo. */
  get device(): 'cpu' | `cuda:${number}` {
    return this.backend === 'nccl' ? `cuda:${this.localRank}` : 'cpu';
  }

  /** Element-wise reduction of a tensor of the same shape on every rank. */
  allreduce(t: Tensor, op: 'sum' | 'max' | 'min' = 'sum'): Promise<Tensor> {
    return callNative(() => this.native.allreduce(t, op));
  }

  /** Element-wise reduction of numbers (float64). */
  async allreduceNumbers(values: readonly number[], op: 'sum' | 'max' | 'min' = 'sum'): Promise<number[]> {
    const r = await this.allreduce({ data: Float64Array.from(values), shape: [values.length] }, op);
    return Array.from(r.data as Float64Array);
  }

  /** Rank root's tensor on every rank (each passes a tensor of the same shape and dtype). */
  broadcast(t: Tensor, root = 0): Promise<Tensor> {
    return callNative(() => this.native.broadcast(t, root));
  }

  /** One tensor per rank, in rank order (same shape everywhere). */
  allgather(t: Tensor): Promise<Tensor[]> {
    return callNative(() => this.native.allgather(t));
  }

  /** Every rank's JSON-serialisable value, in rank order (sizes may differ). */
  async allgatherObject<T>(value: T): Promise<T[]> {
    const parts = await callNative(() => this.native.allgatherBytes(encoder.encode(JSON.stringify(value ?? null))));
    return parts.map((p) => JSON.parse(decoder.decode(p)) as T);
  }

  /** Rank root's JSON-serialisable value on every rank (the others' argument is ignored). */
  async broadcastObject<T>(value: T | undefined, root = 0): Promise<T> {
    const bytes = this.rank === root ? encoder.encode(JSON.stringify(value ?? null)) : new Uint8Array(0);
    const out = await callNative(() => this.native.broadcastBytes(bytes, root));
    return JSON.parse(decoder.decode(out)) as T;
  }

  barrier(): Promise<void> {
    return callNative(() => this.native.barrier());
  }

  /**
   * A barrier with no timeout while the ranks not yet arrived are alive: for waiting on work of
   * unbounded length elsewhere (rank 0 collecting teacher rationales for hours). It meets through
   * the store; a rank whose heartbeat stops makes it fail with an Error naming that rank. `what`
   * names the wait in that error and in the other ranks' diagnostics.
   */
  patientBarrier(what = 'patient barrier'): Promise<void> {
    return callNative(() => this.native.patientBarrier(what));
  }

  /**
   * Leaves the group after the collectives already called. Rank 0 hosts the store, so it waits
   * (up to 10 s) for the others to leave first. Idempotent.
   */
  async destroy(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await callNative(() => h.destroy());
  }
}

/** Joins the group the environment describes (see ProcessGroup.init). */
export function initProcessGroup(options: InitOptions = {}): Promise<ProcessGroup> {
  return ProcessGroup.init(options);
}

/**
 * Intra-op threads for one of `localWorldSize` processes on this machine: the cores divided
 * between them (the launcher exports this as MENTOR_KD_THREADS already).
 */
export function threadsPerProcess(localWorldSize: number): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, localWorldSize)));
}
