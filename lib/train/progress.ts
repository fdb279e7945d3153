/**
 * Training progress and metrics. Progress names the model being trained (progressLabel), is a
 * one-line bar on a terminal and one plain line every MENTOR_KD_LOG_INTERVAL seconds without one
 * (nohup, Slurm: step, loss, tok/s, ETA), and ends with a summary line either way; metrics are
 * appended as JSON lines.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { logIntervalSecondsFromEnv } from '../runtime/env.js';

/** Appends one JSON object per line; each line is written whole (appendFileSync), so a kill leaves complete lines. */
export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  append(entry: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
  }

  /**
   * Drops every row whose `step` is after `step` (the checkpoint a run resumes from), and any line
   * that does not parse (a torn last line): the steps after the checkpoint are trained again, and
   * their first rows would otherwise stay beside the new ones as duplicates. Rows without a step
   * (dataset truncation events) are kept. The file is rewritten through a temporary and a rename,
   * so a kill leaves the old file or the new one. Returns how many lines were dropped.
   */
  truncateAfter(step: number): number {
    if (!existsSync(this.path)) return 0;
    const lines = readFileSync(this.path, 'utf8').split('\n');
    const kept: string[] = [];
    let dropped = 0;
    for (const line of lines) {
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        dropped++;
        continue;
      }
      const s = row !== null && typeof row === 'object' ? (row as { step?: unknown }).step : undefined;
      if (typeof s === 'number' && s > step) {
        dropped++;
        continue;
      }
      kept.push(line);
    }
    if (dropped === 0) return 0;
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, kept.map((l) => l + '\n').join(''));
    renameSync(tmp, this.path);
    return dropped;
  }
}

export interface ProgressUpdate {
  step: number;
  loss: number;
  tokensPerSecond: number;
  lr: number;
}

/**
 * The name progress lines give the model being trained (`mentor`, `student mentor-kd`): set around a
 * training call with `progressLabel.run(label, fn)`; `train` when unset.
 */
export const progressLabel = new AsyncLocalStorage<string>();

export interface ProgressOptions {
  /** Default: progressLabel's, else 'train'. */
  label?: string;
  /** Default process.stderr. */
  stream?: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean; columns?: number };
  /** Seconds between plain lines without a terminal (default MENTOR_KD_LOG_INTERVAL, 30). */
  intervalSeconds?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/** 75 s → "1m15s", 3725 s → "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Progress of one training run. On a terminal: one line redrawn in place (cut to the terminal's
 * width, so it never wraps onto lines printed before it), lines logged above it, and at the end
 * the bar replaced by a summary line — nothing printed is overwritten. Without a terminal: one plain
 * line per interval and the summary. A no-op when disabled (library default off a terminal).
 */
export class TrainProgress {
  private readonly enabled: boolean;
  private readonly label: string;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly t0: number;
  private lastPlain = -Infinity;
  private last: ProgressUpdate | undefined;
  /** Recent (time, step) pairs for the ETA (the last minute's rate, not the whole run's). */
  private readonly recent: [number, number][] = [];
  private stopped = false;

  constructor(
    enabled: boolean,
    private readonly total: number,
    private readonly start: number,
    options: ProgressOptions = {},
  ) {
    this.enabled = enabled;
    this.label = options.label ?? progressLabel.getStore() ?? 'train';
    this.stream = options.stream ?? process.stderr;
    this.tty = !!this.stream.isTTY;
    this.now = options.now ?? (() => performance.now());
    this.intervalMs = 1000 * (options.intervalSeconds ?? (enabled && !this.tty ? logIntervalSecondsFromEnv() : 30));
    this.t0 = this.now();
    this.recent.push([this.t0, start]);
    if (enabled && this.tty) this.draw();
  }

  private eta(step: number): number {
    const [t0, s0] = this.recent[0]!;
    const rate = (step - s0) / ((this.now() - t0) / 1000);
    return rate > 0 ? (this.total - step) / rate : NaN;
  }

  /** The progress as one line: label, steps, loss, tok/s, lr, elapsed, ETA. */
  line(): string {
    const u = this.last;
    const step = u?.step ?? this.start;
    const pct = this.total > 0 ? Math.floor((100 * step) / this.total) : 100;
    const parts = [`${this.label}: step ${step}/${this.total} (${pct}%)`];
    if (u) parts.push(`loss ${u.loss.toFixed(4)}`, `${Math.round(u.tokensPerSecond)} tok/s`, `lr ${u.lr.toExponential(2)}`);
    parts.push(`elapsed ${formatDuration((this.now() - this.t0) / 1000)}`);
    if (u && step < this.total) parts.push(`ETA ${formatDuration(this.eta(step))}`);
    return parts.join(' | ');
  }

  private draw(): void {
    const width = Math.max(20, (this.stream.columns ?? 100) - 1);
    const bar = 20;
    const step = this.last?.step ?? this.start;
    const filled = this.total > 0 ? Math.round((bar * step) / this.total) : bar;
    const text = `[${'#'.repeat(filled)}${'.'.repeat(bar - filled)}] ${this.line()}`;
    this.stream.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
  }

  update(u: ProgressUpdate): void {
    if (!this.enabled || this.stopped) return;
    this.last = u;
    const t = this.now();
    this.recent.push([t, u.step]);
    while (this.recent.length > 2 && t - this.recent[0]![0] > 60_000) this.recent.shift();
    if (this.tty) this.draw();
    else if (t - this.lastPlain >= this.intervalMs) {
      this.lastPlain = t;
      this.stream.write(this.line() + '\n');
    }
  }

  /** Prints a line (a checkpoint's dev accuracy) that stays: above the bar on a terminal. */
  log(line: string): void {
    if (!this.enabled || this.stopped) return;
    if (this.tty) {
      this.stream.write(`\r\x1b[K${this.label}: ${line}\n`);
      this.draw();
    } else this.stream.write(`${this.label}: ${line}\n`);
  }

  /** Ends the progress with a summary line (in place of the bar on a terminal). */
  stop(): void {
    if (!this.enabled || this.stopped) return;
    this.stopped = true;
    const step = this.last?.step ?? this.start;
    const done = step >= this.total ? 'done' : 'stopped';
    const u = this.last;
    const summary =
      `${this.label}: ${done} at step ${step}/${this.total} in ${formatDuration((this.now() - this.t0) / 1000)}` +
      (u ? `, last loss ${u.loss.toFixed(4)}, ${Math.round(u.tokensPerSecond)} tok/s` : '');
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}${summary}\n`);
  }
}
