/**
 * Test helper (was lib/parallel/checkpoint.ts; the trainer's checkpoints are lib/train/checkpoints.ts):
 * checkpoints of a hand-written data-parallel loop: rank 0 writes them (the replicas are identical), every rank
 * resumes from them. `dist_state.json` records the world size and the caller's position (step,
 * epoch, …); resuming with another world size is refused, because the shards and the effective
 * batch depend on it.
 *
 * Loading needs no shared filesystem: rank 0 reads the directory, broadcasts the state and config,
 * and the caller broadcasts the parameters (DataParallel.broadcastParameters) after building the
 * other ranks' models from that config.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { T5Model, type LoadOptions } from '../../lib/model/t5-model.js';
import type { ProcessGroup } from '../../lib/parallel/process-group.js';

export const DIST_STATE_FILE = 'dist_state.json';

export interface DistState {
  format: 'mentor-kd-dist-state';
  world_size: number;
  step: number;
  /** Anything else the training loop needs to continue (epoch, data position, …). */
  [key: string]: unknown;
}

/**
 * Rank 0 writes the model and `state` into dir (via a temporary sibling, renamed when complete);
 * the others wait for it. Every rank throws if rank 0 failed.
 */
export async function saveDistCheckpoint(group: ProcessGroup, dir: string, model: T5Model, state: { step: number; [key: string]: unknown }): Promise<void> {
  let failure: string | null = null;
  if (group.isMain) {
    const tmp = join(dirname(dir), `.tmp-${basename(dir)}-${process.pid}`);
    try {
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      await model.save(tmp);
      const full: DistState = { ...state, format: 'mentor-kd-dist-state', world_size: group.worldSize, step: state.step };
      await writeFile(join(tmp, DIST_STATE_FILE), JSON.stringify(full, null, 2) + '\n');
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (err) {
      failure = `rank 0 could not write checkpoint ${dir}: ${err instanceof Error ? err.message : String(err)}`;
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  }
  const status = await group.broadcastObject<string | null>(failure, 0);
  if (status) throw new Error(status);
}

/** Reads and checks dist_state.json (any rank with access to dir). */
export async function readDistState(dir: string, worldSize: number): Promise<DistState> {
  const path = join(dir, DIST_STATE_FILE);
  if (!existsSync(path)) throw new Error(`${dir}: not a distributed checkpoint (${DIST_STATE_FILE} is missing)`);
  let state: DistState;
  try {
    state = JSON.parse(await readFile(path, 'utf8')) as DistState;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (state.format !== 'mentor-kd-dist-state') throw new Error(`${path}: field 'format' must be 'mentor-kd-dist-state'`);
  if (!Number.isInteger(state.world_size) || state.world_size < 1) throw new Error(`${path}: field 'world_size' must be a positive integer`);
  if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`${path}: field 'step' must be a non-negative integer`);
  if (state.world_size !== worldSize) {
    throw new Error(
      `${dir} was written by a job with WORLD_SIZE=${state.world_size}, this job has WORLD_SIZE=${worldSize}: ` +
        `resume with the same world size (the data shards and the effective batch depend on it)`,
    );
  }
  return state;
}

/**
 * Resumes from a checkpoint written by saveDistCheckpoint: rank 0 loads it, the others build the
 * same architecture from its config. Call DataParallel.broadcastParameters() next so every
 * replica holds rank 0's parameters.
 */
export async function loadDistCheckpoint(group: ProcessGroup, dir: string, options: LoadOptions = {}): Promise<{ model: T5Model; state: DistState }> {
  let model: T5Model | undefined;
  let payload: { state: DistState; config: Record<string, unknown> } | { error: string } | undefined;
  if (group.isMain) {
    try {
      const state = await readDistState(dir, group.worldSize);
      model = await T5Model.load(dir, options);
      payload = { state, config: model.config() };
    } catch (err) {
      payload = { error: err instanceof Error ? err.message : String(err) };
    }
  }
  const got = await group.broadcastObject(payload, 0);
  if ('error' in got) {
    model?.dispose();
    throw new Error(group.isMain ? got.error : `rank 0 could not resume: ${got.error}`);
  }
  if (!model) model = await T5Model.fromConfig(got.config, options);
  return { model, state: got.state };
}
