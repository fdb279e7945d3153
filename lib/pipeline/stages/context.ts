/** What every stage gets from the pipeline, and what every stage gives back. */
import type { RunConfig } from '../../config/schema.js';
import type { ProcessGroup } from '../../parallel/process-group.js';
import type { RunDir, StageRun } from '../run-dir.js';

export interface StageContext {
  config: RunConfig;
  run: RunDir;
  /** The process group when there is more than one rank. */
  group: ProcessGroup | undefined;
  /** True on the process that writes files (one process, or rank 0). */
  isMain: boolean;
  log: (line: string) => void;
  /** '' or `-f<teacherFraction>`: stages that depend on the teacher-data fraction carry it in their name. */
  fractionTag: string;
}

/** A finished (or reused) stage: its folder and typed manifest, and one line for the log and the report. */
export interface StageOutcome<S> extends StageRun<S> {
  name: string;
  line: string;
}

export function outcome<S>(name: string, run: StageRun<S>, line: string): StageOutcome<S> {
  return { ...run, name, line };
}

/** Accuracy in [0, 1] as a percentage with one decimal; '–' when there is none. */
export const percent = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
