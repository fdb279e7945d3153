/**
 * Model benchmark: forward + backward and greedy generation for a randomly initialised model with
 * flan-t5-small's configuration, batch 8, 128 input / 128 target tokens (the shape issue #2 names).
 *
 *   npm run bench:model -- [--threads 2] [--iters 5] [--gen-tokens 128] [--dtype float32] [--json]
 *
 * Reports medians; greedy generation runs on the engine beside the static batched path it replaced. Reference point (not re-run here: this machine has no PyTorch): HF transformers
 * on PyTorch 1.13 + OpenBLAS took a median 4.25 s for a full training step (forward, backward,
 * AdamW) of the same shape on this kind of 2-core machine.
 */
import { cpus } from 'node:os';
import { native, setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { tensor } from '../../lib/model/tensor.js';

import { FLAN_T5_SMALL } from './configs.js';

// --family causal: the decoder-only benchmark (Qwen2-0.5B shape) instead of FlanT5's.
if (process.argv.includes('--family') && process.argv[process.argv.indexOf('--family') + 1] === 'causal') {
  await import('./causal-model.js');
  process.exit(0);
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const threads = Number(arg('threads', '2'));
const iters = Number(arg('iters', '5'));
const genTokens = Number(arg('gen-tokens', '128'));
const dtype = arg('dtype', 'float32') as 'float32' | 'bfloat16';
const asJson = process.argv.includes('--json');
const B = Number(arg('batch', '8')),
  S = Number(arg('src-len', '128')),
  T = Number(arg('tgt-len', '128'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

setNumThreads(threads);
const model = await T5Model.fromConfig(FLAN_T5_SMALL, { seed: 0, dtype });
let seed = 12345;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const ids = (n: number) => Int32Array.from({ length: n }, () => 2 + Math.floor(rand() * 32000));
const batch = { inputIds: tensor(ids(B * S), [B, S]), labels: tensor(ids(B * T), [B, T]) };

const fb: number[] = [];
for (let i = 0; i < iters + 1; i++) {
  model.zeroGrad();
  const t0 = performance.now();
  await model.forward(batch, { train: true, backward: true });
  if (i > 0) fb.push(performance.now() - t0); // first iteration warms up allocators and OpenMP
}
// Greedy generation, today's engine path (model.generate) and the static batched path it replaced
// (model.native.generate, what MENTOR_KD_STATIC_GENERATE=1 selects), alternated in one process so a
// shared machine's load weighs on both alike; the ids must be the same.
const gen: number[] = [];
const genStatic: number[] = [];
let generated = 0;
let identical = true;
for (let i = 0; i < Math.max(1, Math.floor(iters / 2)); i++) {
  let t0 = performance.now();
  const old = await model.native.generate({ inputIds: batch.inputIds }, { maxNewTokens: genTokens });
  genStatic.push(performance.now() - t0);
  t0 = performance.now();
  const out = await model.generate({ inputIds: batch.inputIds }, { maxNewTokens: genTokens });
  gen.push(performance.now() - t0);
  generated = out.shape[1]! - 1;
  identical &&= out.shape.join() === old.shape.join() && out.data.every((x, j) => x === old.data[j]);
}
const info = native().runtime.info();
const result = {
  machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}`,
  libtorch: info.torchVersion,
  threads: info.threads,
  dtype,
  shape: { batch: B, sourceTokens: S, targetTokens: T },
  parameters: model.info().numParameters,
  forwardBackwardMedianMs: Math.round(median(fb)),
  forwardBackwardAllMs: fb.map(Math.round),
  trainTokensPerSecond: Math.round((B * T) / (median(fb) / 1000)),
  greedyGenerateMedianMs: Math.round(median(gen)),
  greedyGenerateAllMs: gen.map(Math.round),
  generatedTokensPerSequence: generated,
  generatedTokensPerSecond: Math.round((B * generated) / (median(gen) / 1000)),
  staticGreedyGenerateMedianMs: Math.round(median(genStatic)),
  staticGreedyGenerateAllMs: genStatic.map(Math.round),
  greedySpeedupOverStatic: median(genStatic) / median(gen),
  greedyIdsIdentical: identical,
  reference: 'HF transformers + PyTorch 1.13 + OpenBLAS, same shape, this kind of machine: 4.25 s median per full training step (forward+backward+AdamW)',
};
model.dispose();
if (asJson) console.log(JSON.stringify(result));
else {
  console.log(
    `flan-t5-small config (${(result.parameters / 1e6).toFixed(1)}M params), batch ${B}, ${S}/${T} tokens, ${dtype}, ${result.threads} threads, libtorch ${result.libtorch}, ${result.machine}`,
  );
  console.log(
    `forward+backward: median ${result.forwardBackwardMedianMs} ms  (${result.trainTokensPerSecond} target tokens/s; runs ${result.forwardBackwardAllMs.join(', ')} ms)`,
  );
  console.log(
    `greedy generation: ${generated} new tokens x ${B} sequences — engine ${result.greedyGenerateMedianMs} ms (${result.generatedTokensPerSecond} tokens/s; runs ${result.greedyGenerateAllMs.join(', ')} ms), ` +
      `static path ${result.staticGreedyGenerateMedianMs} ms (runs ${result.staticGreedyGenerateAllMs.join(', ')} ms): ${result.greedySpeedupOverStatic.toFixed(2)}x, identical ids: ${identical}`,
  );
  console.log(`reference: ${result.reference}`);
}
