/**
 * `mentor-kd launch`: starts N local workers with the torchrun environment (MASTER_ADDR,
 * MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK), forwards SIGINT /
 * SIGTERM / SIGHUP to them, and when one worker fails (non-zero exit or killed by a signal) stops
 * the others — SIGTERM, then SIGKILL after a grace period — and fails naming that rank.
 *
 * Threads: the cores are divided among the local workers (MENTOR_KD_THREADS and OMP_NUM_THREADS,
 * unless already set), as torchrun sets OMP_NUM_THREADS=1: N processes × all cores each would
 * oversubscribe the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

export interface LaunchOptions {
  /** Workers on this node (torchrun's --nproc-per-node). */
  nprocPerNode: number;
  /** Nodes in the job (default 1). */
  nnodes?: number;
  /** This node's index (default 0). */
  nodeRank?: number;
  /** Rank 0's address (default 127.0.0.1; required with several nodes). */
  masterAddr?: string;
  /** Default: a free port on a single node, 29500 (torchrun's) with several nodes. */
  masterPort?: number;
  command: string;
  args?: string[];
  /** Base environment of the workers (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds between SIGTERM and SIGKILL when stopping workers (default 5000). */
  graceMs?: number;
  /** Where the launcher's own lines go (default stderr). */
  log?: (line: string) => void;
  /** Forward SIGINT/SIGTERM/SIGHUP received by this process to the workers (default true). */
  forwardSignals?: boolean;
}

export interface WorkerExit {
  rank: number;
  localRank: number;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every worker exited 0. */
  exitCode: number;
  /** The first worker that failed, if any (the one the job was stopped for). */
  failed: WorkerExit | null;
  /** The signal received by the launcher that stopped the job, if any. */
  interrupted: NodeJS.Signals | null;
  exits: WorkerExit[];
  masterPort: number;
  /** One line saying what happened (names the failed rank). */
  message: string;
}

function intOption(name: string, v: number | undefined, fallback: number, min: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < min) throw new Error(`launch: ${name} must be an integer >= ${min}, got ${v}`);
  return x;
}

/** A TCP port free on this machine right now (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function describeExit(e: WorkerExit): string {
  const who = `rank ${e.rank} (local rank ${e.localRank}, pid ${e.pid ?? '?'})`;
  return e.signal ? `${who} was killed by ${e.signal}` : `${who} exited with code ${e.code}`;
}

export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const nproc = intOption('nproc-per-node', options.nprocPerNode, 1, 1);
  const nnodes = intOption('nnodes', options.nnodes, 1, 1);
  const nodeRank = intOption('node-rank', options.nodeRank, 0, 0);
  if (nodeRank >= nnodes) throw new Error(`launch: node-rank=${nodeRank} is not < nnodes=${nnodes}`);
  const graceMs = intOption('grace-ms', options.graceMs, 5000, 0);
  if (!options.command) throw new Error('launch: no command to run (mentor-kd launch --nproc-per-node N -- <command> [args...])');
  if (nnodes > 1 && !options.masterAddr) throw new Error('launch: --master-addr is required with --nnodes > 1 (the address of node 0)');
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  let masterPort = options.masterPort;
  if (masterPort === undefined) masterPort = nnodes === 1 ? await freePort() : 29500;
  intOption('master-port', masterPort, 0, 1);
  if (masterPort > 65535) throw new Error(`launch: master-port=${masterPort} is not a TCP port (1..65535)`);
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.env ?? process.env;
  const worldSize = nproc * nnodes;
  const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));

  const exits: WorkerExit[] = [];
  const children: { child: ChildProcess; rank: number; localRank: number; done: boolean }[] = [];
  let failed: WorkerExit | null = null;
  let interrupted: NodeJS.Signals | null = null;
  let killTimer: NodeJS.Timeout | undefined;

  const stopAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (!c.done) c.child.kill(signal);
    if (!killTimer && graceMs >= 0) {
      killTimer = setTimeout(() => {
        for (const c of children) {
          if (!c.done) {
            log(`mentor-kd launch: rank ${c.rank} did not stop within ${graceMs} ms of ${signal}; sending SIGKILL`);
            c.child.kill('SIGKILL');
          }
        }
      }, graceMs);
      killTimer.unref();
    }
  };

  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!interrupted) {
      interrupted = sig;
      log(`mentor-kd launch: received ${sig}; forwarding it to ${children.filter((c) => !c.done).length} worker(s)`);
    }
    stopAll(sig);
  };
  if (options.forwardSignals !== false) for (const s of signals) process.on(s, onSignal);

  try {
    await new Promise<void>((resolveAll) => {
      let running = nproc;
      for (let localRank = 0; localRank < nproc; localRank++) {
        const rank = nodeRank * nproc + localRank;
        const env: NodeJS.ProcessEnv = {
          ...base,
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          WORLD_SIZE: String(worldSize),
          RANK: String(rank),
          LOCAL_RANK: String(localRank),
          LOCAL_WORLD_SIZE: String(nproc),
          GROUP_RANK: String(nodeRank),
          NODE_RANK: String(nodeRank),
          MENTOR_KD_THREADS: base.MENTOR_KD_THREADS ?? threads,
          OMP_NUM_THREADS: base.OMP_NUM_THREADS ?? threads,
        };
        const child = spawn(options.command, options.args ?? [], { env, stdio: 'inherit' });
        const entry = { child, rank, localRank, done: false };
        children.push(entry);
        const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
          if (entry.done) return;
          entry.done = true;
          const exit: WorkerExit = { rank, localRank, pid: child.pid, code, signal };
          exits.push(exit);
          if ((code !== 0 || signal) && !failed && !interrupted) {
            failed = exit;
            const others = children.filter((c) => !c.done).length;
            log(`mentor-kd launch: ${describeExit(exit)}${others ? `; stopping the other ${others} worker(s)` : ''}`);
            stopAll('SIGTERM');
          }
          if (--running === 0) resolveAll();
        };
        child.once('error', (err) => {
          log(`mentor-kd launch: rank ${rank} could not start ${options.command}: ${err.message}`);
          finish(127, null);
        });
        child.once('exit', finish);
      }
    });
  } finally {
    if (killTimer) clearTimeout(killTimer);
    if (options.forwardSignals !== false) for (const s of signals) process.off(s, onSignal);
  }

  exits.sort((a, b) => a.rank - b.rank);
  const f = failed as WorkerExit | null;
  const sig = interrupted as NodeJS.Signals | null;
  let exitCode = 0;
  let message = `all ${nproc} worker(s) exited 0`;
  if (f) {
    exitCode = f.code && f.code > 0 ? f.code : 1;
    message = `job failed: ${describeExit(f)}`;
  } else if (sig) {
    exitCode = sig === 'SIGINT' ? 130 : sig === 'SIGTERM' ? 143 : 129;
    message = `job stopped by ${sig}`;
  }
  return { exitCode, failed: f, interrupted: sig, exits, masterPort, message };
}
