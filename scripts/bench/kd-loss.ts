/**
 * Fused vs unfused KD loss: time and peak memory of one forward+backward.
 *
 *   npm run bench:kd -- --rows 8192 --vocab 32128 [--device cuda] [--json]
 *        [--dtype float32|bfloat16|float16] [--mentor-dtype ...] [--variants fused,fused_inplace,unfused]
 *        [--iters 3] [--warmup 1] [--threads N] [--hidden 512] [--k 64] [--tau τ] [--lambda λ]   (τ, λ: KD_DEFAULTS)
 *        [--divergence forward-kl|reverse-kl|jsd|skew-kl|skew-reverse-kl|tvd] [--beta β] [--alpha α]
 *
 * --cpu-time: also the process CPU time per iteration (CPU time of a run with iters + 1 iterations
 * minus one with 1, over iters: input generation cancels), which preemption on a shared machine
 * does not inflate as it does wall time; the summary then compares CPU times too.
 *
 * With a --divergence other than forward-kl, the fused op with forward KL runs too (variant
 * `fused_forward_kl`), and the summary gives the fused time over forward KL's and the fused
 * peak over the unfused composition's (the issue's targets: ≤ 1.5x and ≤ 1/3).
 *
 * --rounds R: the variant list (and `fused_forward_kl` after it) R times in turn, so that the
 * divergence and forward KL alternate on a shared machine; a variant's time is then the median
 * of its rounds' medians, and the time ratio the median of the rounds' ratios.
 * --estimate-unfused R: when `unfused` is not among the variants (at N = 8192 the unfused
 * composition of JSD needs more than 24 GiB), run it once at R rows and scale its peak linearly
 * to N rows (every tensor it holds is N×V or N), for the fused/unfused peak ratio.
 *
 * Each variant runs in a fresh child process (so allocator caches and the RSS high-water
 * mark of one do not leak into another); inputs are generated natively. Variants:
 *   fused           the fused op through autograd (student logits a leaf), new gradient buffer
 *   fused_inplace   the same, gradient written over the student logits
 *   unfused         cross_entropy + kl_div(log_softmax(s/τ), softmax(m/τ)) and autograd
 *   topk / topk_unfused                   mentor as top-k soft labels (--k)
 *   linear / linear_topk / linear_kd / linear_unfused
 *                   from hidden [N,d] and lm_head [V,d] (--hidden): fused linear+KD, matmul +
 *                   fused loss in place, matmul + unfused
 * Peak memory = tensor bytes above the inputs at the peak (counting CPU allocator, or the
 * CUDA caching allocator's peak), plus on CPU the touched-memory peak VmHWM − VmRSS after
 * `echo 5 > /proc/self/clear_refs`. On CUDA the achieved bandwidth of the fused kernel is
 * the minimum traffic (logits read once, gradient written once) over the step time.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KD_DEFAULTS } from '../../lib/kd/index.js';
import type { KdBenchOptions, KdBenchResult } from '../../lib/kd/index.js';
import { devNative } from '../../lib/native/loader.js';

// The benchmark is a dev-addon hook (dev.kdBench): load build/Release/mentor_kd_dev.node unless
// MENTOR_KD_NATIVE names another addon (the children inherit it).
process.env.MENTOR_KD_NATIVE ??= resolve(fileURLToPath(import.meta.url), '../../../build/Release/mentor_kd_dev.node');

type Args = Record<string, string | boolean>;

function parseArgs(argv: string[]): Args {
  const out: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`kd-loss bench: unexpected argument '${a}'`);
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

function num(args: Args, key: string, fallback: number): number {
  const v = args[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`kd-loss bench: --${key} must be a number, got '${String(v)}'`);
  return n;
}

const HBM_BYTES_PER_S: Record<string, number> = { H100: 3.35e12, H200: 4.8e12, A100: 2.0e12 };

function benchOptions(args: Args, variant: string): KdBenchOptions {
  return {
    rows: num(args, 'rows', 8192),
    vocab: num(args, 'vocab', 32128),
    variant: variant as KdBenchOptions['variant'],
    dtype: (args.dtype as KdBenchOptions['dtype']) ?? 'float32',
    mentorDtype: (args['mentor-dtype'] as KdBenchOptions['dtype']) ?? (args.dtype as KdBenchOptions['dtype']) ?? 'float32',
    device: (args.device as string) ?? 'cpu',
    iters: num(args, 'iters', 3),
    warmup: num(args, 'warmup', 1),
    tau: num(args, 'tau', KD_DEFAULTS.tau),
    lambda: num(args, 'lambda', KD_DEFAULTS.lambda),
    divergence: (args.divergence as KdBenchOptions['divergence']) ?? KD_DEFAULTS.divergence,
    beta: num(args, 'beta', KD_DEFAULTS.beta),
    alpha: num(args, 'alpha', KD_DEFAULTS.alpha),
    hidden: num(args, 'hidden', 512),
    k: num(args, 'k', 64),
    chunkRows: num(args, 'chunk-rows', 0),
  };
}

async function child(args: Args): Promise<void> {
  const threads = num(args, 'threads', availableParallelism());
  const n = devNative();
  n.runtime.setNumThreads(threads);
  const options = benchOptions(args, String(args.child));
  const cpuMs = async (o: KdBenchOptions): Promise<[KdBenchResult, number]> => {
    const c0 = process.cpuUsage();
    const res = await n.dev.kdBench(o);
    const c = process.cpuUsage(c0);
    return [res, (c.user + c.system) / 1000];
  };
  const [r, cpuAll] = await cpuMs(options);
  let cpuMsPerIter: number | undefined;
  if (args['cpu-time']) {
    const [, cpuOne] = await cpuMs({ ...options, iters: 1 });
    // warmup + iters vs warmup + 1 iterations: the difference is iters − 1 iterations.
    cpuMsPerIter = options.iters! > 1 ? (cpuAll - cpuOne) / (options.iters! - 1) : undefined;
  }
  process.stdout.write(`KD_BENCH_RESULT ${JSON.stringify({ ...r, ...(cpuMsPerIter !== undefined ? { cpuMsPerIter } : {}) })}\n`);
}

function runChild(argv: string[], variant: string): KdBenchResult & { cpuMsPerIter?: number } {
  const script = fileURLToPath(import.meta.url);
  const res = spawnSync(process.execPath, [...process.execArgv, script, ...argv, '--child', variant], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const line = (res.stdout ?? '').split('\n').find((l) => l.startsWith('KD_BENCH_RESULT '));
  if (res.status !== 0 || !line) {
    throw new Error(`kd-loss bench: variant ${variant} failed (exit ${res.status}, signal ${res.signal}):\n${res.stderr}`);
  }
  return JSON.parse(line.slice('KD_BENCH_RESULT '.length)) as KdBenchResult;
}

const mib = (b: number) => b / (1 << 20);

function gpuPeak(device: string): number | undefined {
  for (const [name, bw] of Object.entries(HBM_BYTES_PER_S)) if (device.includes(name)) return bw;
  return undefined;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2).filter((a) => a !== '--');
  const args = parseArgs(argv);
  if (args.child) return child(args);
  const variants = String(args.variants ?? 'fused,fused_inplace,unfused').split(',');
  const divergence = (args.divergence as string | undefined) ?? KD_DEFAULTS.divergence;
  const rounds = num(args, 'rounds', 1);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`kd-loss bench: --rounds must be a positive integer, got ${rounds}`);
  type Run = KdBenchResult & { cpuMsPerIter?: number };
  const runs: Record<string, Run[]> = {};
  const record = (v: string, r: Run) => (runs[v] ??= []).push(r);
  const withForward = divergence !== 'forward-kl' && variants.includes('fused');
  for (let round = 1; round <= rounds; round++) {
    const tag = rounds > 1 ? ` (round ${round}/${rounds})` : '';
    for (const v of variants) {
      if (!args.json) process.stderr.write(`running ${v}${tag} ...\n`);
      record(v, runChild(argv, v));
    }
    if (withForward) {
      if (!args.json) process.stderr.write(`running fused (forward-kl)${tag} ...\n`);
      record('fused_forward_kl', runChild([...argv, '--divergence', 'forward-kl'], 'fused'));
    }
  }
  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    const h = v.length >> 1;
    return v.length % 2 ? v[h]! : (v[h - 1]! + v[h]!) / 2;
  };
  // One result per variant: the rounds' median time (their times pooled), the first round's memory
  // figures (exact and load-independent).
  const results: Record<string, Run> = Object.fromEntries(
    Object.entries(runs).map(([v, rs]) => [
      v,
      {
        ...rs[0]!,
        medianMs: median(rs.map((r) => r.medianMs)),
        timesMs: rs.flatMap((r) => r.timesMs),
        ...(rs[0]!.cpuMsPerIter !== undefined ? { cpuMsPerIter: median(rs.map((r) => r.cpuMsPerIter ?? NaN)) } : {}),
      },
    ]),
  );
  const roundRatios = withForward ? runs.fused!.map((r, i) => r.medianMs / runs.fused_forward_kl![i]!.medianMs) : [];
  const estimateRows = num(args, 'estimate-unfused', 0);
  let unfusedEstimate: { rows: number; peakTotalBytes: number } | undefined;
  if (estimateRows > 0 && !results.unfused && results.fused) {
    if (!args.json) process.stderr.write(`running unfused at ${estimateRows} rows (peak estimate) ...\n`);
    const small = runChild([...argv, '--rows', String(estimateRows), '--iters', '1', '--warmup', '0'], 'unfused');
    const scale = results.fused.rows / small.rows;
    unfusedEstimate = { rows: small.rows, peakTotalBytes: (small.inputBytes + small.peakExtraBytes) * scale };
  }
  const base = results.unfused ?? results.topk_unfused ?? results.linear_unfused;
  const summary = Object.fromEntries(
    Object.entries(results).map(([v, r]) => {
      const peakTotal = r.inputBytes + r.peakExtraBytes;
      const bw = r.minTrafficBytes > 0 ? r.minTrafficBytes / (r.medianMs / 1e3) : undefined;
      const hbm = gpuPeak(r.device);
      return [
        v,
        {
          medianMs: r.medianMs,
          timesMs: r.timesMs,
          cpuMsPerIter: r.cpuMsPerIter ?? null,
          peakExtraMiB: mib(r.peakExtraBytes),
          peakTotalMiB: mib(peakTotal),
          rssPeakExtraMiB: r.rssPeakExtraBytes >= 0 ? mib(r.rssPeakExtraBytes) : null,
          inputMiB: mib(r.inputBytes),
          speedupVsUnfused: base ? base.medianMs / r.medianMs : null,
          peakTotalVsUnfused: base ? peakTotal / (base.inputBytes + base.peakExtraBytes) : null,
          peakExtraVsUnfused: base && base.peakExtraBytes > 0 ? r.peakExtraBytes / base.peakExtraBytes : null,
          achievedGBps: bw !== undefined ? bw / 1e9 : null,
          fractionOfHbm: bw !== undefined && hbm ? bw / hbm : null,
          loss: r.loss,
        },
      ];
    }),
  );
  const first = Object.values(results)[0]!;
  const out = {
    rows: first.rows,
    vocab: first.vocab,
    dtype: first.dtype,
    mentorDtype: first.mentorDtype,
    device: first.device,
    threads: first.threads,
    cpuKernels: first.isa,
    memoryMethod: first.memoryMethod,
    divergence,
    variants: summary,
    // The issue's targets: fused time / forward KL's fused time (≤ 1.5), fused peak / unfused peak (≤ 1/3).
    rounds,
    fusedVsForwardKl: roundRatios.length ? median(roundRatios) : null,
    fusedVsForwardKlRounds: roundRatios,
    fusedPeakVsUnfused: summary.fused && summary.unfused ? summary.fused.peakTotalMiB / summary.unfused.peakTotalMiB : null,
    unfusedPeakEstimate: unfusedEstimate
      ? {
          fromRows: unfusedEstimate.rows,
          peakTotalMiB: mib(unfusedEstimate.peakTotalBytes),
          fusedPeakVsUnfused: summary.fused!.peakTotalMiB / mib(unfusedEstimate.peakTotalBytes),
        }
      : null,
    fusedVsForwardKlCpu:
      results.fused?.cpuMsPerIter && results.fused_forward_kl?.cpuMsPerIter ? results.fused.cpuMsPerIter / results.fused_forward_kl.cpuMsPerIter : null,
  };
  if (args.json) {
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  console.log(
    `divergence ${divergence}: fused/forward-KL fused time ${(out.fusedVsForwardKl ?? NaN).toFixed(2)}x` +
      (rounds > 1 ? ` (median of ${rounds} rounds: ${roundRatios.map((r) => r.toFixed(2)).join(', ')})` : '') +
      (out.fusedPeakVsUnfused !== null ? `, fused/unfused peak total ${out.fusedPeakVsUnfused.toFixed(3)}` : ''),
  );
  if (out.unfusedPeakEstimate)
    console.log(
      `divergence ${divergence}: fused/unfused peak total ${out.unfusedPeakEstimate.fusedPeakVsUnfused.toFixed(3)} ` +
        `(${summary.fused!.peakTotalMiB.toFixed(0)} / ${out.unfusedPeakEstimate.peakTotalMiB.toFixed(0)} MiB; the unfused peak measured at ` +
        `N=${out.unfusedPeakEstimate.fromRows} and scaled to N=${out.rows})`,
    );
  if (out.fusedVsForwardKlCpu !== null)
    console.log(
      `divergence ${divergence}: fused/forward-KL fused CPU time per iteration ${out.fusedVsForwardKlCpu.toFixed(2)}x (${results.fused!.cpuMsPerIter!.toFixed(1)} / ${results.fused_forward_kl!.cpuMsPerIter!.toFixed(1)} ms)`,
    );
  console.log(`KD loss, N=${out.rows} V=${out.vocab} ${out.dtype}/${out.mentorDtype} on ${out.device} (${out.threads} threads, CPU kernels ${out.cpuKernels})`);
  console.log('variant           median ms    best ms   speedup   peak extra MiB  peak total MiB  (vs unfused)  RSS extra MiB   GB/s');
  for (const [v, s] of Object.entries(summary)) {
    console.log(
      `${v.padEnd(16)} ${s.medianMs.toFixed(1).padStart(10)} ${Math.min(...s.timesMs)
        .toFixed(1)
        .padStart(10)} ${s.speedupVsUnfused !== null ? `${s.speedupVsUnfused.toFixed(2)}x`.padStart(9) : '        -'} ` +
        `${s.peakExtraMiB.toFixed(0).padStart(15)} ${s.peakTotalMiB.toFixed(0).padStart(15)} ${s.peakTotalVsUnfused !== null && s.peakTotalVsUnfused !== undefined ? s.peakTotalVsUnfused.toFixed(2).padStart(12) : '           -'}  ` +
        `${(s.rssPeakExtraMiB ?? NaN).toFixed(0).padStart(13)} ${s.achievedGBps !== null ? s.achievedGBps.toFixed(0).padStart(6) : '     -'}` +
        (s.fractionOfHbm !== null ? ` (${(100 * s.fractionOfHbm).toFixed(0)}% of HBM)` : ''),
    );
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
