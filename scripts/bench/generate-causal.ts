/**
 * Generation benchmark for a causal LM (`npm run bench:generate -- --family causal`): the engine
 * (CausalLM.generateStream, continuous batching, each prompt prefilled once for its samples) in
 * float32 and bfloat16 beside the static KV-cached path (CausalLM.generate on left-padded batches of
 * 16 prompts x 3 samples, each batch run to its longest row), on one workload, same requests.
 *
 * Workload W-aug-causal: W-aug's draws (scripts/bench/generate-static.ts: 64 prompts of 32..128
 * tokens, 3 samples each at temperature 0.7, top-k 0, top-p 1, per-sample stops L in [16, 128]), the
 * ids folded into the model's vocabulary; a tiny Llama-style config (random init, seed 0) below.
 */
import { cpus } from 'node:os';
import { native } from '../../lib/native/index.js';
import { CausalLM } from '../../lib/model/causal-model.js';
import { tensor } from '../../lib/model/tensor.js';
import { wAug, wAugRequests } from './generate-static.js';

export const TINY_LLAMA = {
  model_type: 'llama',
  vocab_size: 8000,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
};

interface Workload {
  prompts: number[][];
  stops: number[][];
  samples: number;
  temperature: number;
  countedTokens: number;
}

function workload(): Workload {
  const w = wAug();
  const V = TINY_LLAMA.vocab_size;
  const prompts = w.sources.map((s) => s.map((id) => 3 + (id % (V - 3))));
  return { prompts, stops: w.stops, samples: w.samples, temperature: w.temperature, countedTokens: w.countedTokens };
}

async function runStatic(model: CausalLM, w: Workload, batchPrompts = 16) {
  const eos = new Set(model.info().eosTokenIds);
  let useful = 0,
    rowSteps = 0;
  const t0 = performance.now();
  for (let q0 = 0; q0 < w.prompts.length; q0 += batchPrompts) {
    const qs = w.prompts.slice(q0, q0 + batchPrompts);
    const stops = w.stops.slice(q0, q0 + batchPrompts);
    const L = Math.max(...qs.map((q) => q.length));
    const ids = new Int32Array(qs.length * L);
    const mask = new Int32Array(qs.length * L);
    qs.forEach((q, i) => {
      ids.set(q, (i + 1) * L - q.length);
      mask.fill(1, (i + 1) * L - q.length, (i + 1) * L);
    });
    const out = await model.generate(
      { inputIds: tensor(ids, [qs.length, L]), attentionMask: tensor(mask, [qs.length, L]) },
      { maxNewTokens: Math.max(...stops.flat()), doSample: true, temperature: w.temperature, topK: 0, topP: 1, numReturnSequences: w.samples, seed: q0 },
    );
    const width = out.shape[1]!;
    rowSteps += out.shape[0]! * (width - L);
    for (let r = 0; r < out.shape[0]!; r++) {
      const stop = stops[Math.floor(r / w.samples)]![r % w.samples]!;
      let n = 0;
      while (n < stop && L + n < width) {
        n++;
        if (eos.has(out.data[r * width + L + n - 1]!)) break;
      }
      useful += n;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, usefulTokens: useful, tokensPerSecond: useful / seconds, rowSteps };
}

async function runEngine(model: CausalLM, w: Workload, dtype: 'float32' | 'bfloat16', slots: number) {
  const requests = wAugRequests(w.prompts, w);
  let useful = 0;
  let stats: { steps: number; rowSteps: number; encoderPasses: number; encodeSeconds: number; decodeSeconds: number } | null = null;
  const t0 = performance.now();
  for await (const r of model.generateStream(requests, { slots, dtype, onProgress: (s) => (stats = s) })) useful += r.newTokens;
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, usefulTokens: useful, tokensPerSecond: useful / seconds, stats: stats! };
}

export async function benchCausal(options: { slots: number; json: boolean; static: boolean; bf16: boolean }): Promise<void> {
  const w = workload();
  const model = await CausalLM.fromConfig(TINY_LLAMA, { seed: 0 });
  try {
    const stat = options.static ? await runStatic(model, w) : null;
    const fp32 = await runEngine(model, w, 'float32', options.slots);
    const bf16 = options.bf16 ? await runEngine(model, w, 'bfloat16', options.slots) : null;
    const info = native().runtime.info();
    const result = {
      workload: 'W-aug-causal',
      config: TINY_LLAMA,
      machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}`,
      libtorch: info.torchVersion,
      threads: info.threads,
      countedTokens: w.countedTokens,
      slots: options.slots,
      static: stat,
      engineFloat32: fp32,
      engineBfloat16: bf16,
      speedupFloat32: stat ? fp32.tokensPerSecond / stat.tokensPerSecond : null,
      speedupBfloat16: stat && bf16 ? bf16.tokensPerSecond / stat.tokensPerSecond : null,
    };
    if (options.json) {
      console.log(JSON.stringify(result));
      return;
    }
    const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? '-' : x.toFixed(d));
    console.log(
      `W-aug-causal: 64 prompts (32..128 tokens) x 3 samples, ${w.countedTokens} counted tokens; tiny Llama (hidden 256, 4 layers, 8 heads / 2 KV, vocab 8000, random init), ${result.threads} threads, libtorch ${result.libtorch}, ${result.machine}`,
    );
    if (stat)
      console.log(
        `static path (16 prompts x 3/batch): ${f(stat.tokensPerSecond)} useful tokens/s (${stat.usefulTokens} in ${f(stat.seconds, 1)} s, ${stat.rowSteps} row-steps)`,
      );
    for (const [name, r, speedup] of [
      ['fp32', fp32, result.speedupFloat32],
      ['bf16', bf16, result.speedupBfloat16],
    ] as const) {
      if (!r) continue;
      console.log(
        `engine ${name}, ${options.slots} slots: ${f(r.tokensPerSecond)} useful tokens/s (${r.usefulTokens} in ${f(r.seconds, 1)} s)${speedup ? `, ${f(speedup, 2)}x static` : ''}; ${r.stats.encoderPasses} prefills ${f(r.stats.encodeSeconds, 1)} s, ${r.stats.steps} steps / ${r.stats.rowSteps} row-steps ${f(r.stats.decodeSeconds, 1)} s`,
      );
    }
  } finally {
    model.dispose();
  }
}
