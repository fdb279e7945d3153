/**
 * Batched generation over questions, resumable: each finished batch is appended to a JSONL file,
 * and a rerun skips the batches already there. Sampling seeds are per batch (hash of run seed and
 * batch index), so a resumed run writes exactly what an uninterrupted one would have.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { hashSeed } from '../tasks/random.js';
import { isCorrect } from '../tasks/cleansing.js';
import type { TaskName } from '../tasks/registry.js';
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { rowsOf } from '../model/tensor.js';

export interface QuestionRef {
  id: string;
  question: string;
  answer: string;
}

export interface GeneratedRow {
  id: string;
  question: string;
  answer: string;
  sample: number;
  output: string;
  correct: boolean;
}

export interface GenerateOverOptions {
  task: TaskName;
  batchSize: number;
  maxNewTokens: number;
  maxSourceLength: number;
  /** Samples per question; > 1 or temperature set means sampling. */
  samples?: number;
  temperature?: number;
  seed: number;
  /** JSONL file of finished batches (resume point). */
  outFile: string;
  label: string;
  /**
   * Data-parallel generation: each rank takes the unfinished batches b with b % worldSize == rank,
   * then all ranks gather every batch (rank 0 alone reads and appends to outFile). Sampling seeds are per batch, so the result is the same for any number
   * of ranks. A lib/parallel ProcessGroup fits.
   */
  group?: Pick<import('../parallel/process-group.js').ProcessGroup, 'rank' | 'worldSize' | 'allgatherObject'>;
}

/** Splits "{rationale} --> {answer}" (the Fine-tune-CoT target) into its parts. */
export function splitTarget(output: string): { rationale: string; answer: string | undefined } {
  const i = output.lastIndexOf('-->');
  return i < 0 ? { rationale: output.trim(), answer: undefined } : { rationale: output.slice(0, i).trim(), answer: output.slice(i + 3).trim() };
}

export async function generateOver(model: T5Model, tok: Tokenizer, questions: readonly QuestionRef[], o: GenerateOverOptions): Promise<GeneratedRow[]> {
  const samples = o.samples ?? 1;
  const sampling = o.temperature !== undefined;
  const rank = o.group?.rank ?? 0;
  const world = o.group?.worldSize ?? 1;
  // Rank 0 reads the finished batches (and drops a torn last line); every rank gets its list, so
  // all deal the remaining batches alike and no rank reads a file rank 0 is rewriting.
  let finished = rank === 0 ? loadFinishedBatches(o.outFile) : [];
  if (o.group && world > 1) finished = (await o.group.allgatherObject(rank === 0 ? finished : null))[0]!;
  const done = new Map<number, GeneratedRow[]>(finished);
  const nBatches = Math.ceil(questions.length / o.batchSize);
  const mine: { batch: number; rows: GeneratedRow[] }[] = [];
  const tty = process.stderr.isTTY && (o.group?.rank ?? 0) === 0;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: `${o.label} {bar} {value}/{total} batches | {rate} seq/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(nBatches, done.size, { rate: '-' });
  const t0 = performance.now();
  let generated = 0;
  for (let b = 0; b < nBatches; b++) {
    if (done.has(b) || b % world !== rank) continue;
    const qs = questions.slice(b * o.batchSize, (b + 1) * o.batchSize);
    const batch = tok.encodeBatch(
      qs.map((q) => q.question),
      { maxLength: o.maxSourceLength },
    );
    const out = await model.generate(batch, {
      maxNewTokens: o.maxNewTokens,
      doSample: sampling,
      temperature: o.temperature,
      numReturnSequences: samples,
      seed: sampling ? hashSeed(o.seed, o.label, b) : undefined,
    });
    const rows = rowsOf(out).map((ids, k): GeneratedRow => {
      const q = qs[Math.floor(k / samples)]!;
      const text = tok.decode(ids);
      return { id: q.id, question: q.question, answer: q.answer, sample: k % samples, output: text, correct: isCorrect(text, q.answer, o.task) };
    });
    if (rank === 0) appendFileSync(o.outFile, JSON.stringify({ batch: b, rows }) + '\n');
    done.set(b, rows);
    mine.push({ batch: b, rows });
    generated += rows.length;
    bar?.update(done.size, { rate: (generated / ((performance.now() - t0) / 1000)).toFixed(1) });
  }
  bar?.stop();
  if (o.group && world > 1) {
    for (const part of await o.group.allgatherObject(mine)) {
      for (const { batch, rows } of part) {
        if (done.has(batch)) continue;
        done.set(batch, rows);
        if (rank === 0) appendFileSync(o.outFile, JSON.stringify({ batch, rows }) + '\n');
      }
    }
  }
  return [...done].sort((a, b) => a[0] - b[0]).flatMap(([, rows]) => rows);
}

/** The batches in a generation file, rewritten without a torn last line (killed mid-write). */
function loadFinishedBatches(outFile: string): [number, GeneratedRow[]][] {
  if (!existsSync(outFile)) return [];
  const done = new Map<number, GeneratedRow[]>();
  for (const line of readFileSync(outFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const b = JSON.parse(line) as { batch: number; rows: GeneratedRow[] };
      done.set(b.batch, b.rows);
    } catch {
      break; // its batch is simply redone
    }
  }
  writeFileSync(outFile, [...done].map(([batch, rows]) => JSON.stringify({ batch, rows }) + '\n').join(''));
  return [...done];
}

export function accuracy(rows: readonly GeneratedRow[]): number {
  return rows.length ? rows.filter((r) => r.correct).length / rows.length : 0;
}
