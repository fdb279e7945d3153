/**
 * Workload W-aug (issue 13) and today's static generation path on it, kept beside
 * scripts/bench/generate.ts (which runs it side by side with the engine in one run).
 *
 * W-aug: flan-t5-small configuration, random init (seed 0); 64 questions, source lengths uniform in
 * [32, 128], source ids uniform in [2, 32001]; n = 3 samples per question at temperature 0.7, top-k 0,
 * top-p 1; each (question, sample) generates L new tokens, L uniform in [16, 128] (per-sample
 * maxNewTokens standing in for EOS); counted tokens = sum of L. All drawn with the LCG
 * s = (s * 1103515245 + 12345) mod 2^31, s0 = 1, value = lo + s mod (hi - lo + 1), in this order: the 64
 * source lengths, the 64 x 3 stop lengths (question-major), then the source ids question by question.
 *
 * Static path: batches of 16 questions x numReturnSequences 3 (the native static generate()), each
 * batch run to its longest row's L; a row's useful tokens are its first L (fewer if it sampled EOS).
 *
 *   npx tsx scripts/bench/generate-static.ts [--json]
 */
import { fileURLToPath } from 'node:url';
import type { GenerationRequest } from '../../lib/model/generate-stream.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { padBatch } from '../../lib/model/tensor.js';

import { FLAN_T5_SMALL } from './configs.js';

export interface WAug {
  sources: number[][];
  stops: number[][]; // [question][sample]
  samples: number;
  temperature: number;
  countedTokens: number;
}

export function wAug(): WAug {
  let s = 1n;
  const draw = (lo: number, hi: number) => {
    s = (s * 1103515245n + 12345n) % 2147483648n;
    return lo + Number(s % BigInt(hi - lo + 1));
  };
  const Q = 64,
    N = 3;
  const lengths = Array.from({ length: Q }, () => draw(32, 128));
  const stops = Array.from({ length: Q }, () => Array.from({ length: N }, () => draw(16, 128)));
  const sources = lengths.map((len) => Array.from({ length: len }, () => draw(2, 32001)));
  const countedTokens = stops.flat().reduce((a, b) => a + b, 0);
  return { sources, stops, samples: N, temperature: 0.7, countedTokens };
}

/**
 * W-aug's requests for the engine (generateStream), one per question: `inputs[q]` (the question's
 * source or prompt ids), w.samples samples at w.temperature, top-k 0, top-p 1, the per-sample stops
 * w.stops[q], seed q.
 */
export function wAugRequests(inputs: readonly number[][], w: Pick<WAug, 'stops' | 'samples' | 'temperature'>): GenerationRequest[] {
  return inputs.map((inputIds, q) => ({
    inputIds,
    samples: w.samples,
    maxNewTokens: w.stops[q]!,
    doSample: true,
    temperature: w.temperature,
    topK: 0,
    topP: 1,
    seed: q,
  }));
}

export interface PathResult {
  seconds: number;
  usefulTokens: number;
  tokensPerSecond: number;
  rowSteps: number;
}

/** Today's path: static batches of 16 questions x numReturnSequences 3, each run to its longest L. */
export async function runStatic(model: T5Model, w: WAug, batchQuestions = 16): Promise<PathResult> {
  const pad = model.info().padTokenId;
  const eos = new Set(model.info().eosTokenIds);
  let useful = 0,
    rowSteps = 0;
  const t0 = performance.now();
  for (let q0 = 0; q0 < w.sources.length; q0 += batchQuestions) {
    const qs = w.sources.slice(q0, q0 + batchQuestions);
    const stops = w.stops.slice(q0, q0 + batchQuestions);
    const maxL = Math.max(...stops.flat());
    const { ids, mask } = padBatch(qs, pad);
    const out = await model.native.generate(
      { inputIds: ids, attentionMask: mask },
      { maxNewTokens: maxL, doSample: true, temperature: w.temperature, topK: 0, topP: 1, numReturnSequences: w.samples, seed: q0 },
    );
    const width = out.shape[1]!;
    rowSteps += out.shape[0]! * (width - 1);
    for (let r = 0; r < out.shape[0]!; r++) {
      const L = stops[Math.floor(r / w.samples)]![r % w.samples]!;
      let n = 0;
      while (n < L && n + 1 < width) {
        n++;
        if (eos.has(out.data[r * width + n]!)) break;
      }
      useful += n;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, usefulTokens: useful, tokensPerSecond: useful / seconds, rowSteps };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const w = wAug();
  const model = await T5Model.fromConfig(FLAN_T5_SMALL, { seed: 0 });
  const r = await runStatic(model, w);
  model.dispose();
  if (process.argv.includes('--json')) console.log(JSON.stringify({ workload: 'W-aug', countedTokens: w.countedTokens, static: r }));
  else
    console.log(
      `W-aug static path (16 questions x 3 per batch): ${r.usefulTokens} useful tokens (sum of L ${w.countedTokens}) in ${r.seconds.toFixed(1)} s = ${r.tokensPerSecond.toFixed(0)} tokens/s; ${r.rowSteps} row-steps computed`,
    );
}
