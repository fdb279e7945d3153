/** Stage `data`: the task's train / dev / test questions, loaded from files or generated. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTaskFile, type TaskFileOptions } from '../../tasks/loaders.js';
import { TaskDataError, type TaskRecord } from '../../tasks/records.js';
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
  writeFileSync(
    path,
    JSON.stringify(
      records.map((r) => ({ id: r.id, input: r.question, answer: r.answer, ...(r.chain !== undefined ? { chain: r.chain } : {}) })),
      null,
      1,
    ),
  );
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
  /** Repeated records (a warning, logged): absent in runs made before it was counted. */
  duplicates?: DuplicateCounts;
}

export interface DataOutput extends StageOutcome<DataSummary> {
  splits: Splits;
}

/**
 * How a split file is read: by its format (Mentor-KD release JSON, GSM8K JSONL, …) or, with
 * `data.fields`, as any JSON array or JSONL (HF-style) through that mapping; a field left out of the
 * mapping keeps its Mentor-KD name (input, answer).
 */
export function splitFileOptions(fields: RunConfig['data']['fields']): TaskFileOptions {
  return fields ? { fields: { question: fields.question ?? 'input', answer: fields.answer ?? 'answer', id: 'id' } } : {};
}

/** A split's file, loaded; a file with no records is an Error naming the setting and the file. */
export function loadSplitFile(split: 'train' | 'dev' | 'test', file: string, fields?: RunConfig['data']['fields']): TaskRecord[] {
  let records: TaskRecord[];
  try {
    records = loadTaskFile(file, splitFileOptions(fields)).records;
  } catch (err) {
    if (!(err instanceof TaskDataError)) throw err;
    const mapped = fields ? ` (data.fields: question → ${fields.question ?? 'input'}, answer → ${fields.answer ?? 'answer'})` : '';
    throw new Error(`data.${split}: ${err.message}${mapped}`, { cause: err });
  }
  if (records.length === 0)
    throw new Error(`data.${split}: ${file} holds no records (an empty ${split} split would ${split === 'train' ? 'train on nothing' : 'measure nothing'})`);
  return records;
}

/** How many records repeat an earlier one (same question and answer), per split and across splits. */
export interface DuplicateCounts {
  train: number;
  dev: number;
  test: number;
  /** Test questions also in train or dev (leakage: the test accuracy would be inflated). */
  testInTrain: number;
  /** Dev questions also in train. */
  devInTrain: number;
}

const norm = (q: string) => q.trim().replace(/\s+/g, ' ');

/**
 * Duplicate records are a warning, not an error: released datasets hold a few legitimately repeated
 * questions (GSM8K's train split has some), and refusing them would make those files unusable, while
 * the counts in the log and the stage summary say how many there are. A question in both train and
 * test (leakage) is counted apart.
 */
export function countDuplicates(s: Splits): DuplicateCounts {
  const within = (recs: readonly TaskRecord[]) => {
    const seen = new Set<string>();
    let n = 0;
    for (const r of recs) {
      const k = `${norm(r.question)}\u0000${norm(r.answer)}`;
      if (seen.has(k)) n++;
      else seen.add(k);
    }
    return n;
  };
  const trainQ = new Set(s.train.map((r) => norm(r.question)));
  const devQ = new Set(s.dev.map((r) => norm(r.question)));
  return {
    train: within(s.train),
    dev: within(s.dev),
    test: within(s.test),
    testInTrain: s.test.filter((r) => trainQ.has(norm(r.question)) || devQ.has(norm(r.question))).length,
    devInTrain: s.dev.filter((r) => trainQ.has(norm(r.question))).length,
  };
}

/** One warning line for non-zero duplicate counts, or undefined. */
export function describeDuplicates(d: DuplicateCounts): string | undefined {
  const parts: string[] = [];
  for (const split of ['train', 'dev', 'test'] as const) if (d[split] > 0) parts.push(`${d[split]} duplicate records in ${split}`);
  if (d.devInTrain > 0) parts.push(`${d.devInTrain} dev questions also in train`);
  if (d.testInTrain > 0) parts.push(`${d.testInTrain} test questions also in train or dev (the test accuracy is inflated)`);
  return parts.length ? `data: warning: ${parts.join(', ')}` : undefined;
}

/** Splits as configured. Synthetic splits never share a question (test is held out by construction). */
export function buildSplits(c: DataInput): Splits {
  const syn = c.data.synthetic;
  if (syn) {
    const gen = SYNTHETIC_GENERATORS[c.task as keyof typeof SYNTHETIC_GENERATORS];
    const all = gen({ count: (syn.train + syn.dev + syn.test) * 2, seed: c.seed, size: syn.size, idPrefix: c.task });
    const seen = new Set<string>();
    const unique = all.filter((r) => (seen.has(r.question) ? false : (seen.add(r.question), true)));
    if (unique.length < syn.train + syn.dev + syn.test)
      throw new Error(`data.synthetic: could not generate ${syn.train + syn.dev + syn.test} distinct questions`);
    return {
      train: unique.slice(0, syn.train),
      dev: unique.slice(syn.train, syn.train + syn.dev),
      test: unique.slice(syn.train + syn.dev, syn.train + syn.dev + syn.test),
    };
  }
  const train = loadSplitFile('train', c.data.train!, c.data.fields);
  const test = loadSplitFile('test', c.data.test!, c.data.fields);
  let dev: TaskRecord[];
  let trainOut = train;
  if (c.data.dev) dev = loadSplitFile('dev', c.data.dev, c.data.fields);
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
    return { train: s.train.length, dev: s.dev.length, test: s.test.length, duplicates: countDuplicates(s) };
  });
  const { summary } = run.manifest;
  const warning = summary.duplicates && describeDuplicates(summary.duplicates);
  if (warning) ctx.log(warning);
  return { ...outcome('data', run, `train ${summary.train}, dev ${summary.dev}, test ${summary.test} questions`), splits: loadSplits(run.dir) };
}

export function loadSplits(dir: string): Splits {
  return { train: readRecords(join(dir, 'train.json')), dev: readRecords(join(dir, 'dev.json')), test: readRecords(join(dir, 'test.json')) };
}
