/**
 * The torchrun environment contract: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK
 * (and LOCAL_WORLD_SIZE, GROUP_RANK when present). torchrun, `mentor-kd launch` and a Kubernetes
 * PyTorchJob set these; under Slurm (srun) RANK/WORLD_SIZE/LOCAL_RANK fall back to SLURM_PROCID /
 * SLURM_NTASKS / SLURM_LOCALID, and MASTER_ADDR/MASTER_PORT must still be exported by the job script.
 */

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  /** Node index (GROUP_RANK / NODE_RANK), 0 when not given. */
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** Where the values came from. */
  source: 'torchrun' | 'slurm';
}

const CONTRACT = 'RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT';

function intVar(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') throw new Error(`${name} is not set (a distributed job needs ${CONTRACT})`);
  const v = Number(raw.trim());
  if (!Number.isInteger(v) || v < min) throw new Error(`${name}=${JSON.stringify(raw)} is not an integer >= ${min}`);
  return v;
}

function optionalInt(env: NodeJS.ProcessEnv, name: string, min: number, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return intVar(env, name, min);
}

/** True when the environment describes a distributed job (torchrun-style or Slurm with several tasks). */
export function isDistributedEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.WORLD_SIZE !== undefined || env.RANK !== undefined) return true;
  return env.SLURM_PROCID !== undefined && Number(env.SLURM_NTASKS ?? '1') > 1 && env.MASTER_ADDR !== undefined;
}

/**
 * Reads and validates the contract. Every error names the variable, e.g.
 * `RANK=3 is not < WORLD_SIZE=2`. Without any of the variables this is a single process (rank 0 of 1).
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  let source: DistEnv['source'] = 'torchrun';
  let e = env;
  if (env.RANK === undefined && env.WORLD_SIZE === undefined && env.SLURM_PROCID !== undefined && env.MASTER_ADDR !== undefined) {
    source = 'slurm';
    e = {
      ...env,
      RANK: env.SLURM_PROCID,
      WORLD_SIZE: env.SLURM_NTASKS,
      LOCAL_RANK: env.SLURM_LOCALID ?? '0',
      LOCAL_WORLD_SIZE: env.SLURM_NTASKS_PER_NODE?.replace(/\(.*$/, ''),
    };
  }
  if (!isDistributedEnv(e)) {
    return {
      rank: 0,
      worldSize: 1,
      localRank: 0,
      localWorldSize: 1,
      nodeRank: 0,
      masterAddr: e.MASTER_ADDR ?? '127.0.0.1',
      masterPort: optionalInt(e, 'MASTER_PORT', 1, 29500),
      source,
    };
  }
  const worldSize = intVar(e, 'WORLD_SIZE', 1);
  const rank = intVar(e, 'RANK', 0);
  if (rank >= worldSize) throw new Error(`RANK=${rank} is not < WORLD_SIZE=${worldSize}`);
  // A Kubernetes PyTorchJob without torchrun runs one process per pod and sets no LOCAL_RANK.
  const localRank = optionalInt(e, 'LOCAL_RANK', 0, 0);
  const localWorldSize = optionalInt(e, 'LOCAL_WORLD_SIZE', 1, e.LOCAL_RANK === undefined ? 1 : worldSize);
  if (localRank >= localWorldSize) throw new Error(`LOCAL_RANK=${localRank} is not < LOCAL_WORLD_SIZE=${localWorldSize}`);
  if (localWorldSize > worldSize) throw new Error(`LOCAL_WORLD_SIZE=${localWorldSize} is larger than WORLD_SIZE=${worldSize}`);
  const nodeRank = optionalInt(e, 'GROUP_RANK', 0, optionalInt(e, 'NODE_RANK', 0, 0));
  const masterAddr = (e.MASTER_ADDR ?? '').trim();
  if (!masterAddr) throw new Error(`MASTER_ADDR is not set (a distributed job needs ${CONTRACT})`);
  const masterPort = intVar(e, 'MASTER_PORT', 1);
  if (masterPort > 65535) throw new Error(`MASTER_PORT=${masterPort} is not a TCP port (1..65535)`);
  return { rank, worldSize, localRank, localWorldSize, nodeRank, masterAddr, masterPort, source };
}
