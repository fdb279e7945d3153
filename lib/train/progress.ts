/** Training progress: a terminal bar (loss, tokens/s, ETA) and metrics appended as JSON lines. */
import cliProgress from 'cli-progress';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** Appends one JSON object per line; each line is written whole (appendFileSync), so a kill leaves complete lines. */
export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  append(entry: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
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
