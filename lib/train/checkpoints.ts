/**
 * Checkpoint directories: `<output>/checkpoint-<step>/` holding an HF-loadable model directory
 * (config.json, model.safetensors, generation_config.json, tokenizer files) plus
 * optimizer.safetensors, rng_state.safetensors and trainer_state.json.
 *
 * A checkpoint is written into a temporary sibling directory and renamed into place only when
 * complete, so a crash never leaves a half-written `checkpoint-<step>`; trainer_state.json is the
 * last file written, and a directory without it is not a checkpoint.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { StreamPosition } from './batches.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
const TMP_PREFIX = '.tmp-checkpoint-';

export interface LogEntry {
  step: number;
  [key: string]: number | string | boolean | null;
}

export interface TrainerState {
  format: 'mentor-kd-trainer-state';
  version: 1;
  global_step: number;
  /** Where the data stream continues. */
  data_position: StreamPosition;
  seed: number;
  total_steps: number;
  batch_size: number;
  gradient_accumulation: number;
  bucket_batches: number;
  train_fingerprint: string;
  soft_labels: 'none' | 'online' | 'offline';
  schedule: { kind: string; lr: number; warmup_steps: number; total_steps: number };
  best_metric: number | null;
  best_step: number | null;
  best_checkpoint: string | null;
  tokens_seen: number;
  log_history: LogEntry[];
  /** Data-parallel world size (absent: 1). */
  world_size?: number;
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** Complete checkpoints under outputDir, oldest first. */
export async function listCheckpoints(outputDir: string): Promise<{ step: number; dir: string }[]> {
  if (!existsSync(outputDir)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of await readdir(outputDir)) {
    const m = CHECKPOINT_RE.exec(name);
    if (!m) continue;
    const dir = join(outputDir, name);
    if (existsSync(join(dir, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  const all = await listCheckpoints(outputDir);
  return all.length ? all[all.length - 1]!.dir : undefined;
}

/** Removes temporary directories left by a run that died while saving. */
export async function removeStaleTemporaries(outputDir: string): Promise<string[]> {
  if (!existsSync(outputDir)) return [];
  const removed: string[] = [];
  for (const name of await readdir(outputDir)) {
    if (name.startsWith(TMP_PREFIX)) {
      await rm(join(outputDir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/**
 * Writes a checkpoint: `fill(tmpDir)` writes the files, then trainer_state.json goes in last and
 * the directory is renamed to checkpoint-<step> (replacing an older one of the same step).
 */
export async function writeCheckpoint(outputDir: string, step: number, state: TrainerState, fill: (dir: string) => Promise<void>): Promise<string> {
  await mkdir(outputDir, { recursive: true });
  const tmp = join(outputDir, `${TMP_PREFIX}${step}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    await writeFile(join(tmp, TRAINER_STATE_FILE), JSON.stringify(state, null, 2) + '\n');
    const final = join(outputDir, checkpointName(step));
    if (existsSync(final)) {
      const old = `${tmp}.old`;
      await rename(final, old);
      await rename(tmp, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    return final;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export async function readTrainerState(checkpointDir: string): Promise<TrainerState> {
  const path = join(checkpointDir, TRAINER_STATE_FILE);
  if (!existsSync(path)) throw new Error(`${checkpointDir}: not a complete checkpoint (${TRAINER_STATE_FILE} is missing)`);
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(path, 'utf8')) as TrainerState;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (state.format !== 'mentor-kd-trainer-state') throw new Error(`${path}: field 'format' must be 'mentor-kd-trainer-state'`);
  for (const key of ['global_step', 'seed', 'batch_size', 'gradient_accumulation', 'total_steps'] as const) {
    if (!Number.isInteger(state[key])) throw new Error(`${path}: field '${key}' must be an integer`);
  }
  if (!state.data_position || !Number.isInteger(state.data_position.epoch) || !Number.isInteger(state.data_position.batch)) {
    throw new Error(`${path}: field 'data_position' must be {epoch, batch}`);
  }
  return state;
}

/** Deletes all but the newest `saveTotalLimit` checkpoints (save_total_limit; 0 keeps all), never one in `protect` (the best). */
export async function pruneCheckpoints(outputDir: string, saveTotalLimit: number, protect: ReadonlySet<string>): Promise<string[]> {
  if (!(saveTotalLimit > 0)) return [];
  const all = await listCheckpoints(outputDir);
  const removable = all.slice(0, Math.max(0, all.length - saveTotalLimit)).filter((c) => !protect.has(resolve(c.dir)));
  for (const c of removable) await rm(c.dir, { recursive: true, force: true });
  return removable.map((c) => c.dir);
}
