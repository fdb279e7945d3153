/**
 * Generation benchmark on workload W-aug (defined in scripts/bench/generate-static.ts and issue 13):
 * the engine (lib/model/generate-stream.ts) in float32 and bfloat16 beside today's static path, in one
 * run, with the fraction of the GEMM-bound limit each reaches (decoder FLOPs per token x tokens/s
 * against the measured sgemm rate of this machine).
 *
 *   npm run bench:generate -- [--json] [--slots 64] [--threads 2] [--no-static] [--no-bf16] [--device cuda]
 *   npm run bench:generate -- --family causal [--json] [--slots 64] [--no-static] [--no-bf16]   (CPU)
 *
 * On CUDA (the engine's decode step replayed from a CUDA graph) no GEMM-bound fraction is printed: the
 * reference rate is the CPU's.
 */
import { cpus } from 'node:os';
import { native, setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { FLAN_T5_SMALL } from './configs.js';
import { runStatic, wAug, wAugRequests } from './generate-static.js';
import type { PathResult, WAug } from './generate-static.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const asJson = process.argv.includes('--json');
const slots = Number(arg('slots', '64'));
const engineOnly = process.argv.includes('--engine-only');
const device = arg('device', 'cpu') as 'cpu' | 'cuda';
const onCpu = device === 'cpu';
setNumThreads(Number(arg('threads', '2')));

// --family causal: the same comparison for a causal LM (scripts/bench/generate-causal.ts).
if (arg('family', 't5') === 'causal') {
  const { benchCausal } = await import('./generate-causal.js');
  await benchCausal({ slots, json: asJson, static: !process.argv.includes('--no-static') && !engineOnly, bf16: !process.argv.includes('--no-bf16') });
  process.exit(0);
}

/** Decoder FLOPs per generated token (GEMMs, and attention at the workload's mean lengths). */
function decoderFlopsPerToken(w: WAug): number {
  const c = FLAN_T5_SMALL;
  const D = c.d_model,
    I = c.num_heads * c.d_kv,
    F = c.d_ff,
    V = c.vocab_size;
  const perLayer = D * 3 * I + I * D + D * I + I * D + D * 2 * F + F * D;
  const meanSrc = w.sources.reduce((a, s) => a + s.length, 0) / w.sources.length;
  const meanPos = w.stops.flat().reduce((a, L) => a + (L * (L + 1)) / 2, 0) / w.countedTokens;
  const attn = 2 * I * (meanPos + meanSrc);
  return 2 * (c.num_decoder_layers * (perLayer + attn) + D * V);
}

async function runEngine(model: T5Model, w: WAug, dtype: 'float32' | 'bfloat16', slotCount: number) {
  const requests = wAugRequests(w.sources, w);
  let useful = 0;
  let stats = null as unknown as ReturnType<typeof Object>;
  const t0 = performance.now();
  for await (const r of model.generateStream(requests, { slots: slotCount, dtype, onProgress: (s) => (stats = s) })) useful += r.newTokens;
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, usefulTokens: useful, tokensPerSecond: useful / seconds, slots: slotCount, stats } as PathResult & { slots: number; stats: unknown };
}

const model = await T5Model.fromConfig(FLAN_T5_SMALL, { seed: 0, device });

// --greedy: bench:model's greedy 8 x 128 (128 source tokens, its LCG ids), static path and engine
// alternated in one process (medians of --reps each), so a shared machine's load hits both alike.
if (process.argv.includes('--greedy')) {
  const { tensor } = await import('../../lib/model/tensor.js');
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const ids = Int32Array.from({ length: 8 * 128 }, () => 2 + Math.floor(rand() * 32000));
  const batch = { inputIds: tensor(ids, [8, 128]) };
  const reps = Number(arg('reps', '3'));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const times: Record<string, number[]> = { static: [], engine: [] };
  const outs: Record<string, number[]> = {};
  for (let i = 0; i < reps; i++) {
    for (const path of ['static', 'engine'] as const) {
      const t0 = performance.now();
      const out = path === 'static' ? await model.native.generate(batch, { maxNewTokens: 128 }) : await model.generate(batch, { maxNewTokens: 128 });
      times[path]!.push(performance.now() - t0);
      outs[path] = Array.from(out.data);
    }
  }
  const same = JSON.stringify(outs.static) === JSON.stringify(outs.engine);
  const r = { staticMs: med(times.static!), engineMs: med(times.engine!), speedup: med(times.static!) / med(times.engine!), identical: same, runs: times };
  console.log(
    asJson
      ? JSON.stringify(r)
      : `greedy 8 x 128: static ${r.staticMs.toFixed(0)} ms, engine ${r.engineMs.toFixed(0)} ms (${r.speedup.toFixed(2)}x), identical ids: ${same}; runs ${JSON.stringify(times)}`,
  );
  model.dispose();
  process.exit(0);
}
const w = wAug();
const gemm = native().model.Generator;
// The sgemm rate is measured right before and after each path (their mean is that path's reference),
// so load from other processes on a shared machine weighs on the path and its reference alike.
const rate = async (dtype: string) => (onCpu ? gemm.measureGemm({ m: 256, n: 2048, k: 512, dtype, iters: 30 }) : NaN);
const rates: number[] = [];
async function timed<T>(fn: () => Promise<T>): Promise<T & { sgemmGflops: number }> {
  const before = await rate('float32');
  const r = await fn();
  const after = await rate('float32');
  rates.push(before, after);
  return { ...r, sgemmGflops: (before + after) / 2 };
}
const bgemm = process.argv.includes('--no-bf16') ? 0 : await rate('bfloat16');
const flops = decoderFlopsPerToken(w);
const stat = process.argv.includes('--no-static') || engineOnly ? null : await timed(() => runStatic(model, w));
const fp32 = await timed(() => runEngine(model, w, 'float32', slots));
const bf16 = process.argv.includes('--no-bf16') ? null : await timed(() => runEngine(model, w, 'bfloat16', slots));
model.dispose();
const sgemm = rates.reduce((a, b) => a + b, 0) / rates.length;

const frac = (r: (PathResult & { sgemmGflops: number }) | null) => (r && onCpu ? (flops * r.tokensPerSecond) / (r.sgemmGflops * 1e9) : null);
const info = native().runtime.info();
const result = {
  workload: 'W-aug',
  device,
  machine: `${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}`,
  libtorch: info.torchVersion,
  threads: info.threads,
  countedTokens: w.countedTokens,
  slots,
  decoderMflopPerToken: flops / 1e6,
  sgemmGflops: sgemm,
  bf16GemmGflops: bgemm,
  static: stat && { ...stat, gemmFraction: frac(stat) },
  engineFloat32: { ...fp32, gemmFraction: frac(fp32) },
  engineBfloat16: bf16 && { ...bf16, gemmFraction: frac(bf16) },
  speedupFloat32: stat ? fp32.tokensPerSecond / stat.tokensPerSecond : null,
  speedupBfloat16: stat && bf16 ? bf16.tokensPerSecond / stat.tokensPerSecond : null,
};
if (asJson) console.log(JSON.stringify(result));
else {
  const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? '-' : x.toFixed(d));
  console.log(
    `W-aug: 64 questions x 3 samples, ${w.countedTokens} counted tokens; flan-t5-small config (random init seed 0), ${result.threads} threads, libtorch ${result.libtorch}, ${result.machine}`,
  );
  console.log(
    `decoder ${f(result.decoderMflopPerToken, 1)} MFLOP/token; measured GEMM 256x512x2048: fp32 ${f(sgemm, 1)} GFLOP/s (mean of ${rates.map((x) => x.toFixed(0)).join('/')}), bf16 ${f(bgemm, 1)} GFLOP/s`,
  );
  if (stat)
    console.log(
      `static path (16 q x 3/batch): ${f(stat.tokensPerSecond)} useful tokens/s (${stat.usefulTokens} in ${f(stat.seconds, 1)} s, ${stat.rowSteps} row-steps), GEMM-bound fraction ${f(frac(stat)! * 100, 1)}%`,
    );
  console.log(
    `engine fp32, ${slots} slots:     ${f(fp32.tokensPerSecond)} useful tokens/s (${fp32.usefulTokens} in ${f(fp32.seconds, 1)} s), GEMM-bound fraction ${f(frac(fp32)! * 100, 1)}%${stat ? `, ${f(result.speedupFloat32, 2)}x static` : ''}`,
  );
  const st = (r: { stats: unknown }) => r.stats as { encodeSeconds: number; decodeSeconds: number; steps: number; rowSteps: number; encoderPasses: number };
  console.log(
    `  fp32 engine: ${st(fp32).encoderPasses} encoder passes ${f(st(fp32).encodeSeconds, 1)} s, ${st(fp32).steps} steps / ${st(fp32).rowSteps} row-steps ${f(st(fp32).decodeSeconds, 1)} s`,
  );
  if (bf16)
    console.log(
      `engine bf16, ${slots} slots:     ${f(bf16.tokensPerSecond)} useful tokens/s (${bf16.usefulTokens} in ${f(bf16.seconds, 1)} s), ${f(frac(bf16)! * 100, 1)}% of the fp32 GEMM bound${stat ? `, ${f(result.speedupBfloat16, 2)}x static` : ''}`,
    );
  if (bf16)
    console.log(
      `  bf16 engine: ${st(bf16).encoderPasses} encoder passes ${f(st(bf16).encodeSeconds, 1)} s, ${st(bf16).steps} steps / ${st(bf16).rowSteps} row-steps ${f(st(bf16).decodeSeconds, 1)} s`,
    );
}
