/**
 * The completion cache: every finished teacher completion is appended to a JSONL file as one
 * line, in one write, as soon as it arrives, so a killed run loses nothing it was answered.
 * Entries are keyed by a hash of model, endpoint, prompt, sampling parameters and sample index;
 * a rerun reads the file and asks only for keys it lacks. A last line cut short by a crash
 * ("torn") is detected, reported and cut off; a bad line elsewhere is corruption and an error.
 * A lock file keeps two collectors from appending to one cache at once.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import type { TokenUsage } from './usage.js';

export type TeacherApi = 'chat' | 'completions';

export interface SamplingParams {
  temperature: number;
  maxTokens: number;
  topP?: number;
  /** Sent as OpenAI's `seed`; omitted when undefined. */
  seed?: number;
  stop?: string[];
}

export interface CacheKeyParts {
  model: string;
  api: TeacherApi;
  prompt: string;
  sampling: SamplingParams;
  sampleIndex: number;
}

/** SHA-256 over a canonical JSON of the parts: same request, same key, across runs and machines. */
export function cacheKey(parts: CacheKeyParts): string {
  const s = parts.sampling;
  const canonical = JSON.stringify([
    parts.model,
    parts.api,
    parts.prompt,
    s.temperature,
    s.maxTokens,
    s.topP ?? null,
    s.seed ?? null,
    s.stop ?? null,
    parts.sampleIndex,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

export interface CacheEntry {
  key: string;
  model: string;
  stage: 'rationale' | 'answer';
  questionId?: string;
  sampleIndex: number;
  text: string;
  finishReason: string | null;
  usage: TokenUsage;
  /** ISO time the completion arrived. */
  at: string;
}

export interface CacheOpenOptions {
  /** fsync after every line: survives power loss, not just a killed process; slower. */
  fsync?: boolean;
  /** Skip (and count) unreadable lines before the last instead of failing. */
  skipCorrupt?: boolean;
  /** Take the lock file (default true). */
  lock?: boolean;
}

function isEntry(v: unknown): v is CacheEntry {
  const e = v as CacheEntry;
  return (
    !!e &&
    typeof e === 'object' &&
    typeof e.key === 'string' &&
    typeof e.text === 'string' &&
    typeof e.sampleIndex === 'number' &&
    (e.stage === 'rationale' || e.stage === 'answer')
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class CompletionCache {
  readonly path: string;
  /** 1 when the file ended in a torn line (cut off on open), else 0. */
  readonly tornLines: number;
  /** Unreadable lines skipped with `skipCorrupt`. */
  readonly skippedLines: number;
  /** Entries found in the file when it was opened. */
  readonly loaded: number;
  private readonly entries = new Map<string, CacheEntry>();
  private fd: number | undefined;
  private readonly lockPath: string | undefined;
  private readonly fsync: boolean;
  private readonly releaseOnExit = (): void => this.releaseLock();

  private constructor(path: string, options: CacheOpenOptions) {
    this.path = path;
    this.fsync = Boolean(options.fsync);
    if (options.lock !== false) {
      this.lockPath = `${path}.lock`;
      this.takeLock();
    }
    try {
      this.fd = openSync(path, 'a+');
      const { torn, skipped } = this.load(options);
      this.tornLines = torn;
      this.skippedLines = skipped;
      this.loaded = this.entries.size;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Open (creating if needed) and load a cache file. */
  static open(path: string, options: CacheOpenOptions = {}): CompletionCache {
    return new CompletionCache(path, options);
  }

  private takeLock(): void {
    const lock = this.lockPath!;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(lock, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        process.once('exit', this.releaseOnExit);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(lock, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
          throw new Error(`cache ${this.path} is in use by process ${pid} (remove ${lock} if no collector is running)`, { cause: err });
        }
        unlinkSync(lock); // stale: its owner died (e.g. killed) without cleaning up
      }
    }
    throw new Error(`could not lock cache ${this.path}`);
  }

  private releaseLock(): void {
    if (!this.lockPath) return;
    process.removeListener('exit', this.releaseOnExit);
    try {
      if (existsSync(this.lockPath) && readFileSync(this.lockPath, 'utf8').trim() === String(process.pid)) unlinkSync(this.lockPath);
    } catch {
      // best effort: a stale lock is detected by pid next time
    }
  }

  private load(options: CacheOpenOptions): { torn: number; skipped: number } {
    const fd = this.fd!;
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) off += readSync(fd, buf, off, size - off, off);
    const lastNewline = buf.lastIndexOf(0x0a);
    const complete = buf.subarray(0, lastNewline + 1).toString('utf8');
    const tail = buf.subarray(lastNewline + 1).toString('utf8');
    let skipped = 0;
    const lines = complete.split('\n');
    lines.pop(); // after the final newline
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      if (!isEntry(value)) {
        if (options.skipCorrupt) {
          skipped++;
          return;
        }
        throw new Error(`${this.path}:${i + 1}: corrupt cache line (not a cache entry); fix or remove it, or open with skipCorrupt`);
      }
      this.entries.set(value.key, value);
    });
    let torn = 0;
    if (tail.trim() !== '') {
      // An unterminated last line: a write cut short by a crash. Keep it only if it is whole.
      let value: unknown;
      try {
        value = JSON.parse(tail);
      } catch {
        value = undefined;
      }
      if (isEntry(value)) {
        this.entries.set(value.key, value);
        writeSync(fd, '\n');
        return { torn, skipped };
      }
      torn = 1;
    }
    if (tail.length > 0) ftruncateSync(fd, lastNewline + 1);
    return { torn, skipped };
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  values(): IterableIterator<CacheEntry> {
    return this.entries.values();
  }

  /** Write the entry as one line, in one write(2) on an O_APPEND descriptor, then remember it. */
  append(entry: CacheEntry): void {
    if (this.fd === undefined) throw new Error(`cache ${this.path} is closed`);
    const data = Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
    if (this.fsync) fsyncSync(this.fd);
    this.entries.set(entry.key, entry);
  }

  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    this.releaseLock();
  }
}
