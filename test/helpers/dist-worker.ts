/**
 * A worker of the distributed tests, run by `mentor-kd launch` or directly with the torchrun
 * variables set. The job is described by MKD_TEST_JOB (JSON). Rank 0 writes results to job.out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataParallel } from '../../lib/parallel/data-parallel.js';
import { forwardBackward, sgdStep } from './dev-parallel.js';
import { loadDistCheckpoint, saveDistCheckpoint } from './dist-checkpoint.js';
import { ProcessGroup } from '../../lib/parallel/process-group.js';
import { onMainShared, shardedMap } from '../../lib/parallel/sharded.js';
import { checkSharedDirectory } from '../../lib/parallel/shared-fs.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { tensor } from '../../lib/model/tensor.js';
import { collate, CONFIG, INIT_SEED, LR, microBatches, PROMPTS, rankExamples } from './dist-data.js';

interface Job {
  steps: number;
  out: string;
  timeoutMs?: number;
  bucketBytes?: number;
  overlap?: boolean;
  checkpointDir?: string;
  checkpointAt?: number;
  resumeFrom?: string;
  generate?: boolean;
  dieAt?: number;
  hangAt?: number;
  explicit?: boolean;
  /** checkSharedDirectory on dirs[rank] (different folders stand for a filesystem not shared between nodes). */
  sharedCheck?: { dirs: string[] };
  /** Rank 0 works this long (past the collective timeout) inside onMainShared; rank 0 dies after dieAfterMs if set. */
  patient?: { busyMs: number; dieAfterMs?: number };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.env.MKD_TEST_JOB ?? '{}') as Job;
  const pg = await ProcessGroup.init({ timeoutMs: job.timeoutMs ?? 20_000 });
  const { rank, worldSize } = pg;
  if (job.sharedCheck) {
    mkdirSync(job.out, { recursive: true });
    await checkSharedDirectory(pg, job.sharedCheck.dirs[rank]!, 'run directory');
    writeFileSync(join(job.out, `rank${rank}.json`), JSON.stringify({ rank, shared: true }));
    await pg.destroy();
    return;
  }
  if (job.patient) {
    const { busyMs, dieAfterMs } = job.patient;
    mkdirSync(job.out, { recursive: true });
    const t0 = Date.now();
    const value = await onMainShared(
      pg,
      async () => {
        if (dieAfterMs !== undefined) {
          setTimeout(() => {
            writeFileSync(join(job.out, 'killed-at'), String(Date.now()));
            process.kill(process.pid, 'SIGKILL');
          }, dieAfterMs);
        }
        await new Promise((r) => setTimeout(r, busyMs));
        return { answer: 42 };
      },
      'slow rank-0 work',
    );
    writeFileSync(join(job.out, `rank${rank}.json`), JSON.stringify({ rank, waitedMs: Date.now() - t0, value }));
    await pg.destroy();
    return;
  }
  let model: T5Model;
  let start = 0;
  if (job.resumeFrom) {
    const r = await loadDistCheckpoint(pg, job.resumeFrom);
    model = r.model;
    start = r.state.step;
  } else {
    model = await T5Model.fromConfig(CONFIG, { seed: INIT_SEED + rank });
  }
  const dp = DataParallel.create(pg, model, { bucketBytes: job.bucketBytes });
  await dp.broadcastParameters(0);
  mkdirSync(job.out, { recursive: true });
  const report: Record<string, unknown> = { rank, worldSize, start, transport: pg.transport, buckets: dp.buckets().length, steps: [] as unknown[] };

  if (job.generate) {
    const generated = await shardedMap(pg, PROMPTS, async (shard) => {
      const out: number[][] = [];
      for (const p of shard) {
        const ids = await model.generate({ inputIds: tensor(Int32Array.from(p), [1, p.length]) }, { maxNewTokens: 6 });
        out.push(Array.from(ids.data));
      }
      return out;
    });
    report.generated = generated;
  }

  for (let step = start; step < job.steps; step++) {
    if (rank === 1 && job.dieAt === step) {
      writeFileSync(join(job.out, 'killed-at'), String(Date.now()));
      process.kill(process.pid, 'SIGKILL');
    }
    if (rank === 1 && job.hangAt === step) {
      // Alive (the heartbeat goes on) but never arrives at the next collective.
      writeFileSync(join(job.out, 'hung-at'), String(Date.now()));
      setInterval(() => undefined, 1000);
      await new Promise(() => undefined);
    }
    if (job.explicit) {
      // The other API: backward through the model (mean over this rank's tokens), then a
      // token-weighted all-reduce of the gradients. One batch per rank (no accumulation).
      const batch = collate(rankExamples(step, rank, worldSize));
      model.zeroGrad();
      const f = await model.forward(batch, { backward: true, train: true });
      const r = await dp.allreduceGradients({ localTokens: f.numLossTokens! });
      (report.steps as unknown[]).push({ ...r, localTokens: f.numLossTokens, localLoss: f.loss });
    } else {
      const r = await forwardBackward(dp, microBatches(step, rank, worldSize), { train: true, overlap: job.overlap ?? true });
      (report.steps as unknown[]).push(r);
    }
    await sgdStep(model, LR);
    if (job.checkpointDir && job.checkpointAt === step + 1) await saveDistCheckpoint(pg, job.checkpointDir, model, { step: step + 1 });
  }
  writeFileSync(join(job.out, `rank${rank}.json`), JSON.stringify(report));
  if (rank === 0) await model.save(join(job.out, 'final'));
  await pg.destroy();
}

main().catch((err: unknown) => {
  process.stderr.write(`dist-worker rank ${process.env.RANK}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
