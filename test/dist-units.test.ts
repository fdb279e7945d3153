/**
 * The distributed pieces one at a time: the torchrun environment contract, the sampler and
 * sharding, the launcher (env, failure, signals), and the native group's bad-input and
 * rendezvous errors on a single process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readDistState, DIST_STATE_FILE } from './helpers/dist-checkpoint.js';
import { DataParallel } from '../lib/parallel/data-parallel.js';
import { readDistEnv } from '../lib/parallel/env.js';
import { freePort, launch } from '../lib/parallel/launch.js';
import { devNative, native } from '../lib/native/loader.js';
import { forwardBackward } from './helpers/dev-parallel.js';
import { ProcessGroup } from '../lib/parallel/process-group.js';
import { DistributedSampler } from './helpers/distributed-sampler.js';
import { allreduceCounts, shardedMap, shardOf, unshard } from '../lib/parallel/sharded.js';
import { T5Model } from '../lib/model/t5-model.js';
import { CONFIG, collate, microBatches, rankExamples } from './helpers/dist-data.js';

const root = resolve(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-dist-units-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const full = { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29501', WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', GROUP_RANK: '1' };

describe('environment contract', () => {
  it('reads torchrun variables; without them it is one process', () => {
    expect(readDistEnv(full)).toEqual({
      rank: 3,
      worldSize: 4,
      localRank: 1,
      localWorldSize: 2,
      nodeRank: 1,
      masterAddr: '10.0.0.1',
      masterPort: 29501,
      source: 'torchrun',
    });
    expect(readDistEnv({})).toMatchObject({ rank: 0, worldSize: 1, localRank: 0 });
  });

  it('a PyTorchJob pod (no LOCAL_RANK) and a Slurm task are understood', () => {
    expect(readDistEnv({ MASTER_ADDR: 'job-master-0', MASTER_PORT: '23456', WORLD_SIZE: '3', RANK: '2' })).toMatchObject({
      rank: 2,
      worldSize: 3,
      localRank: 0,
      localWorldSize: 1,
    });
    expect(
      readDistEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '4(x2)', MASTER_ADDR: 'node1', MASTER_PORT: '29500' }),
    ).toMatchObject({ rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, source: 'slurm' });
  });

  it('bad values are errors naming the variable', () => {
    expect(() => readDistEnv({ ...full, RANK: '4' })).toThrow('RANK=4 is not < WORLD_SIZE=4');
    expect(() => readDistEnv({ ...full, WORLD_SIZE: 'two' })).toThrow('WORLD_SIZE="two" is not an integer >= 1');
    expect(() => readDistEnv({ ...full, RANK: '-1' })).toThrow('RANK="-1" is not an integer >= 0');
    expect(() => readDistEnv({ ...full, MASTER_ADDR: '' })).toThrow(/MASTER_ADDR is not set/);
    expect(() => readDistEnv({ ...full, MASTER_PORT: undefined })).toThrow(/MASTER_PORT is not set/);
    expect(() => readDistEnv({ ...full, MASTER_PORT: '70000' })).toThrow('MASTER_PORT=70000 is not a TCP port (1..65535)');
    expect(() => readDistEnv({ ...full, LOCAL_RANK: '2' })).toThrow('LOCAL_RANK=2 is not < LOCAL_WORLD_SIZE=2');
    expect(() => readDistEnv({ ...full, WORLD_SIZE: undefined })).toThrow(/WORLD_SIZE is not set/);
  });
});

describe('sampler and sharding', () => {
  it('shards are disjoint, cover the data, and are deterministic per (seed, epoch)', () => {
    const size = 10;
    const make = (rank: number) => new DistributedSampler({ size, rank, worldSize: 3, seed: 5 });
    const shards = [0, 1, 2].map((r) => make(r).indices());
    expect(shards.map((s) => s.length)).toEqual([4, 4, 4]); // padded to 12 by wrap-around
    const all = shards.flat();
    expect(new Set(all).size).toBe(size);
    expect(all.length - size).toBe(2); // only the wrap-around repeats
    expect(make(1).indices()).toEqual(shards[1]);
    const s = make(1);
    s.setEpoch(1);
    expect(s.indices()).not.toEqual(shards[1]);
    const dropped = [0, 1, 2].map((r) => new DistributedSampler({ size, rank: r, worldSize: 3, seed: 5, dropLast: true }).indices()).flat();
    expect(dropped).toHaveLength(9);
    expect(new Set(dropped).size).toBe(9);
    expect(new DistributedSampler({ size: 4, rank: 0, worldSize: 2, shuffle: false }).indices()).toEqual([0, 2]);
  });

  it('bad sampler arguments name the field', () => {
    expect(() => new DistributedSampler({ size: 10, rank: 2, worldSize: 2 })).toThrow('rank=2 is not < worldSize=2');
    expect(() => new DistributedSampler({ size: 0, rank: 0, worldSize: 2 })).toThrow('size must be an integer >= 1, got 0');
    expect(() => new DistributedSampler({ size: 1, rank: 0, worldSize: 2, dropLast: true })).toThrow(/leaves every rank empty/);
  });

  it('shardOf + unshard restore the order; broken parts are errors', async () => {
    const items = ['a', 'b', 'c', 'd', 'e'];
    const parts = [0, 1].map((r) => {
      const s = shardOf(items, r, 2);
      return { positions: s.positions, results: s.items.map((x) => x.toUpperCase()) };
    });
    expect(parts[0]!.positions).toEqual([0, 2, 4]);
    expect(unshard(parts, 5)).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(() => unshard([parts[0]!], 5)).toThrow('unshard: no rank produced position 1');
    expect(() => unshard([parts[0]!, parts[0]!], 5)).toThrow('unshard: position 0 was produced twice');
    // Without a group the helpers are plain local calls.
    expect(await shardedMap(undefined, items, async (s) => s.map((x) => x + '!'))).toEqual(items.map((x) => x + '!'));
    expect(await allreduceCounts(undefined, { correct: 3, total: 5 })).toEqual({ correct: 3, total: 5 });
  });
});

describe('launcher', () => {
  const node = process.execPath;

  it('gives each worker the torchrun environment and divides the cores', async () => {
    const dir = join(tmp, 'env');
    mkdirSync(dir, { recursive: true });
    const script = `require('fs').writeFileSync(require('path').join(${JSON.stringify(dir)}, process.env.RANK + '.json'), JSON.stringify(process.env))`;
    const r = await launch({
      nprocPerNode: 2,
      nnodes: 2,
      nodeRank: 1,
      masterAddr: '127.0.0.1',
      masterPort: 29999,
      command: node,
      args: ['-e', script],
      log: () => undefined,
      forwardSignals: false,
      env: { PATH: process.env.PATH },
    });
    expect(r.exitCode).toBe(0);
    const e = [2, 3].map((rank) => JSON.parse(readFileSync(join(dir, `${rank}.json`), 'utf8')) as Record<string, string>);
    expect(e[0]).toMatchObject({
      RANK: '2',
      LOCAL_RANK: '0',
      WORLD_SIZE: '4',
      LOCAL_WORLD_SIZE: '2',
      GROUP_RANK: '1',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: '29999',
    });
    expect(e[1]).toMatchObject({ RANK: '3', LOCAL_RANK: '1' });
    expect(Number(e[0]!.MENTOR_KD_THREADS)).toBeGreaterThanOrEqual(1);
    expect(e[0]!.OMP_NUM_THREADS).toBe(e[0]!.MENTOR_KD_THREADS);
  });

  it('one worker failing stops the others (SIGKILL after the grace period if they ignore SIGTERM) and names it', async () => {
    const lines: string[] = [];
    // Rank 0 ignores SIGTERM and would run forever; rank 1 fails with code 3.
    const script =
      "if (process.env.RANK === '1') setTimeout(() => process.exit(3), 300); else { process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); }";
    const t0 = Date.now();
    const r = await launch({ nprocPerNode: 2, command: node, args: ['-e', script], graceMs: 500, log: (l) => lines.push(l), forwardSignals: false });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.exitCode).toBe(3);
    expect(r.failed).toMatchObject({ rank: 1, code: 3 });
    expect(r.message).toMatch(/^job failed: rank 1 \(local rank 1, pid \d+\) exited with code 3$/);
    expect(r.exits.find((e) => e.rank === 0)!.signal).toBe('SIGKILL');
    expect(lines.join('\n')).toMatch(/rank 0 did not stop within 500 ms of SIGTERM; sending SIGKILL/);
  });

  it('forwards SIGINT to the workers and exits 130 (CLI)', async () => {
    const dir = join(tmp, 'sig');
    mkdirSync(dir, { recursive: true });
    const script = `const fs=require('fs'),p=require('path');process.on('SIGINT',()=>{fs.writeFileSync(p.join(${JSON.stringify(dir)},'int-'+process.env.RANK),'1');process.exit(0)});fs.writeFileSync(p.join(${JSON.stringify(dir)},'up-'+process.env.RANK),'1');setInterval(()=>{},1000)`;
    const child = spawn(node, ['--import', 'tsx', 'lib/cli.ts', 'launch', '--nproc-per-node', '2', '--', node, '-e', script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const deadline = Date.now() + 20_000;
    while (!(existsSync(join(dir, 'up-0')) && existsSync(join(dir, 'up-1'))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT'); // the launcher only (its own process group): it must forward
    expect(await exited).toBe(130);
    expect(existsSync(join(dir, 'int-0')) && existsSync(join(dir, 'int-1'))).toBe(true);
    expect(stderr).toMatch(/received SIGINT; forwarding it to 2 worker\(s\)/);
  });

  it('bad launcher arguments are errors naming the option', async () => {
    await expect(launch({ nprocPerNode: 0, command: node })).rejects.toThrow('launch: nproc-per-node must be an integer >= 1, got 0');
    await expect(launch({ nprocPerNode: 1, nnodes: 2, nodeRank: 2, masterAddr: 'h', command: node })).rejects.toThrow('launch: node-rank=2 is not < nnodes=2');
    await expect(launch({ nprocPerNode: 1, nnodes: 2, command: node })).rejects.toThrow(/--master-addr is required with --nnodes > 1/);
    await expect(launch({ nprocPerNode: 1, masterPort: 70000, command: node })).rejects.toThrow(/master-port=70000 is not a TCP port/);
  });
});

describe('native process group on one process', () => {
  it('bad options are errors naming the field', async () => {
    await expect(ProcessGroup.init({ rank: 3, worldSize: 2, env: {} })).rejects.toThrow('RANK=3 is not < WORLD_SIZE=2');
    const d = native().parallel;
    expect(d.available).toBe(true);
    const base = { rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, backend: 'gloo' as const, timeoutMs: 1000 };
    expect(() => d.ProcessGroup.create({ ...base, masterPort: 70000 })).toThrow('MASTER_PORT must be in 1..65535, got 70000');
    expect(() => d.ProcessGroup.create({ ...base, worldSize: 0 })).toThrow('WORLD_SIZE must be >= 1, got 0');
    expect(() => d.ProcessGroup.create({ ...base, timeoutMs: 0 })).toThrow('timeoutMs must be > 0, got 0');
    expect(() => d.ProcessGroup.create({ ...base, backend: 'mpi' as never })).toThrow("backend must be 'gloo' or 'nccl', got 'mpi'");
    if (!d.nccl) expect(() => d.ProcessGroup.create({ ...base, backend: 'nccl' })).toThrow(/backend 'nccl' needs a CUDA build/);
    await expect(ProcessGroup.init({ env: { MENTOR_KD_DIST_TIMEOUT_MS: 'soon' } })).rejects.toThrow(
      'MENTOR_KD_DIST_TIMEOUT_MS="soon" is not a positive integer',
    );
  });

  it('rendezvous failures name the missing rank, within the timeout', async () => {
    const port = await freePort();
    let t0 = Date.now();
    await expect(ProcessGroup.init({ rank: 0, worldSize: 2, masterPort: port, timeoutMs: 1000, env: {} })).rejects.toThrow(
      new RegExp(`rendezvous at 127.0.0.1:${port} timed out after 1000 ms: rank 1 of WORLD_SIZE=2 did not join`),
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    t0 = Date.now();
    await expect(ProcessGroup.init({ rank: 1, worldSize: 2, masterPort: await freePort(), timeoutMs: 1000, env: {} })).rejects.toThrow(
      /rank 1 could not reach the rendezvous store at MASTER_ADDR:MASTER_PORT=127.0.0.1:\d+ within 1000 ms \(is rank 0 running\?\)/,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    // MASTER_PORT already taken on rank 0.
    const busy = createServer();
    const busyPort = await new Promise<number>((r) => busy.listen(0, '127.0.0.1', () => r((busy.address() as { port: number }).port)));
    try {
      await expect(ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: busyPort, timeoutMs: 1000, env: {} })).rejects.toThrow(
        /rank 0 could not host the rendezvous store on MASTER_ADDR:MASTER_PORT=127.0.0.1:\d+/,
      );
    } finally {
      busy.close();
    }
  });

  it('collectives, objects and DataParallel on a world of one; errors after destroy', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 5000, env: {} });
    try {
      expect([pg.rank, pg.worldSize, pg.backend, pg.isMain, pg.device]).toEqual([0, 1, 'gloo', true, 'cpu']);
      expect(await pg.allreduceNumbers([1.5, -2], 'max')).toEqual([1.5, -2]);
      expect(await pg.allgatherObject({ a: [1, 2] })).toEqual([{ a: [1, 2] }]);
      expect(await pg.broadcastObject('hello')).toBe('hello');
      // Ten collectives called at once complete in call order.
      const many = await Promise.all(Array.from({ length: 10 }, (_, i) => pg.allgatherObject(i)));
      expect(many).toEqual(Array.from({ length: 10 }, (_, i) => [i]));
      const model = await T5Model.fromConfig(CONFIG, { seed: 1 });
      const dp = DataParallel.create(pg, model, { bucketBytes: 4096 });
      const names = dp.buckets().flatMap((b) => b.names);
      expect(names.slice().sort()).toEqual(model.parameterNames().slice().sort());
      expect(names[0]).toBe(model.parameterNames().at(-1)); // reverse order: the head first
      await expect(dp.allreduceGradients({ scale: 1, localTokens: 3 })).rejects.toThrow('options.scale and options.localTokens exclude each other');
      await expect(dp.allreduceGradients({ average: 'median' as never })).rejects.toThrow("options.average must be 'mean' or 'sum', got 'median'");
      expect(() => forwardBackward(dp, [])).toThrow('forwardBackward: microBatches is empty');
      await expect(forwardBackward(dp, [{ inputIds: { data: new Int32Array([1, 2]), shape: [1, 2] } }])).rejects.toThrow('microBatches[0].labels is required');
      expect(() => DataParallel.create(pg, model, { bucketBytes: 0 })).toThrow('bucketBytes must be a positive integer, got 0');
      model.dispose();
    } finally {
      await pg.destroy();
    }
    expect(() => pg.native).toThrow('ProcessGroup: used after destroy()');
  });

  it('resume refuses another world size, naming it', async () => {
    const dir = join(tmp, 'ck');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, DIST_STATE_FILE), JSON.stringify({ format: 'mentor-kd-dist-state', world_size: 2, step: 4 }));
    await expect(readDistState(dir, 1)).rejects.toThrow(/was written by a job with WORLD_SIZE=2, this job has WORLD_SIZE=1: resume with the same world size/);
    await expect(readDistState(join(tmp, 'nothing'), 1)).rejects.toThrow(/not a distributed checkpoint \(dist_state.json is missing\)/);
    expect((await readDistState(dir, 2)).step).toBe(4);
  });
});

describe("the reduced gradients are views of the reducer's buckets (gradient_as_bucket_view)", () => {
  it('after a reduced backward each rank holds every gradient once, with the same values', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 5000, env: {} });
    try {
      const model = await T5Model.fromConfig(CONFIG, { seed: 1 });
      const dp = DataParallel.create(pg, model, { bucketBytes: 4096 });
      const names = model.parameterNames();
      const buckets = dp.buckets();
      const bucketBytes = buckets.reduce((sum, b) => sum + b.bytes, 0);
      expect(buckets.length).toBeGreaterThan(3);
      const storage = () => devNative().dev.gradientStorage(dp.native);
      const gradients = () => names.map((n) => Array.from(model.getGradient(n)!.data));
      // One copy: every gradient lies in its bucket's buffer (one storage per bucket, nothing else), and the
      // reducer itself keeps no buffer once backward is over.
      const oneCopy = { gradients: names.length, gradientBytes: bucketBytes, storages: buckets.length, storageBytes: bucketBytes, reducerBufferBytes: 0 };
      expect(storage()).toMatchObject({ gradients: 0, storages: 0, reducerBufferBytes: 0 });

      // Reference: a plain backward of the same mean loss (no reducer involved), gradients as separate tensors.
      const batch = collate(rankExamples(0, 0, 1));
      await model.forward(batch, { backward: true });
      expect(storage()).toMatchObject({ gradients: names.length, reducerBufferBytes: 0 });
      const reference = gradients();
      model.zeroGrad();

      // Reduced during backward (armed hooks; world of one: the sum is the gradient itself, scaled by n/T = 1).
      await forwardBackward(dp, [batch], { train: false });
      expect(storage()).toEqual(oneCopy);
      expect(gradients()).toEqual(reference);
      // Accumulating without zeroGrad adds into the views in place; the next reduce packs into fresh buffers
      // and the old ones go with their last view.
      await forwardBackward(dp, [batch], { train: false, zeroGrad: false });
      expect(storage()).toEqual(oneCopy);
      expect(gradients()).toEqual(reference.map((g) => g.map((x) => 2 * x)));

      // Reduced after a backward done elsewhere (no hooks armed: every bucket is packed by the reduce).
      model.zeroGrad();
      await model.forward(batch, { backward: true });
      await dp.allreduceGradients({ average: 'sum' });
      expect(storage()).toEqual(oneCopy);
      expect(gradients()).toEqual(reference);

      // Gradient accumulation: the first micro-batch accumulates into ordinary tensors, the armed last one
      // moves them into the buckets.
      await forwardBackward(dp, microBatches(0, 0, 1), { train: false });
      expect(storage()).toEqual(oneCopy);
      model.zeroGrad();
      expect(storage()).toMatchObject({ gradients: 0, storages: 0, reducerBufferBytes: 0 });
      model.dispose();
    } finally {
      await pg.destroy();
    }
  });
});

describe("zero2's owner-mode reduce keeps two buckets in flight, not every gradient", () => {
  it('at most two buckets reduce at once, the buffers stay a fraction of the gradients, and the rank slice equals a plain backward bit for bit', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 5000, env: {} });
    try {
      const model = await T5Model.fromConfig(CONFIG, { seed: 1 });
      const dp = DataParallel.create(pg, model, { bucketBytes: 8192 });
      const dev = devNative().dev;
      const names = model.parameterNames();
      const bytes = dp.buckets().map((b) => b.bytes);
      const all = bytes.reduce((sum, b) => sum + b, 0);
      // Two buckets reducing plus the one backward is filling (native/parallel/grad_reducer.h kOwnerBucketsInFlight).
      const window = Math.max(...bytes.slice(2).map((b, i) => bytes[i]! + bytes[i + 1]! + b));
      expect(bytes.length).toBeGreaterThan(8);
      expect(window).toBeLessThan(all / 2);

      const batch = collate(rankExamples(0, 0, 1));
      await model.forward(batch, { backward: true });
      const reference = names.flatMap((n) => Array.from(model.getGradient(n)!.data));
      model.zeroGrad();

      // DDP (gradients as bucket views): every bucket is alive and reducing at once by the end of backward.
      await forwardBackward(dp, [batch], { train: false });
      expect(dev.reducerBuffers(dp.native)).toEqual({ bytes: 0, peakBytes: all, peakReducing: bytes.length, ownedGradient: null });
      model.zeroGrad();

      dev.ownerReduce(dp.native);
      const check = (bound: number) => {
        const r = dev.reducerBuffers(dp.native);
        expect(r.bytes).toBe(0);
        expect(r.peakReducing).toBe(2);
        expect(r.peakBytes).toBeGreaterThan(0);
        expect(r.peakBytes).toBeLessThanOrEqual(bound);
        // World of one: the rank's slice is the whole flat gradient, registration order.
        expect(Array.from(r.ownedGradient!.data)).toEqual(reference);
        // The gradients were released into the buckets as backward wrote them.
        expect(dev.gradientStorage(dp.native)).toMatchObject({ gradients: 0, reducerBufferBytes: 0 });
      };
      // Reduced during backward (armed hooks: a bucket starts once the one two before it is finished). Backward writes
      // a block's layer-norm gradient after the linears behind it, so a bucket may wait for it while the next ones
      // fill: more than three buckets' buffers, still a small part of the gradients.
      await forwardBackward(dp, [batch], { train: false });
      check(all / 4);
      // Reduced after a plain backward (no hooks armed: the reduce packs and starts the buckets in order): two
      // buckets reducing and the one being packed.
      await model.forward(batch, { backward: true });
      await dp.allreduceGradients({ average: 'sum' });
      check(window);
      model.dispose();
    } finally {
      await pg.destroy();
    }
  });
});
