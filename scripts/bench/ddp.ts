/**
 * Data-parallel step time: 1 process vs N processes on this machine (CPU, Gloo over loopback).
 *
 *   npm run bench:ddp -- [--steps 10] [--warmup 2] [--batch 16] [--src 64] [--tgt 32] [--d-model 256] [--layers 4] [--json out.json]
 *   npm run bench:ddp -- --sharding none,zero1,zero2 [...]
 *
 * Every configuration trains the same model on the same global batch per step (batch examples,
 * split evenly across ranks), with the cores divided among the processes: on 2 cores, 1 process
 * of 2 threads vs 2 processes of 1 thread each. Reported: median step time of rank 0 (forward +
 * backward + gradient all-reduce + SGD), its all-reduce wait after backward, and throughput.
 * The machine is shared: the load average before and after each run is printed, so contention
 * from other jobs is visible.
 *
 * --sharding: instead, N processes run the training engine's step (AdamW, clipping) under each
 * train.sharding given; reported beside DDP's (none): median step time, the optimizer part of it
 * (norm + AdamW + the parameter all-gather), and the optimizer state bytes each rank holds
 * (measured on its tensors).
 *
 * The same script is the worker (MKD_DDP_BENCH_WORKER=1), started by the launcher.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launch } from '../../lib/parallel/launch.js';
import { native } from '../../lib/native/index.js';
import { SHARDING, type Sharding } from '../../lib/config/train-settings.js';

// The reference second DDP path lives in the dev addon (test/helpers/dev-parallel.ts); the workers inherit this.
process.env.MENTOR_KD_NATIVE ??= join(import.meta.dirname, '../../build/Release/mentor_kd_dev.node');

interface Setup {
  steps: number;
  warmup: number;
  batch: number;
  src: number;
  tgt: number;
  dModel: number;
  layers: number;
  vocab: number;
  overlap: boolean;
  bucketBytes: number;
  out: string;
  /** Set: the training engine's step under this train.sharding (see the header). */
  sharding?: Sharding;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function worker(): Promise<void> {
  const { ProcessGroup } = await import('../../lib/parallel/process-group.js');
  const { DataParallel } = await import('../../lib/parallel/data-parallel.js');
  const { forwardBackward, sgdStep } = await import('../../test/helpers/dev-parallel.js');
  const { T5Model } = await import('../../lib/model/t5-model.js');
  const { tensor } = await import('../../lib/model/tensor.js');
  const s = JSON.parse(process.env.MKD_DDP_BENCH!) as Setup;
  const pg = await ProcessGroup.init({ timeoutMs: 120_000 });
  const config = {
    model_type: 't5',
    vocab_size: s.vocab,
    d_model: s.dModel,
    d_kv: 64,
    d_ff: s.dModel * 4,
    num_layers: s.layers,
    num_heads: s.dModel / 64,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: false,
    dropout_rate: 0.1,
  };
  const model = await T5Model.fromConfig(config, { seed: 0 });
  const dp = DataParallel.create(pg, model, { bucketBytes: s.bucketBytes });
  await dp.broadcastParameters(0);
  const per = s.batch / pg.worldSize;
  let x = 12345 + pg.rank;
  const rand = (n: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return 2 + (x % (n - 2));
  };
  const batch = () => ({
    inputIds: tensor(
      Int32Array.from({ length: per * s.src }, () => rand(s.vocab)),
      [per, s.src],
    ),
    labels: tensor(
      Int32Array.from({ length: per * s.tgt }, () => rand(s.vocab)),
      [per, s.tgt],
    ),
  });
  if (s.sharding) {
    await shardedSteps(s, pg, dp, model, batch);
    return;
  }
  const times: number[] = [];
  const waits: number[] = [];
  let overlapped = 0;
  let buckets = 0;
  for (let i = 0; i < s.warmup + s.steps; i++) {
    const b = batch();
    await pg.barrier(); // start every step together: step time is then the job's, not one rank's
    const t0 = performance.now();
    const r = await forwardBackward(dp, [b], { train: true, overlap: s.overlap });
    await sgdStep(model, 1e-4);
    const ms = performance.now() - t0;
    if (i >= s.warmup) {
      times.push(ms);
      waits.push(r.reduce.waitSeconds * 1000);
      overlapped = r.reduce.startedInBackward;
      buckets = r.reduce.buckets;
    }
  }
  const info = model.info();
  if (pg.isMain) {
    writeFileSync(s.out, JSON.stringify({ times, waits, overlapped, buckets, params: info.numParameters, threads: native().runtime.info().threads }));
  }
  model.dispose();
  await pg.destroy();
}

type Worker = {
  pg: import('../../lib/parallel/process-group.js').ProcessGroup;
  dp: import('../../lib/parallel/data-parallel.js').DataParallel;
  model: import('../../lib/model/t5-model.js').T5Model;
};

/** The training engine's step under s.sharding; rank 0 writes times and every rank's optimizer bytes. */
async function shardedSteps(
  s: Setup,
  pg: Worker['pg'],
  dp: Worker['dp'],
  model: Worker['model'],
  batch: () => { inputIds: import('../../lib/model/tensor.js').Tensor<Int32Array>; labels: import('../../lib/model/tensor.js').Tensor<Int32Array> },
): Promise<void> {
  const { TrainEngine } = await import('../../lib/train/engine.js');
  const { tensor } = await import('../../lib/model/tensor.js');
  const engine = await TrainEngine.create(model, { sharding: s.sharding, learning_rate: 1e-4, seed: 0 });
  engine.setDistributed(dp);
  const times: number[] = [];
  const optimizer: number[] = [];
  for (let i = 0; i < s.warmup + s.steps; i++) {
    const b = batch();
    const B = b.inputIds.shape[0]!;
    const collated = { ...b, attentionMask: tensor(new Int32Array(B * s.src).fill(1), [B, s.src]), exampleIds: [] as number[] };
    await pg.barrier();
    const t0 = performance.now();
    const r = await engine.step([collated]);
    const ms = performance.now() - t0;
    if (r.status !== 'ok') throw new Error(`sharding ${s.sharding}: step ${i} was ${r.status}`);
    if (i >= s.warmup) {
      times.push(ms);
      optimizer.push(r.timings.optimizer * 1000);
    }
  }
  const bytes = await pg.allgatherObject(engine.info().optimizerStateBytes);
  if (pg.isMain) writeFileSync(s.out, JSON.stringify({ times, optimizer, bytes, params: model.info().numParameters }));
  engine.dispose();
  model.dispose();
  await pg.destroy();
}

/** --sharding: each stage on nproc processes, DDP (none) first as the reference. */
async function shardingRuns(base: Omit<Setup, 'overlap' | 'out'>, stages: Sharding[], nproc: number, dir: string): Promise<Record<string, unknown>[]> {
  const cores = availableParallelism();
  const threads = Math.max(1, Math.floor(cores / nproc));
  const results: Record<string, unknown>[] = [];
  let reference: { ms: number; bytes: number } | undefined;
  for (const sharding of stages) {
    const out = join(dir, `sharding-${sharding}.json`);
    const before = loadavg()[0]!;
    const res = await launch({
      nprocPerNode: nproc,
      command: process.execPath,
      args: ['--import', 'tsx', process.argv[1]!],
      env: {
        ...process.env,
        MKD_DDP_BENCH_WORKER: '1',
        MKD_DDP_BENCH: JSON.stringify({ ...base, overlap: true, out, sharding }),
        MENTOR_KD_THREADS: String(threads),
        OMP_NUM_THREADS: String(threads),
      },
      forwardSignals: true,
    });
    if (res.exitCode !== 0) throw new Error(`sharding ${sharding}: ${res.message}`);
    const after = loadavg()[0]!;
    const w = JSON.parse(readFileSync(out, 'utf8')) as { times: number[]; optimizer: number[]; bytes: number[]; params: number };
    const ms = median(w.times);
    const bytes = Math.max(...w.bytes);
    reference ??= { ms, bytes };
    results.push({
      sharding,
      nproc,
      threads,
      medianMs: ms,
      optimizerMs: median(w.optimizer),
      optimizerBytesPerRank: w.bytes,
      loadBefore: before,
      loadAfter: after,
    });
    console.log(
      `${`${nproc} processes, sharding ${sharding}`.padEnd(32)} step ${ms.toFixed(0).padStart(6)} ms (min ${Math.min(...w.times).toFixed(0)}, max ${Math.max(...w.times).toFixed(0)}; ` +
        `${(ms / reference.ms).toFixed(2)}x DDP)  optimizer part ${median(w.optimizer).toFixed(1).padStart(6)} ms  ` +
        `optimizer state per rank ${w.bytes.map((b) => `${(b / 2 ** 20).toFixed(1)} MiB`).join(' / ')} (${(bytes / reference.bytes).toFixed(3)}x DDP)  ` +
        `load ${before.toFixed(2)}→${after.toFixed(2)}  (${(w.params / 1e6).toFixed(1)}M params)`,
    );
  }
  return results;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      batch: { type: 'string', default: '16' },
      src: { type: 'string', default: '64' },
      tgt: { type: 'string', default: '32' },
      'd-model': { type: 'string', default: '256' },
      layers: { type: 'string', default: '4' },
      vocab: { type: 'string', default: '4096' },
      'nproc-per-node': { type: 'string', default: String(Math.min(2, availableParallelism())) },
      json: { type: 'string' },
      sharding: { type: 'string' },
    },
  });
  const cores = availableParallelism();
  const nmax = Number(values['nproc-per-node']);
  const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-ddp-bench-'));
  const base = {
    steps: Number(values.steps),
    warmup: Number(values.warmup),
    batch: Number(values.batch),
    src: Number(values.src),
    tgt: Number(values.tgt),
    dModel: Number(values['d-model']),
    layers: Number(values.layers),
    vocab: Number(values.vocab),
    bucketBytes: 25 * 1024 * 1024,
  };
  if (base.batch % nmax) throw new Error(`--batch ${base.batch} must divide by --nproc-per-node ${nmax}`);
  if (values.sharding !== undefined) {
    const stages = values.sharding.split(',').map((x) => x.trim());
    for (const x of stages)
      if (!(SHARDING as readonly string[]).includes(x)) throw new Error(`--sharding takes ${SHARDING.join(', ')} (comma-separated), got ${JSON.stringify(x)}`);
    if (stages[0] !== 'none') stages.unshift('none'); // DDP is the reference
    console.log(
      `# Sharded optimizer (train.sharding) — ${cpus()[0]?.model ?? 'CPU'}, ${cores} cores, libtorch ${native().runtime.info().torchVersion}, Gloo over loopback`,
    );
    console.log(
      `model d_model=${base.dModel} layers=${base.layers}+${base.layers} vocab=${base.vocab}; global batch ${base.batch} × (src ${base.src}, tgt ${base.tgt}); training engine step (AdamW); ${base.steps} timed steps after ${base.warmup} warm-up\n`,
    );
    try {
      const results = await shardingRuns(base, stages as Sharding[], nmax, dir);
      if (values.json) writeFileSync(values.json, JSON.stringify({ cores, base, results }, null, 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    console.log('\nStep times on a shared machine are noisy (see the load averages); the bytes are exact.');
    return;
  }
  const runs: { name: string; nproc: number; threads: number; overlap: boolean }[] = [
    { name: `1 process × ${cores} threads`, nproc: 1, threads: cores, overlap: true },
    { name: `1 process × 1 thread`, nproc: 1, threads: 1, overlap: true },
    {
      name: `${nmax} processes × ${Math.max(1, Math.floor(cores / nmax))} thread(s), overlap`,
      nproc: nmax,
      threads: Math.max(1, Math.floor(cores / nmax)),
      overlap: true,
    },
    {
      name: `${nmax} processes × ${Math.max(1, Math.floor(cores / nmax))} thread(s), no overlap`,
      nproc: nmax,
      threads: Math.max(1, Math.floor(cores / nmax)),
      overlap: false,
    },
  ];
  console.log(`# DDP step time — ${cpus()[0]?.model ?? 'CPU'}, ${cores} cores, libtorch ${native().runtime.info().torchVersion}, Gloo over loopback`);
  console.log(
    `model d_model=${base.dModel} layers=${base.layers}+${base.layers} vocab=${base.vocab}; global batch ${base.batch} × (src ${base.src}, tgt ${base.tgt}); ${base.steps} timed steps after ${base.warmup} warm-up\n`,
  );
  const results: Record<string, unknown>[] = [];
  try {
    for (const r of runs) {
      const out = join(dir, `${results.length}.json`);
      const setup: Setup = { ...base, overlap: r.overlap, out };
      const before = loadavg()[0]!;
      const res = await launch({
        nprocPerNode: r.nproc,
        command: process.execPath,
        args: ['--import', 'tsx', process.argv[1]!],
        env: {
          ...process.env,
          MKD_DDP_BENCH_WORKER: '1',
          MKD_DDP_BENCH: JSON.stringify(setup),
          MENTOR_KD_THREADS: String(r.threads),
          OMP_NUM_THREADS: String(r.threads),
        },
        forwardSignals: true,
      });
      if (res.exitCode !== 0) throw new Error(`${r.name}: ${res.message}`);
      const after = loadavg()[0]!;
      const w = JSON.parse(readFileSync(out, 'utf8')) as {
        times: number[];
        waits: number[];
        overlapped: number;
        buckets: number;
        params: number;
        threads: number;
      };
      const ms = median(w.times);
      const tokens = base.batch * (base.src + base.tgt);
      results.push({
        ...r,
        medianMs: ms,
        minMs: Math.min(...w.times),
        maxMs: Math.max(...w.times),
        waitMs: median(w.waits),
        tokensPerSecond: (tokens / ms) * 1000,
        buckets: w.buckets,
        overlapped: w.overlapped,
        params: w.params,
        loadBefore: before,
        loadAfter: after,
      });
      console.log(
        `${r.name.padEnd(40)} step ${ms.toFixed(0).padStart(6)} ms (min ${Math.min(...w.times).toFixed(0)}, max ${Math.max(...w.times).toFixed(0)})  ` +
          `all-reduce wait ${median(w.waits).toFixed(1).padStart(6)} ms  ${((tokens / ms) * 1000).toFixed(0).padStart(7)} tok/s  ` +
          `buckets ${w.overlapped}/${w.buckets} in backward  load ${before.toFixed(2)}→${after.toFixed(2)}  (${(w.params / 1e6).toFixed(1)}M params)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    '\nOn a GPU machine the comparison to make is 1 vs N GPUs with NCCL (backend auto picks it): step time and tokens/s at a fixed per-GPU batch ' +
      '(weak scaling) and at a fixed global batch, overlap on vs off, and bucketBytes 1–100 MiB; on one node NVLink makes the all-reduce small next to backward.',
  );
  if (values.json) writeFileSync(values.json, JSON.stringify({ cores, base, results }, null, 2));
}

const entry = process.env.MKD_DDP_BENCH_WORKER === '1' ? worker() : main();
entry.catch((err: unknown) => {
  console.error(`ddp bench${process.env.RANK !== undefined ? ` rank ${process.env.RANK}` : ''}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
