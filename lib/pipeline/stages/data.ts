/** Stage `data`: the task's train / dev / test questions, loaded from files or generated. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTaskFile } from '../../tasks/loaders.js';
import type { TaskRecord } from '../../tasks/records.js';
import { SYNTHETIC_GENERATORS } from '../../tasks/synthetic.js';
import { createRng, hashSeed } from '../../tasks/random.js';
import type { RunConfig } from '../../config/schema.js';
import { outcome, type StageContext, type StageOutcome } from './context.js';

export interface Splits {
  train: TaskRecord[];
  dev: TaskRecord[];
  test: TaskRecord[];
}

export function writeRecords(path: string, records: readonly TaskRecord[]): void {
  writeFileSync(path, JSON.stringify(records.map((r) => ({ id: r.id, input: r.question, answer: r.answer, ...(r.chain !== undefined ? { chain: r.chain } : {}) })), null, 1));
}

export function readRecords(path: string): TaskRecord[] {
  return loadTaskFile(path, { format: 'mentor-kd' }).records;
}

/** The stage's input: the settings its output depends on (also its key). */
export type DataInput = Pick<RunConfig, 'task' | 'seed' | 'data'>;

/** Questions per split. */
export interface DataSummary {
  train: number;
  dev: number;
  test: number;
}

export interface DataOutput extends StageOutcome<DataSummary> {
  splits: Splits;
}

/** Splits as configured. Synthetic splits never share a question (test is held out by construction). */
export function buildSplits(c: DataInput): Splits {
  const syn = c.data.synthetic;
  if (syn) {
    const gen = SYNTHETIC_GENERATORS[c.task as keyof typeof SYNTHETIC_GENERATORS];
    const all = gen({ count: (syn.train + syn.dev + syn.test) * 2, seed: c.seed, size: syn.size, idPrefix: c.task });
    const seen = new Set<string>();
    const unique = all.filter((r) => (seen.has(r.question) ? false : (seen.add(r.question), true)));
    if (unique.length < syn.train + syn.dev + syn.test) throw new Error(`data.synthetic: could not generate ${syn.train + syn.dev + syn.test} distinct questions`);
    return {
      train: unique.slice(0, syn.train),
      dev: unique.slice(syn.train, syn.train + syn.dev),
      test: unique.slice(syn.train + syn.dev, syn.train + syn.dev + syn.test),
    };
  }
  const train = loadTaskFile(c.data.train!).records;
  const test = loadTaskFile(c.data.test!).records;
  let dev: TaskRecord[];
  let trainOut = train;
  if (c.data.dev) dev = loadTaskFile(c.data.dev).records;
  else {
    // No dev file: hold out 10% of train (seeded) for checkpoint selection — never the test split.
    const rng = createRng(hashSeed(c.seed, 'dev-split'));
    const idx = train.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    const nDev = Math.max(1, Math.floor(train.length / 10));
    const devSet = new Set(idx.slice(0, nDev));
    dev = train.filter((_, i) => devSet.has(i));
    trainOut = train.filter((_, i) => !devSet.has(i));
  }
  return { train: trainOut, dev, test };
}

export async function dataStage(ctx: StageContext, input: DataInput): Promise<DataOutput> {
  const run = await ctx.run.stage('data', input, async (dir): Promise<DataSummary> => {
    const s = buildSplits(input);
    for (const [name, recs] of Object.entries(s)) writeRecords(join(dir, `${name}.json`), recs);
    return { train: s.train.length, dev: s.dev.length, test: s.test.length };
  });
  const { summary } = run.manifest;
  return { ...outcome('data', run, `train ${summary.train}, dev ${summary.dev}, test ${summary.test} questions`), splits: loadSplits(run.dir) };
}

export function loadSplits(dir: string): Splits {
  return { train: readRecords(join(dir, 'train.json')), dev: readRecords(join(dir, 'dev.json')), test: readRecords(join(dir, 'test.json')) };
}
