/**
 * One writer per run directory. Whoever writes a run directory (the pipeline; rank 0 under
 * `mentor-kd launch`) holds `<output_dir>/run.lock` for the whole run: a JSON file with its pid,
 * host, start time and command, created exclusively (O_EXCL), so a second process on the same
 * directory is refused with a message naming the holder instead of both appending to the same
 * files or one deleting the other's stage folder.
 *
 * A lock left by a process that is gone (same host, pid no longer alive: a kill -9, an OOM kill)
 * is stale: the next run takes it over and says so through `log`, then resumes from the stages'
 * own checkpoints. A lock from another host cannot be checked from here and is never taken over:
 * the message says to delete the file once that process is known to be gone.
 */
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const RUN_LOCK_FILE = 'run.lock';

export interface RunLockHolder {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
}

/** Another live process holds the run directory. */
export class RunDirLockedError extends Error {
  constructor(
    readonly lockFile: string,
    readonly holder: RunLockHolder | undefined,
    reason: string,
  ) {
    super(`${lockFile}: ${reason}`);
    this.name = 'RunDirLockedError';
  }
}

function describeHolder(h: RunLockHolder): string {
  return `pid ${h.pid} on ${h.host}, started ${h.startedAt}${h.command ? ` (${h.command})` : ''}`;
}

function readHolder(path: string): RunLockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<RunLockHolder>;
    if (Number.isInteger(v.pid) && typeof v.host === 'string') {
      return { pid: v.pid!, host: v.host, startedAt: String(v.startedAt ?? '?'), command: String(v.command ?? '') };
    }
  } catch {
    // a torn lock (killed while writing it): treated as a holder we cannot identify
  }
  return { pid: -1, host: '?', startedAt: '?', command: '' };
}

/** Whether `pid` is a live process on this host (EPERM: alive, another user's). */
export function pidAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunLock {
  private released = false;

  private constructor(
    readonly path: string,
    readonly holder: RunLockHolder,
    private readonly token: string,
  ) {}

  /**
   * Takes `<dir>/run.lock` or throws a RunDirLockedError naming the holder. A stale lock (this
   * host, dead pid, or unreadable) is taken over, and `log` says whose it was.
   */
  static acquire(dir: string, options: { log?: (line: string) => void; command?: string } = {}): RunLock {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, RUN_LOCK_FILE);
    const holder: RunLockHolder = {
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      command: options.command ?? process.argv.slice(1).join(' '),
    };
    const token = JSON.stringify(holder);
    // Written aside then hard-linked into place: link() fails when the lock exists, and the lock is
    // never seen half-written.
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    writeFileSync(tmp, token + '\n');
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(tmp, path);
          return new RunLock(path, holder, token);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const other = readHolder(path);
        if (!other) continue; // released in between: try again
        const sameHost = other.host === holder.host;
        if (other.pid > 0 && (!sameHost || pidAlive(other.pid))) {
          throw new RunDirLockedError(
            path,
            other,
            `the run directory is in use by ${describeHolder(other)}; one process writes a run directory at a time. ` +
              (sameHost ? `Wait for it to finish (or stop it), or use another output_dir.` : `If that process is gone, delete ${path} and run again.`),
          );
        }
        // Stale: move it aside (atomic; only one taker gets this file), check it is the one judged
        // stale, then try the link again.
        const aside = `${path}.stale-${process.pid}`;
        try {
          renameSync(path, aside);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        const moved = readHolder(aside);
        if (moved && (moved.pid !== other.pid || moved.startedAt !== other.startedAt)) {
          // Another process took it over between our read and our rename: put its lock back.
          try {
            linkSync(aside, path);
          } catch {
            // it already re-created one; either way the directory is in use
          }
          rmSync(aside, { force: true });
          throw new RunDirLockedError(path, moved, `the run directory is in use by ${describeHolder(moved)}`);
        }
        rmSync(aside, { force: true });
        options.log?.(
          other.pid > 0
            ? `run lock: took over the stale lock of ${describeHolder(other)}: that process is gone; resuming from its stages`
            : `run lock: took over an unreadable lock file ${path}`,
        );
      }
      throw new RunDirLockedError(path, readHolder(path), 'could not take the run directory lock (other processes keep taking it)');
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Removes the lock if it is still ours (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (readFileSync(this.path, 'utf8').trim() === this.token) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
