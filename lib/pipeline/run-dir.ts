/**
 * The run directory and its stages. Each stage works in `stages/<name>/` and is keyed by a hash of
 * everything it depends on (its settings and the keys of the stages it reads). A finished stage
 * writes `manifest.json` last; a rerun with the same key skips it. A stage killed half-way keeps its
 * folder (same key), so it can resume from its own checkpoints; a stage whose inputs changed starts
 * from an empty folder.
 *
 * Under a process group (`mentor-kd launch`), rank 0 owns the folder: it decides whether a stage
 * is done, prepares its folder and writes its manifest. A stage runs on rank 0 alone while the
 * others wait (`ranks: 'main'`: data, teacher calls, tokenizer), or on every rank (`'all'`:
 * training and generation, which shard their work and write through rank 0). The run directory
 * must be on a filesystem every rank sees (one machine, or a shared one), as torch's checkpoints.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessGroup } from '../parallel/process-group.js';
import { onMainShared } from '../parallel/sharded.js';

export interface StageManifest<S> {
  stage: string;
  key: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  summary: S;
  /** What the key hashes: the stage's settings and the keys of the stages it read (absent in runs made before it was recorded). */
  inputs?: unknown;
  /** Threads, CPU, libtorch, BLAS when the stage ran (lib/pipeline/reproducibility.ts); absent in earlier runs. */
  environment?: unknown;
}

export function hashKey(material: unknown): string {
  return createHash('sha256').update(JSON.stringify(material)).digest('hex').slice(0, 16);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, path);
}

export interface StageRun<S> {
  manifest: StageManifest<S>;
  /** True when a finished earlier run was reused. */
  skipped: boolean;
  dir: string;
}

export interface StageOptions {
  /** Who runs `work` under a process group: rank 0 alone (default) or every rank. */
  ranks?: 'main' | 'all';
}

export class RunDir {
  /**
   * `readOnly`: reuse finished stages only — a stage that is not finished with the same key throws
   * {@link StageNotFinishedError} and nothing is created, deleted or run (`mentor-kd report`).
   */
  constructor(
    readonly root: string,
    private readonly group?: ProcessGroup,
    private readonly readOnly = false,
    /** Recorded in every manifest this RunDir writes. */
    private readonly environment?: unknown,
  ) {
    if (!readOnly && (!group || group.isMain)) mkdirSync(join(root, 'stages'), { recursive: true });
  }

  /** True where files are written: one process, or rank 0 of a group. */
  get isMain(): boolean {
    return !this.group || this.group.isMain;
  }

  stageDir(name: string): string {
    return join(this.root, 'stages', name);
  }

  manifest<S>(name: string): StageManifest<S> | undefined {
    const p = join(this.stageDir(name), 'manifest.json');
    if (!existsSync(p)) return undefined;
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as StageManifest<S>;
    } catch (e) {
      throw new Error(`${p}: not valid JSON (${(e as Error).message}); delete the stage folder to redo the stage`, { cause: e });
    }
  }

  /** Runs `work` in the stage's folder unless a finished run with the same key is there; `S` is the stage's summary type. */
  async stage<S>(name: string, keyMaterial: unknown, work: (dir: string) => Promise<S>, options: StageOptions = {}): Promise<StageRun<S>> {
    const key = hashKey(keyMaterial);
    const dir = this.stageDir(name);
    if (this.readOnly) {
      const done = this.manifest<S>(name);
      if (done && done.key === key) return { manifest: done, skipped: true, dir };
      throw new StageNotFinishedError(name, done ? 'stale' : existsSync(dir) ? 'unfinished' : 'not run');
    }
    const group = this.group && this.group.worldSize > 1 ? this.group : undefined;
    const done = await onMainShared(group, () => this.prepare<S>(name, key), `stage ${name}: prepare`);
    if (done) return { manifest: done, skipped: true, dir };
    const started = new Date();
    const finish = (summary: S): StageManifest<S> => {
      const finished = new Date();
      const manifest: StageManifest<S> = {
        stage: name,
        key,
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        durationMs: finished.getTime() - started.getTime(),
        summary,
        inputs: keyMaterial,
        ...(this.environment !== undefined ? { environment: this.environment } : {}),
      };
      writeJsonAtomic(join(dir, 'manifest.json'), manifest);
      return manifest;
    };
    let manifest: StageManifest<S>;
    if (group && options.ranks === 'all') {
      const summary = await work(dir);
      manifest = await onMainShared(group, () => finish(summary), `stage ${name}: finish`);
    } else {
      manifest = await onMainShared(group, async () => finish(await work(dir)), `stage ${name}`);
    }
    return { manifest, skipped: false, dir };
  }

  /** The finished manifest to reuse, or undefined after readying the folder for (re)running. */
  private prepare<S>(name: string, key: string): StageManifest<S> | undefined {
    const dir = this.stageDir(name);
    const done = this.manifest<S>(name);
    if (done && done.key === key) return done;
    const keyFile = join(dir, 'key');
    const partial = existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim() === key;
    if (!partial) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(keyFile, key + '\n');
    } else if (done) {
      rmSync(join(dir, 'manifest.json'), { force: true });
    }
    return undefined;
  }
}

/** A stage a read-only run needed but found not finished (or finished for other inputs). */
export class StageNotFinishedError extends Error {
  constructor(
    readonly stage: string,
    readonly state: 'not run' | 'unfinished' | 'stale',
  ) {
    const why =
      state === 'stale'
        ? 'finished for other inputs (the configuration or an earlier stage changed since)'
        : state === 'unfinished'
          ? 'started but not finished'
          : 'not run yet';
    super(`stage ${stage}: ${why}`);
    this.name = 'StageNotFinishedError';
  }
}
