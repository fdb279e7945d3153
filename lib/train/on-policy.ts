/**
 * On-policy / mixed distillation (GKD, Agarwal et al., ICLR 2024): a fraction of each batch's rows
 * train on a rationale the student itself samples for the question, which the online mentor then
 * scores teacher-forced in the same native step. Those rows take the divergence only — their
 * micro-batch goes to the native step with `ceWeight: 0` (no gold tokens, no CE), so their loss is
 * λ·D while the other rows keep (1-λ)·CE + λ·D; every row's tokens count in the step's normaliser.
 *
 * Which rows, and the samples, depend on nothing but (run seed, step, micro-batch, row):
 * - rows: ⌊f·B⌋ of a micro-batch of B, plus one more with probability frac(f·B), chosen by a
 *   generator seeded from (seed, step, micro-batch), so the expected fraction is exactly f;
 * - samples: the generation engine draws a request's tokens from its own seed only (counter-based,
 *   lib/model/generate-stream.ts), seeded from (seed, step, micro-batch, row).
 * Refresh: every `refreshEvery` steps the current student samples the targets of the on-policy rows
 * of the next `refreshEvery` steps in one engine call (continuous batching over all of them); in
 * between, no generation runs. Samples not yet trained on are part of a checkpoint
 * (`on_policy.json`), so a run killed mid-window and resumed trains on exactly the samples an
 * uninterrupted run would have drawn from a student it no longer has.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { T5Model } from '../model/t5-model.js';
import type { GenerationRequest } from '../model/generate-stream.js';
import { mixSeed, seededRandom, shuffleInPlace } from '../tasks/random.js';
import type { TokenizedExample } from './data.js';

const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));
const num = (what: string, ok: (x: number) => boolean) => {
  const error = (iss: { input?: unknown }) => `must be ${what}, got ${shown(iss.input)}`;
  return z.number({ error }).refine((x) => Number.isFinite(x) && ok(x), { error });
};
const positiveInt = () => {
  const error = (iss: { input?: unknown }) => `must be a positive integer, got ${shown(iss.input)}`;
  return z.int({ error }).min(1, { error });
};

/**
 * train()'s `onPolicy` option. `fraction` 0 (the default) is off-policy training exactly as
 * without the option. `temperature` and `maxNewTokens` are the sampling settings (the pipeline
 * passes the mentor's augmentation settings); `maxNewTokens` defaults to maxTargetLength and is
 * capped by it.
 */
export const onPolicySettingsSchema = z.strictObject({
  fraction: num('in [0, 1]', (x) => x >= 0 && x <= 1).default(0),
  refreshEvery: positiveInt().default(1),
  temperature: num('> 0', (x) => x > 0).default(1),
  maxNewTokens: positiveInt().optional(),
});
export type OnPolicySettingsInput = z.input<typeof onPolicySettingsSchema>;
export type OnPolicySettings = z.output<typeof onPolicySettingsSchema>;

/** Salts keep these streams apart from the data order's and the pipeline's (same run seed). */
const ROWS_SALT = 0x6f6e7072; // "onpr"
const SAMPLE_SALT = 0x6f6e7073; // "onps"

/** Positions (ascending) of the on-policy rows of micro-batch `micro` of step `step` (0-based), B rows. */
export function onPolicyRows(batchRows: number, fraction: number, seed: number, step: number, micro: number): number[] {
  if (fraction <= 0 || batchRows === 0) return [];
  const random = seededRandom(mixSeed(seed, ROWS_SALT, step, micro));
  const exact = fraction * batchRows;
  const count = Math.min(batchRows, Math.floor(exact) + (random() < exact - Math.floor(exact) ? 1 : 0));
  const order = shuffleInPlace(
    Array.from({ length: batchRows }, (_, i) => i),
    random,
  );
  return order.slice(0, count).sort((a, b) => a - b);
}

/** The sampling seed of one on-policy row. */
export function onPolicySampleSeed(seed: number, step: number, micro: number, row: number): number {
  return mixSeed(seed, SAMPLE_SALT, step, micro, row);
}

/** One row to sample for: its source and seed. */
export interface SampleRequest {
  sourceIds: readonly number[];
  seed: number;
}

/**
 * The student's samples (target ids: the generated tokens without the decoder start token, EOS
 * included when reached) for each request, in request order, through the generation engine.
 */
export async function sampleTargets(
  student: T5Model,
  requests: readonly SampleRequest[],
  o: { temperature: number; maxNewTokens: number },
): Promise<number[][]> {
  if (requests.length === 0) return [];
  const reqs: GenerationRequest[] = requests.map((r) => ({
    inputIds: r.sourceIds,
    maxNewTokens: o.maxNewTokens,
    doSample: true,
    temperature: o.temperature,
    seed: r.seed,
  }));
  const out: number[][] = new Array<number[]>(requests.length);
  for await (const r of student.generateStream(reqs, { slots: Math.min(64, reqs.length) })) {
    out[r.index] = Array.from(r.sequences[0]!.subarray(1));
  }
  return out;
}

/** A micro-batch's on-policy rows: their positions in the micro-batch and their sampled targets. */
export interface OnPolicyRows {
  rows: number[];
  targets: number[][];
}

/** What on_policy.json holds: the settings it was made with and the samples not yet trained on. */
interface OnPolicyFile {
  format: 'mentor-kd-on-policy';
  version: 1;
  seed: number;
  settings: { fraction: number; refreshEvery: number; temperature: number; maxNewTokens: number };
  /** [step, micro-batch, rows, targets] */
  pending: [number, number, number[], number[][]][];
}

export const ON_POLICY_FILE = 'on_policy.json';

/**
 * The on-policy side of a training run: it samples a window of steps at each refresh and hands
 * each micro-batch its on-policy rows; `save`/`load` carry the unused samples through a checkpoint.
 */
export class OnPolicySampler {
  private pending = new Map<string, OnPolicyRows>();
  readonly maxNewTokens: number;

  constructor(
    readonly settings: OnPolicySettings,
    readonly seed: number,
    maxTargetLength: number,
  ) {
    this.maxNewTokens = Math.min(settings.maxNewTokens ?? maxTargetLength, maxTargetLength);
  }

  get active(): boolean {
    return this.settings.fraction > 0;
  }

  /** Whether step (0-based) starts a sampling window. */
  refreshesAt(step: number): boolean {
    return step % this.settings.refreshEvery === 0;
  }

  /**
   * Samples, from the student as it is now, the on-policy rows of the given steps: `window[k]` is
   * step `first + k`'s micro-batches (their examples, in order).
   */
  async refresh(student: T5Model, first: number, window: readonly (readonly (readonly TokenizedExample[])[])[]): Promise<void> {
    const wanted: { key: string; rows: number[]; requests: SampleRequest[] }[] = [];
    window.forEach((micros, k) => {
      const step = first + k;
      micros.forEach((examples, micro) => {
        const rows = onPolicyRows(examples.length, this.settings.fraction, this.seed, step, micro);
        wanted.push({
          key: `${step}:${micro}`,
          rows,
          requests: rows.map((row) => ({ sourceIds: examples[row]!.sourceIds, seed: onPolicySampleSeed(this.seed, step, micro, row) })),
        });
      });
    });
    const targets = await sampleTargets(
      student,
      wanted.flatMap((w) => w.requests),
      { temperature: this.settings.temperature, maxNewTokens: this.maxNewTokens },
    );
    let at = 0;
    for (const w of wanted) {
      this.pending.set(w.key, { rows: w.rows, targets: targets.slice(at, at + w.rows.length) });
      at += w.rows.length;
    }
  }

  /** Micro-batch `micro` of step `step`'s on-policy rows (taken: each is trained on once). */
  take(step: number, micro: number): OnPolicyRows {
    const key = `${step}:${micro}`;
    const got = this.pending.get(key);
    if (!got) throw new Error(`train: no on-policy samples for step ${step + 1}, micro-batch ${micro} (internal: the window was not sampled)`);
    this.pending.delete(key);
    return got;
  }

  private fileSettings(): OnPolicyFile['settings'] {
    const { fraction, refreshEvery, temperature } = this.settings;
    return { fraction, refreshEvery, temperature, maxNewTokens: this.maxNewTokens };
  }

  /** Writes the samples not yet trained on into a checkpoint folder. */
  async save(dir: string): Promise<void> {
    const pending: OnPolicyFile['pending'] = [...this.pending].map(([key, v]) => {
      const [step, micro] = key.split(':').map(Number) as [number, number];
      return [step, micro, v.rows, v.targets];
    });
    const file: OnPolicyFile = { format: 'mentor-kd-on-policy', version: 1, seed: this.seed, settings: this.fileSettings(), pending };
    await writeFile(join(dir, ON_POLICY_FILE), JSON.stringify(file));
  }

  /** Restores a checkpoint's samples; refuses one made with other on-policy settings, naming the field. */
  async load(dir: string): Promise<void> {
    const path = join(dir, ON_POLICY_FILE);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      text = undefined;
    }
    if (text === undefined) {
      if (this.active)
        throw new Error(
          `train: cannot resume exactly from ${dir}: it was trained without onPolicy (no ${ON_POLICY_FILE}), now onPolicy.fraction is ${this.settings.fraction}`,
        );
      return;
    }
    let file: OnPolicyFile;
    try {
      file = JSON.parse(text) as OnPolicyFile;
    } catch (err) {
      throw new Error(`train: ${path} is not valid JSON (${(err as Error).message})`, { cause: err });
    }
    if (file?.format !== 'mentor-kd-on-policy' || !Array.isArray(file.pending) || typeof file.settings !== 'object')
      throw new Error(`train: ${path} is not an on-policy sample file`);
    const now = this.fileSettings();
    for (const field of ['fraction', 'refreshEvery', 'temperature', 'maxNewTokens'] as const) {
      if (file.settings[field] !== now[field])
        throw new Error(`train: cannot resume exactly from ${dir}: onPolicy.${field} was ${String(file.settings[field])}, now ${String(now[field])}`);
    }
    if (file.seed !== this.seed)
      throw new Error(`train: cannot resume exactly from ${dir}: the on-policy samples were drawn with seed ${file.seed}, now ${this.seed}`);
    this.pending.clear();
    for (const [step, micro, rows, targets] of file.pending) {
      if (!Array.isArray(rows) || !Array.isArray(targets) || rows.length !== targets.length)
        throw new Error(`train: ${path}: the samples of step ${step + 1}, micro-batch ${micro} are malformed`);
      this.pending.set(`${step}:${micro}`, { rows, targets });
    }
  }
}

/**
 * Splits a micro-batch into its off-policy rows (the gold targets, CE and D) and its on-policy
 * rows (the sampled targets, D only). Either part may be empty.
 */
export function splitOnPolicy(examples: readonly TokenizedExample[], onPolicy: OnPolicyRows): { offPolicy: TokenizedExample[]; onPolicy: TokenizedExample[] } {
  const on = new Set(onPolicy.rows);
  const offPolicy = examples.filter((_, i) => !on.has(i));
  const onRows = onPolicy.rows.map((row, k) => ({ ...examples[row]!, targetIds: onPolicy.targets[k]! }));
  return { offPolicy, onPolicy: onRows };
}
