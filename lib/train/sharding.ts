/**
 * train.sharding (zero1 / zero2) in the training loop: the checks made before any work, and the
 * sharded optimizer's part of a checkpoint. Every rank holds only its slice of the AdamW state
 * (native/parallel/zero_optimizer.h), so every rank writes its own
 * `optimizer-rank<R>-of-<W>.safetensors`; rank 0 writes the model once and moves the others'
 * shards into the checkpoint before it is renamed into place (output_dir is shared by the ranks,
 * as resume already requires).
 */
import { existsSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Sharding } from '../config/train-settings.js';
import type { ProcessGroup } from '../parallel/process-group.js';
import type { TrainEngine } from './engine.js';

/**
 * Refuses train.sharding without a process group (one line naming the field, before any work) and
 * warns when the group has one rank (nothing is sharded then; the run is DDP's).
 */
export function checkSharding(sharding: Sharding, group: ProcessGroup | undefined, log: (line: string) => void): void {
  if (sharding === 'none') return;
  if (!group) {
    throw new Error(
      `train: train.sharding '${sharding}' needs data parallelism (parallel: a process group, e.g. under mentor-kd launch); without one there is nothing to shard over — use train.sharding 'none'`,
    );
  }
  if (group.worldSize === 1) log(`mentor-kd: train.sharding '${sharding}' on a world size of 1 shards nothing: every rank holds all optimizer state`);
}

/** Where the ranks other than 0 put their shards for checkpoint `step` (removed with the stale temporaries after a crash). */
function stagingDir(outputDir: string, step: number): string {
  return join(outputDir, `.tmp-checkpoint-${step}-optimizer-shards`);
}

/**
 * Every rank but 0 writes its optimizer shard (rank 0's goes in with saveCheckpoint); all ranks then
 * learn whether every write succeeded, so no rank goes on after a failed one. Returns what rank 0
 * calls while filling the checkpoint (undefined without sharding).
 */
export async function saveOptimizerShards(
  engine: TrainEngine,
  group: ProcessGroup | undefined,
  sharding: Sharding,
  outputDir: string,
  step: number,
): Promise<{ moveInto(dir: string): Promise<void> } | undefined> {
  if (sharding === 'none' || !group) return undefined;
  const staging = stagingDir(outputDir, step);
  let failure: string | null = null;
  if (!group.isMain) {
    try {
      await engine.saveOptimizerShard(staging);
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
  }
  const failures = await group.allgatherObject(failure);
  const failed = failures.findIndex((f) => f !== null);
  if (failed >= 0) throw new Error(`train: rank ${failed} could not write its optimizer shard (train.sharding ${sharding}): ${failures[failed]}`);
  return {
    async moveInto(dir: string): Promise<void> {
      if (!existsSync(staging)) return;
      for (const name of await readdir(staging)) await rename(join(staging, name), join(dir, name));
      await rm(staging, { recursive: true, force: true });
    },
  };
}
