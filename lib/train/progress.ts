/** Training progress: a terminal bar (loss, tokens/s, ETA) and metrics appended as JSON lines. */
import cliProgress from 'cli-progress';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** A cli-progress bar on stderr; a no-op when disabled (tests, non-TTY). */
export class TrainProgress {
  private bar: cliProgress.SingleBar | undefined;

  constructor(enabled: boolean, total: number, start: number) {
    if (!enabled) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | lr {lr} | ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, start, { loss: '-', tps: '-', lr: '-' });
  }

  update(u: ProgressUpdate): void {
    this.bar?.update(u.step, { loss: u.loss.toFixed(4), tps: Math.round(u.tokensPerSecond).toString(), lr: u.lr.toExponential(2) });
  }

  /** Prints a line above the bar. */
  log(line: string): void {
    if (this.bar) {
      process.stderr.write(`\r\x1b[K${line}\n`);
      this.bar.render();
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
