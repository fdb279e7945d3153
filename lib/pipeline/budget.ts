/**
 * A student's training budget: its training settings (student.train with the mode's overrides,
 * student.modeSettings.<mode>.train) and how long it trains — num_train_epochs or max_steps as
 * given (`budget: epochs`, the paper's: modes with more data take more steps), max_steps for every
 * mode (`steps`), or a number of tokens turned into optimizer steps from the mode's own data
 * (`tokens`). A student whose length is not the shared one carries it in its stage name
 * (`student-vanilla-steps1720`), so differently budgeted students of one mode live side by side in
 * a run directory; its stage key holds the merged settings, so a mode with no override keeps the
 * key it always had.
 */
import type { PipelineTrainSettings, RunConfig, StudentBudgetKind, StudentMode } from '../config/schema.js';
import { readTrainerState } from '../train/checkpoints.js';

export interface StudentBudget {
  kind: StudentBudgetKind;
  /** student.train with the mode's overrides (max_steps not yet filled in for a tokens budget). */
  train: PipelineTrainSettings;
  /** The token target (tokens budget only). */
  targetTokens?: number;
  /** '' for the shared length, else `-steps<N>`, `-epochs<N>` or `-tokens<N>`: the stage name's suffix. */
  tag: string;
  /** '' for the shared length, else `1720 steps`, `40 epochs`, `200000 tokens`: how the report names it. */
  description: string;
}

export function studentBudget(c: RunConfig, mode: StudentMode): StudentBudget {
  const s = c.student;
  const o = s.modeSettings[mode];
  const train = o?.train && Object.keys(o.train).length > 0 ? { ...s.train, ...o.train } : s.train;
  if (s.budget === 'tokens') {
    const targetTokens = o?.targetTokens ?? s.targetTokens;
    if (targetTokens === undefined)
      throw new Error(`student.budget is tokens but neither student.targetTokens nor student.modeSettings.${mode}.targetTokens is set`);
    return { kind: 'tokens', train, targetTokens, tag: `-tokens${targetTokens}`, description: `${targetTokens} tokens` };
  }
  if (s.budget === 'steps') {
    if (train.max_steps === undefined) throw new Error(`student.budget is steps but student.train.max_steps (or this mode's) is not set`);
    return { kind: 'steps', train, tag: `-steps${train.max_steps}`, description: `${train.max_steps} steps` };
  }
  // epochs: HF semantics, max_steps wins over num_train_epochs when both are given.
  const shared = train.max_steps === s.train.max_steps && (train.max_steps !== undefined || train.num_train_epochs === s.train.num_train_epochs);
  if (shared) return { kind: 'epochs', train, tag: '', description: '' };
  if (train.max_steps !== undefined) return { kind: 'epochs', train, tag: `-steps${train.max_steps}`, description: `${train.max_steps} steps` };
  return { kind: 'epochs', train, tag: `-epochs${train.num_train_epochs}`, description: `${train.num_train_epochs} epochs` };
}

/** What the budget adds to the student's stage key: the merged settings, and the token target for a tokens budget. */
export function budgetKey(b: StudentBudget): Record<string, unknown> {
  return { train: b.train, ...(b.kind === 'tokens' ? { budget: 'tokens', targetTokens: b.targetTokens } : {}) };
}

/**
 * Optimizer steps that see about `targetTokens` tokens (source + target, as the trainer counts
 * tokens_seen) when each step takes `examplesPerStep` examples of `tokensPerExample` tokens on average.
 */
export function stepsForTokens(targetTokens: number, tokensPerExample: number, examplesPerStep: number): number {
  if (!(tokensPerExample > 0) || !(examplesPerStep > 0)) throw new Error(`stepsForTokens: no tokens per step (${tokensPerExample} x ${examplesPerStep})`);
  return Math.max(1, Math.round(targetTokens / (tokensPerExample * examplesPerStep)));
}

/** The training settings a student trains with: for a tokens budget, max_steps from its data's tokens per example. */
export function resolveBudget(b: StudentBudget, tokensPerExample: () => number, worldSize: number): PipelineTrainSettings {
  if (b.kind !== 'tokens') return b.train;
  const perStep = b.train.per_device_train_batch_size * b.train.gradient_accumulation_steps * worldSize;
  return { ...b.train, max_steps: stepsForTokens(b.targetTokens!, tokensPerExample(), perStep) };
}

/** The student's label in results and reports: `vanilla`, or `vanilla (1720 steps)`. */
export function studentLabel(mode: StudentMode, b: Pick<StudentBudget, 'description'>): string {
  return b.description ? `${mode} (${b.description})` : mode;
}

/** `{tokens}`: the tokens a finished training saw (its last checkpoint's tokens_seen), or {} without a checkpoint. */
export async function tokensSeen(lastCheckpoint: string | null): Promise<{ tokens?: number }> {
  if (!lastCheckpoint) return {};
  return { tokens: (await readTrainerState(lastCheckpoint)).tokens_seen };
}
