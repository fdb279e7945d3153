/**
 * Generation over questions for the augment and evaluate stages, resumable per question: each
 * question's samples are appended to a JSONL file as soon as they finish, and a rerun skips the
 * questions already there, so a kill loses at most the questions in flight.
 *
 * On a CPU model the questions go through the continuous-batching engine (model.generateStream):
 * one request per question, its sampling seed a hash of (run seed, label, question index), so a
 * question's samples are the same whatever else runs beside it, however the questions are dealt
 * to ranks, and wherever a run was resumed. Greedy outputs equal the static batched path's. On an
 * accelerator, where the engine does not run, static batches of `batchSize` questions go through
 * model.generate with a per-batch seed (greedy outputs identical; sampled ones depend on the batch's
 * questions, so after a resume mid-batch they may differ from an uninterrupted run's).
 *
 * A causal (decoder-only) model's prompts are built as training builds them (causalPromptIds,
 * lib/train/data.ts), each with its own sampling seed (the same hash of run seed, label and question
 * index). On the CPU they go through the engine too (CausalLM.generateStream: one request per
 * question, its prompt prefilled once for all its samples); on an accelerator, in static batches of
 * `batchSize` LEFT-padded prompts through CausalLM.generate with the KV cache, the seeds per prompt.
 * Both give the same ids (sample j of a question draws from (seed, j, step) on either path), so a
 * question's samples do not depend on its batch, on the rank count or on a resume. Only the new
 * tokens are decoded, up to the first EOS.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { hashSeed } from '../tasks/random.js';
import { isCorrect } from '../tasks/cleansing.js';
import type { TaskName } from '../tasks/registry.js';
import { CausalLM } from '../model/causal-model.js';
import type { PromptFormat } from '../model/chat-template.js';
import type { T5Model } from '../model/t5-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { GenerationRequest } from '../model/generate-stream.js';
import { padBatch, rowsOf, tensor } from '../model/tensor.js';
import { causalPromptIds } from '../train/data.js';

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
  /**
   * Questions generated together: the engine steps batchSize × samples rows at once (its slots); the
   * static path's batch on an accelerator. Also the unit in which questions are dealt to ranks.
   */
  batchSize: number;
  maxNewTokens: number;
  maxSourceLength: number;
  /** Samples per question; > 1 or temperature set means sampling. */
  samples?: number;
  temperature?: number;
  seed: number;
  /** JSONL file of finished questions (resume point), one `{"index": i, "rows": [...]}` per line. */
  outFile: string;
  label: string;
  /** Names the model on the progress line (e.g. 'mentor'). */
  modelName?: string;
  /**
   * Data-parallel generation: rank r takes the questions of the batches b (batchSize questions each)
   * with b % worldSize == r, then all ranks gather every question (rank 0 alone reads and appends to
   * outFile; the other ranks' questions reach it at the end). Seeds do not depend on the rank, so the
   * result is the same for any number of ranks. A lib/parallel ProcessGroup fits.
   */
  group?: Pick<import('../parallel/process-group.js').ProcessGroup, 'rank' | 'worldSize' | 'allgatherObject'>;
  /** A causal model's prompt format (its chat template or plain `Q: … A:`); required for a CausalLM. */
  promptFormat?: PromptFormat | null;
}

/** One line of the JSONL file: a question's index in the stage's list, and its rows. */
interface QuestionLine {
  index: number;
  rows: GeneratedRow[];
}

/** Splits "{rationale} --> {answer}" (the Fine-tune-CoT target) into its parts. */
export function splitTarget(output: string): { rationale: string; answer: string | undefined } {
  const i = output.lastIndexOf('-->');
  return i < 0 ? { rationale: output.trim(), answer: undefined } : { rationale: output.slice(0, i).trim(), answer: output.slice(i + 3).trim() };
}

/** [B, L] left-padded prompts and their mask (decoder-only generation continues each row at its end). */
function leftPad(rows: readonly number[][], padId: number) {
  const L = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * L).fill(padId);
  const mask = new Int32Array(rows.length * L);
  rows.forEach((r, i) => {
    ids.set(r, (i + 1) * L - r.length);
    mask.fill(1, (i + 1) * L - r.length, (i + 1) * L);
  });
  return { inputIds: tensor(ids, [rows.length, L]), attentionMask: tensor(mask, [rows.length, L]), width: L };
}

export async function generateOver(
  model: T5Model | CausalLM,
  tok: Tokenizer,
  questions: readonly QuestionRef[],
  o: GenerateOverOptions,
): Promise<GeneratedRow[]> {
  const samples = o.samples ?? 1;
  const sampling = o.temperature !== undefined;
  const rank = o.group?.rank ?? 0;
  const world = o.group?.worldSize ?? 1;
  // Rank 0 reads the finished questions (and drops a torn last line); every rank gets its list, so
  // all deal the remaining questions alike and no rank reads a file rank 0 is rewriting.
  let finished = rank === 0 ? loadFinishedQuestions(o.outFile, questions.length) : [];
  if (o.group && world > 1) finished = (await o.group.allgatherObject(rank === 0 ? finished : null))[0]!;
  const done = new Map<number, GeneratedRow[]>(finished);
  const mine: number[] = [];
  for (let q = 0; q < questions.length; q++) if (!done.has(q) && Math.floor(q / o.batchSize) % world === rank) mine.push(q);

  const rowsFor = (q: number, sequences: readonly Int32Array[] | readonly number[][]): GeneratedRow[] => {
    const ref = questions[q]!;
    return Array.from({ length: samples }, (_, k): GeneratedRow => {
      // Greedy decoding gives one sequence; its `samples` copies are the same text.
      // A causal completion starts with the space after "A:" (lib/train/data.ts): not part of the output.
      const decoded = tok.decode(Array.from(sequences[sampling ? k : 0]!));
      const text = model instanceof CausalLM ? decoded.trimStart() : decoded;
      return { id: ref.id, question: ref.question, answer: ref.answer, sample: k, output: text, correct: isCorrect(text, ref.answer, o.task) };
    });
  };

  const tty = process.stderr.isTTY && rank === 0;
  const name = o.modelName ? `${o.label} (${o.modelName})` : o.label;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: `${name} {bar} {value}/{total} questions | {rate} tokens/s | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(questions.length, done.size, { rate: '-' });
  const t0 = performance.now();
  let tokens = 0;
  const gathered: QuestionLine[] = [];
  const finish = (q: number, rows: GeneratedRow[], newTokens: number) => {
    if (rank === 0) appendFileSync(o.outFile, JSON.stringify({ index: q, rows } satisfies QuestionLine) + '\n');
    done.set(q, rows);
    gathered.push({ index: q, rows });
    tokens += newTokens;
    bar?.update(done.size, { rate: (tokens / ((performance.now() - t0) / 1000)).toFixed(0) });
  };

  const sourceOf = (q: number) => tok.encode(questions[q]!.question, { maxLength: o.maxSourceLength });
  try {
    if (model instanceof CausalLM) {
      const format = o.promptFormat;
      if (!format) throw new Error(`${o.label}: a causal model needs its prompt format (chat template or plain Q/A)`);
      const eos = new Set([...model.info().eosTokenIds, tok.eosId]);
      // Each sequence's new tokens up to (without) its first EOS; what follows is padding.
      const untilEos = (fresh: ArrayLike<number>): number[] => {
        const ids = Array.from(fresh);
        const end = ids.findIndex((t) => eos.has(t));
        return end < 0 ? ids : ids.slice(0, end);
      };
      const promptOf = (q: number) => causalPromptIds(tok, format, questions[q]!.question, o.maxSourceLength).ids;
      if (mine.length > 0 && model.info().device === 'cpu') {
        const requests: GenerationRequest[] = mine.map((q) => ({
          inputIds: promptOf(q),
          maxNewTokens: o.maxNewTokens,
          ...(sampling ? { samples, doSample: true, temperature: o.temperature, seed: hashSeed(o.seed, o.label, q) } : {}),
        }));
        for await (const r of model.generateStream(requests, { slots: Math.min(4096, o.batchSize * (sampling ? samples : 1)) })) {
          const own = r.sequences.map(untilEos);
          finish(
            mine[r.index]!,
            rowsFor(mine[r.index]!, own),
            own.reduce((a, s) => a + s.length, 0),
          );
        }
      } else {
        for (const qs of batchesOf(mine, o.batchSize)) {
          const { inputIds, attentionMask, width } = leftPad(qs.map(promptOf), tok.padId);
          const out = await model.generate(
            { inputIds, attentionMask },
            sampling
              ? {
                  maxNewTokens: o.maxNewTokens,
                  doSample: true,
                  temperature: o.temperature,
                  numReturnSequences: samples,
                  seeds: qs.map((q) => hashSeed(o.seed, o.label, q)),
                }
              : { maxNewTokens: o.maxNewTokens },
          );
          const seqs = rowsOf(out).map((r) => untilEos(r.slice(width)));
          const n = sampling ? samples : 1;
          qs.forEach((q, i) => {
            const own = seqs.slice(i * n, (i + 1) * n);
            finish(
              q,
              rowsFor(q, own),
              own.reduce((a, s) => a + s.length, 0),
            );
          });
        }
      }
    } else if (mine.length > 0 && model.info().device === 'cpu') {
      const requests: GenerationRequest[] = mine.map((q) => ({
        inputIds: sourceOf(q),
        maxNewTokens: o.maxNewTokens,
        ...(sampling ? { samples, doSample: true, temperature: o.temperature, seed: hashSeed(o.seed, o.label, q) } : {}),
      }));
      for await (const r of model.generateStream(requests, { slots: Math.min(4096, o.batchSize * (sampling ? samples : 1)) })) {
        finish(mine[r.index]!, rowsFor(mine[r.index]!, r.sequences), r.newTokens);
      }
    } else {
      for (let start = 0; start < mine.length;) {
        const b = Math.floor(mine[start]! / o.batchSize);
        let end = start;
        while (end < mine.length && Math.floor(mine[end]! / o.batchSize) === b) end++;
        const qs = mine.slice(start, end);
        start = end;
        const { ids, mask } = padBatch(qs.map(sourceOf), tok.padId);
        const out = await model.generate(
          { inputIds: ids, attentionMask: mask },
          {
            maxNewTokens: o.maxNewTokens,
            doSample: sampling,
            temperature: o.temperature,
            numReturnSequences: samples,
            seed: sampling ? hashSeed(o.seed, o.label, b) : undefined,
          },
        );
        const seqs = rowsOf(out);
        const pad = tok.padId;
        qs.forEach((q, i) => {
          const own = seqs.slice(i * samples, (i + 1) * samples);
          const newTokens = own.reduce((a, s) => a + s.slice(1).filter((t) => t !== pad).length, 0);
          finish(q, rowsFor(q, sampling ? own : [own[0]!]), newTokens);
        });
      }
    }
  } finally {
    bar?.stop();
  }
  if (o.group && world > 1) {
    for (const part of await o.group.allgatherObject(gathered)) {
      for (const { index, rows } of part) {
        if (done.has(index)) continue;
        done.set(index, rows);
        if (rank === 0) appendFileSync(o.outFile, JSON.stringify({ index, rows } satisfies QuestionLine) + '\n');
      }
    }
  }
  if (done.size !== questions.length) throw new Error(`${o.label}: ${questions.length - done.size} questions were not generated`);
  const ordered = [...done].sort((a, b) => a[0] - b[0]);
  // The finished file in question order: the same bytes whatever the completion order, rank count or resume point.
  if (rank === 0) writeAtomic(o.outFile, ordered.map(([index, rows]) => JSON.stringify({ index, rows } satisfies QuestionLine) + '\n').join(''));
  return ordered.flatMap(([, rows]) => rows);
}

/** The questions grouped by their batch (q / batchSize), in order. */
function batchesOf(mine: readonly number[], batchSize: number): number[][] {
  const out: number[][] = [];
  for (const q of mine) {
    const last = out[out.length - 1];
    if (last && Math.floor(last[0]! / batchSize) === Math.floor(q / batchSize)) last.push(q);
    else out.push([q]);
  }
  return out;
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/**
 * The questions in a generation file, rewritten without a torn last line (killed mid-write) and
 * without lines of another format or out of range (an older run's batches): those are redone.
 */
function loadFinishedQuestions(outFile: string, count: number): [number, GeneratedRow[]][] {
  if (!existsSync(outFile)) return [];
  const done = new Map<number, GeneratedRow[]>();
  for (const line of readFileSync(outFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let parsed: Partial<QuestionLine>;
    try {
      parsed = JSON.parse(line) as Partial<QuestionLine>;
    } catch {
      break; // a torn line: its question is simply redone
    }
    const q = parsed.index;
    if (typeof q === 'number' && Number.isInteger(q) && q >= 0 && q < count && Array.isArray(parsed.rows)) done.set(q, parsed.rows);
  }
  writeAtomic(outFile, [...done].map(([index, rows]) => JSON.stringify({ index, rows }) + '\n').join(''));
  return [...done];
}

export function accuracy(rows: readonly GeneratedRow[]): number {
  return rows.length ? rows.filter((r) => r.correct).length / rows.length : 0;
}
