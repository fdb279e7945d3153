/**
 * Decoder-only model benchmark (`npm run bench:model -- --family causal`): forward + backward and
 * KV-cached greedy generation for a randomly initialised model with Qwen2-0.5B's shape (hidden 896,
 * 24 layers, 14 heads / 2 KV heads, intermediate 4864, vocab 151 936, tied head).
 *
 *   npm run bench:model -- --family causal [--layers 24] [--batch 2] [--seq-len 128]
 *     [--prompt-len 32] [--gen-tokens 16] [--iters 3] [--threads 2] [--dtype float32] [--json]
 *
 * --layers shrinks the depth (everything else stays Qwen2-0.5B's); the output says so. Reports
 * medians of the timed runs (the first forward+backward is a warm-up and not timed).
 */
import { cpus } from 'node:os';
import { native, setNumThreads } from '../../lib/native/index.js';
import { CausalLM } from '../../lib/model/causal-model.js';
import { tensor } from '../../lib/model/tensor.js';
import { QWEN2_0_5B } from './configs.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const threads = Number(arg('threads', '2'));
const iters = Number(arg('iters', '3'));
const layers = Number(arg('layers', String(QWEN2_0_5B.num_hidden_layers)));
const B = Number(arg('batch', '2'));
const T = Number(arg('seq-len', '128'));
const P = Number(arg('prompt-len', '32'));
const genTokens = Number(arg('gen-tokens', '16'));
const dtype = arg('dtype', 'float32') as 'float32' | 'bfloat16';
const asJson = process.argv.includes('--json');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

setNumThreads(threads);
const config = { ...QWEN2_0_5B, num_hidden_layers: layers };
const t0 = performance.now();
const model = await CausalLM.fromConfig(config, { seed: 0, dtype });
const initMs = performance.now() - t0;
let seed = 12345;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const ids = (n: number) => Int32Array.from({ length: n }, () => Math.floor(rand() * config.vocab_size));
const trainIds = tensor(ids(B * T), [B, T]);
const batch = { inputIds: trainIds, labels: trainIds };

const fb: number[] = [];
for (let i = 0; i < iters + 1; i++) {
  model.zeroGrad();
  const s = performance.now();
  await model.forward(batch, { backward: true });
  if (i > 0) fb.push(performance.now() - s); // the first iteration warms up allocators and OpenMP
}
model.zeroGrad();
const gen: number[] = [];
let generated = 0;
const prompts = { inputIds: tensor(ids(B * P), [B, P]) };
for (let i = 0; i < Math.max(1, Math.floor(iters / 2)); i++) {
  const s = performance.now();
  const out = await model.generate(prompts, { maxNewTokens: genTokens });
  gen.push(performance.now() - s);
  generated = out.shape[1]! - P;
}
const info = native().runtime.info();
const result = {
  machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}`,
  libtorch: info.torchVersion,
  threads: info.threads,
  dtype,
  config: layers === QWEN2_0_5B.num_hidden_layers ? 'Qwen2-0.5B shape' : `Qwen2-0.5B shape shrunk to ${layers} of 24 layers`,
  parameters: model.info().numParameters,
  initMs: Math.round(initMs),
  shape: { batch: B, trainTokens: T, promptTokens: P },
  forwardBackwardMedianMs: Math.round(median(fb)),
  forwardBackwardAllMs: fb.map(Math.round),
  trainTokensPerSecond: Math.round((B * T) / (median(fb) / 1000)),
  greedyGenerateMedianMs: Math.round(median(gen)),
  greedyGenerateAllMs: gen.map(Math.round),
  generatedTokensPerSequence: generated,
  generatedTokensPerSecond: Math.round((B * generated) / (median(gen) / 1000)),
};
model.dispose();
if (asJson) console.log(JSON.stringify(result));
else {
  console.log(
    `${result.config} (${(result.parameters / 1e6).toFixed(1)}M params), batch ${B}, ${T} train tokens, ${P}-token prompts, ${dtype}, ${result.threads} threads, libtorch ${result.libtorch}, ${result.machine}`,
  );
  console.log(
    `forward+backward: median ${result.forwardBackwardMedianMs} ms (${result.trainTokensPerSecond} tokens/s; runs ${result.forwardBackwardAllMs.join(', ')} ms)`,
  );
  console.log(
    `greedy generation (KV cache): ${generated} new tokens x ${B} sequences, median ${result.greedyGenerateMedianMs} ms (${result.generatedTokensPerSecond} tokens/s; runs ${result.greedyGenerateAllMs.join(', ')} ms)`,
  );
}
