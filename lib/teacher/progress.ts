/**
 * A terminal progress bar for collection (cli-progress): samples done, teacher requests/s,
 * retries, cost, ETA. On a TTY it redraws in place; elsewhere, when asked, it prints a line
 * every few seconds (for logs of long runs).
 */
import cliProgress from 'cli-progress';
import type { CollectProgress } from './collector.js';

export interface ProgressReporter {
  onProgress: (p: CollectProgress) => void;
  stop: () => void;
}

export function createProgressBar(
  total: number,
  options: { stream?: NodeJS.WriteStream; force?: boolean; /** ms between lines off a terminal (default 5 s). */ intervalMs?: number } = {},
): ProgressReporter | undefined {
  const stream = options.stream ?? process.stderr;
  if (!stream.isTTY && !options.force) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'teacher {bar} {percentage}% | {value}/{total} samples | {rps} req/s | retries {retries} | cached {cached} | {cost} | ETA {eta_formatted}',
      hideCursor: stream.isTTY ? true : null,
      noTTYOutput: !stream.isTTY,
      notTTYSchedule: options.intervalMs ?? 5000,
      etaBuffer: 200,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { rps: '0', retries: 0, cached: 0, cost: '$-' });
  return {
    onProgress: (p) =>
      bar.update(p.done, {
        rps: p.requestsPerSecond.toFixed(1),
        retries: p.retries,
        cached: p.cacheHits,
        cost: p.costUsd === undefined ? '$-' : `$${p.costUsd.toFixed(4)}`,
      }),
    stop: () => bar.stop(),
  };
}
