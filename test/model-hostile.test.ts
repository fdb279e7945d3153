/**
 * Hostile inputs at model load and generation (issue "Hostile inputs and misuse", model part).
 * Each case ends in an Error naming the file and the field or tensor at fault, or in a correct
 * result. The memory cases run in a child process whose address space is capped right before the
 * operation (prlimit --pid --as): a blow-up would show as an allocator failure or a killed child,
 * not as the named Error these tests expect, and the child must exit normally.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { tensor } from '../lib/model/tensor.js';
import { fixtureDir, safetensorsBytes } from './helpers/fixtures.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'helpers', 'model-hostile-child.ts');
/** t5-tiny-tied-relu-seed3: vocab 96, d_model 32, 2 encoder and 3 decoder layers, 4 heads, 32 buckets. */
const SRC = fixtureDir('t5-tiny-tied-relu-seed3');
const MB = 1024 * 1024;

let tmp: string;
let baseConfig: Record<string, unknown>;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-hostile-'));
  baseConfig = JSON.parse(await readFile(join(SRC, 'config.json'), 'utf8')) as Record<string, unknown>;
});
afterAll(async () => rm(tmp, { recursive: true, force: true }));

/** A copy of the fixture folder with config.json replaced by `configText`. */
async function modelDir(name: string, configText: string, weights?: Buffer): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), configText);
  if (weights) await writeFile(join(dir, 'model.safetensors'), weights);
  else await copyFile(join(SRC, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  result: { ok: boolean; error?: string; readyHwmKb: number; vmHwmKb: number; steps?: number };
}

/**
 * Runs one job in a child (see helpers/model-hostile-child.ts) whose address space is capped at
 * what it has mapped once ready plus `headroomBytes`.
 */
function runCapped(job: Record<string, unknown>, headroomBytes: number, timeoutMs = 90_000): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, HOSTILE_JOB: JSON.stringify(job) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let capped = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^READY (\d+) (\d+)$/m.exec(out);
      if (m && !capped) {
        capped = true;
        const limit = Number(m[1]) * 1024 + headroomBytes;
        try {
          execFileSync('prlimit', ['--pid', String(child.pid), `--as=${limit}`]);
        } catch (e) {
          child.kill('SIGKILL');
          reject(e as Error);
          return;
        }
        child.stdin.end('go\n');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      let result: ChildOutcome['result'];
      try {
        result = JSON.parse(last) as ChildOutcome['result'];
      } catch {
        reject(new Error(`child gave no result (code ${code}, signal ${signal}):\n${out}\n${stderr}`));
        return;
      }
      resolve({ code, signal, stderr, result });
    });
  });
}

/** The named refusal, from a child that stayed alive and exited normally. */
function expectRefused(o: ChildOutcome, re: RegExp): void {
  expect(o.signal, o.stderr).toBeNull();
  expect(o.code, o.stderr).toBe(0);
  expect(o.result.ok).toBe(false);
  expect(o.result.error).toMatch(re);
  expect(o.result.error).not.toMatch(/DefaultCPUAllocator|can't allocate|Storage size calculation overflowed|bad_alloc/);
}

const INT64_MAX = '9223372036854775807';

describe('case 1: config.json sizes are checked against the safetensors header before allocating', () => {
  const cases: [string, (c: Record<string, unknown>) => string, RegExp][] = [
    ['layers', (c) => JSON.stringify({ ...c, num_layers: 1_000_000 }), /config\.json: field 'num_layers' = 1000000 but the checkpoint holds 2 encoder blocks/],
    [
      'dec-layers',
      (c) => JSON.stringify({ ...c, num_decoder_layers: 1_000_000 }),
      /config\.json: field 'num_decoder_layers' = 1000000 but the checkpoint holds 3 decoder blocks/,
    ],
    [
      'vocab',
      (c) => JSON.stringify({ ...c, vocab_size: 100_000_000 }),
      /model\.safetensors: tensor 'shared\.weight' has shape \[96, 32\] but config\.json implies \[100000000, 32\] \(vocab_size = 100000000, d_model = 32\)/,
    ],
    [
      'buckets',
      (c) => JSON.stringify({ ...c, relative_attention_num_buckets: 1_000_000_000, relative_attention_max_distance: 1_000_000_000 }),
      /model\.safetensors: tensor '.*relative_attention_bias\.weight' has shape \[32, 4\] but config\.json implies \[1000000000, 4\] \(relative_attention_num_buckets = 1000000000, num_heads = 4\)/,
    ],
    [
      'd-model',
      (c) => JSON.stringify({ ...c, d_model: 1_000_000_000 }),
      /model\.safetensors: tensor '.+' has shape \[.+\] but config\.json implies \[.*1000000000.*\] \(.*d_model = 1000000000/,
    ],
    [
      'd-model-max',
      (c) => JSON.stringify({ ...c, d_model: 1 }).replace('"d_model":1', `"d_model":${INT64_MAX}`),
      /config\.json: vocab_size \* d_model overflows a 64-bit size/,
    ],
    ['ff-max', (c) => JSON.stringify({ ...c, d_ff: 1 }).replace('"d_ff":1', `"d_ff":${INT64_MAX}`), /config\.json: d_ff \* d_model overflows a 64-bit size/],
    [
      'heads-max',
      (c) => JSON.stringify({ ...c, num_heads: 1 }).replace('"num_heads":1', `"num_heads":${INT64_MAX}`),
      /config\.json: num_heads \* d_kv overflows a 64-bit size/,
    ],
  ];
  for (const [name, edit, re] of cases) {
    it(`${name}: a named Error, under a 512 MB allocation cap`, async () => {
      const dir = await modelDir(`c1-${name}`, edit(baseConfig));
      expectRefused(await runCapped({ op: 'load', dir }, 512 * MB), re);
    });
  }

  it('the same cap leaves room to load the fixture itself', async () => {
    const dir = await modelDir('c1-ok', JSON.stringify(baseConfig));
    const o = await runCapped({ op: 'load', dir }, 512 * MB);
    expect(o.result).toMatchObject({ ok: true });
  });
});

describe('case 1: fromConfig estimates the parameter bytes against a memory budget', () => {
  it('refuses what the available memory cannot hold, naming the fields and bytes', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...baseConfig, num_layers: 1_000_000 }, /encoder \(num_layers 1000000 x d_model 32.*\): \d+ bytes/],
      [{ ...baseConfig, vocab_size: 100_000_000 }, /embeddings \(vocab_size 100000000 x d_model 32\): \d+ bytes/],
      [
        { ...baseConfig, relative_attention_num_buckets: 1_000_000_000, relative_attention_max_distance: 1_000_000_000 },
        /relative attention bias \(relative_attention_num_buckets 1000000000 x num_heads 4\): \d+ bytes/,
      ],
      [{ ...baseConfig, d_model: 1_000_000_000 }, /d_model 1000000000/],
    ];
    for (const [config, re] of cases) {
      const o = await runCapped({ op: 'fromConfig', config: JSON.stringify(config) }, 512 * MB);
      expectRefused(o, re);
      expect(o.result.error).toMatch(
        /^config: the model's parameters need about \d+ bytes \(.+\) as float32, more than \d+ bytes \(.+\) allowed by the memory available to this process/,
      );
    }
    const text = JSON.stringify({ ...baseConfig, d_model: 1 }).replace('"d_model":1', `"d_model":${INT64_MAX}`);
    expectRefused(await runCapped({ op: 'fromConfig', config: text }, 512 * MB), /config: vocab_size \* d_model overflows a 64-bit size/);
  });

  it('memoryBudgetBytes sets the budget per call', async () => {
    await expect(T5Model.fromConfig(baseConfig, { memoryBudgetBytes: 100_000 })).rejects.toThrow(
      /config: the model's parameters need about \d+ bytes .* more than 100000 bytes .* allowed by the memoryBudgetBytes option — .*embeddings \(vocab_size 96 x d_model 32\)/,
    );
    const m = await T5Model.fromConfig(baseConfig, { memoryBudgetBytes: 10 * MB });
    m.dispose();
    const dir = await modelDir('c1-budget', JSON.stringify(baseConfig));
    await expect(T5Model.load(dir, { memoryBudgetBytes: 1000 })).rejects.toThrow(
      /config\.json: the model's parameters need about \d+ bytes .* more than 1000 bytes/,
    );
    await expect(T5Model.fromConfig(baseConfig, { memoryBudgetBytes: 1.5 })).rejects.toThrow(
      /T5Model\.fromConfig: memoryBudgetBytes must be an integer, got 1\.5/,
    );
  });
});

/** Resolves to the promise's outcome, or to 'hung' after `ms`. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([
      p.then(
        () => 'loaded',
        (e: Error) => e,
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('case 2: non-regular files are refused, never opened blocking', () => {
  it('model.safetensors, config.json or generation_config.json as a FIFO', async () => {
    const fifoWeights = join(tmp, 'c2-weights');
    await mkdir(fifoWeights, { recursive: true });
    await copyFile(join(SRC, 'config.json'), join(fifoWeights, 'config.json'));
    execFileSync('mkfifo', [join(fifoWeights, 'model.safetensors')]);
    const e1 = await settleWithin(T5Model.load(fifoWeights), 10_000);
    expect(e1).toBeInstanceOf(Error);
    expect((e1 as Error).message).toMatch(/c2-weights\/model\.safetensors: is a FIFO \(named pipe\), expected a regular file/);

    const fifoConfig = join(tmp, 'c2-config');
    await mkdir(fifoConfig, { recursive: true });
    await copyFile(join(SRC, 'model.safetensors'), join(fifoConfig, 'model.safetensors'));
    execFileSync('mkfifo', [join(fifoConfig, 'config.json')]);
    const e2 = await settleWithin(T5Model.load(fifoConfig), 10_000);
    expect((e2 as Error).message).toMatch(/c2-config\/config\.json: is a FIFO \(named pipe\), expected a regular file/);

    const fifoGen = await modelDir('c2-gen', JSON.stringify(baseConfig));
    execFileSync('mkfifo', [join(fifoGen, 'generation_config.json')]);
    const e3 = await settleWithin(T5Model.load(fifoGen), 10_000);
    expect((e3 as Error).message).toMatch(/generation_config\.json: is a FIFO/);

    const e4 = await settleWithin(readSafetensors(join(fifoWeights, 'model.safetensors')), 10_000);
    expect((e4 as Error).message).toMatch(/model\.safetensors: is a FIFO/);
    // A character device.
    const e5 = await settleWithin(readSafetensors('/dev/zero'), 10_000);
    expect((e5 as Error).message).toMatch(/\/dev\/zero: is a character device, expected a regular file/);
  });
});

/** The fixture's header and data buffer, for hand-edited copies. */
async function fixtureParts(): Promise<{ header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; data: Buffer }> {
  const raw = await readFile(join(SRC, 'model.safetensors'));
  const n = Number(raw.readBigUInt64LE(0));
  return { header: JSON.parse(raw.subarray(8, 8 + n).toString('utf8')), data: Buffer.from(raw.subarray(8 + n)) };
}

describe('case 3: a duplicate key in a safetensors header', () => {
  it('is refused naming the key', async () => {
    const { header, data } = await fixtureParts();
    const text = JSON.stringify(header);
    const dup = `{"shared.weight":${JSON.stringify(header['shared.weight'])},${text.slice(1)}`;
    const h = Buffer.from(dup, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const dir = await modelDir('c3', JSON.stringify(baseConfig), Buffer.concat([len, h, data]));
    await expect(T5Model.load(dir)).rejects.toThrow(/c3\/model\.safetensors: header has a duplicate tensor key 'shared\.weight'/);
    await expect(readSafetensors(join(dir, 'model.safetensors'))).rejects.toThrow(/duplicate tensor key 'shared\.weight'/);
    // Inside an entry too.
    const inner = text.replace('"dtype":"F32"', '"dtype":"F32","dtype":"F16"');
    const h2 = Buffer.from(inner, 'utf8');
    len.writeBigUInt64LE(BigInt(h2.length));
    await writeFile(join(dir, 'model.safetensors'), Buffer.concat([len, h2, data]));
    await expect(T5Model.load(dir)).rejects.toThrow(/header has a duplicate key 'dtype' inside an entry/);
  });
});

describe('case 4: NaN/Inf weights', () => {
  it('are refused naming the tensor unless allowNonFinite', async () => {
    const { header, data } = await fixtureParts();
    const poison = (name: string, value: number, at = 0) => {
      const off = header[name]!.data_offsets[0] + 4 * at;
      data.writeFloatLE(value, off);
    };
    poison('shared.weight', NaN, 3);
    poison('decoder.block.1.layer.2.DenseReluDense.wo.weight', Infinity);
    poison('decoder.block.1.layer.2.DenseReluDense.wo.weight', -Infinity, 1);
    const dir = await modelDir('c4', JSON.stringify(baseConfig), safetensorsBytes(header, data));
    await expect(T5Model.load(dir)).rejects.toThrow(
      /c4\/model\.safetensors: tensor '(shared\.weight' holds 1|decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight' holds 2) non-finite value\(s\) \(NaN or Inf\); load with allowNonFinite: true/,
    );
    await expect(T5Model.load(dir, { dtype: 'bfloat16' })).rejects.toThrow(/non-finite value\(s\) \(NaN or Inf, or beyond the range of bfloat16\)/);
    const m = await T5Model.load(dir, { allowNonFinite: true });
    expect(Number.isNaN(m.getParameter('shared.weight').data[3])).toBe(true);
    m.dispose();
  });
});

describe('case 5: generate memory follows the steps taken, not maxNewTokens squared', () => {
  // Untied head whose EOS row is zeroed: greedy decoding never ends early, so every step runs.
  const config = {
    model_type: 't5',
    vocab_size: 64,
    d_model: 32,
    d_kv: 8,
    d_ff: 64,
    num_layers: 2,
    num_decoder_layers: 2,
    num_heads: 4,
    dropout_rate: 0,
    tie_word_embeddings: false,
    eos_token_id: 1,
    pad_token_id: 0,
    decoder_start_token_id: 0,
  };
  it('maxNewTokens 2000 / 6000 / 12000: peak RSS growth under 1 GB and linear', async () => {
    const growthMb: number[] = [];
    for (const maxNewTokens of [2000, 6000, 12000]) {
      const o = await runCapped({ op: 'generate', config: JSON.stringify(config), maxNewTokens, neverToken: 1 }, 1024 * MB, 110_000);
      expect(o.signal, o.stderr).toBeNull();
      expect(o.result, o.stderr).toMatchObject({ ok: true, steps: maxNewTokens });
      growthMb.push((o.result.vmHwmKb - o.result.readyHwmKb) / 1024);
    }
    console.log(`generate peak RSS growth (MB) at 2000/6000/12000 new tokens: ${growthMb.map((g) => g.toFixed(1)).join(' / ')}`);
    expect(growthMb[2]).toBeLessThan(1024);
    // A T x T bias would grow 36x from 2000 to 12000 steps; linear growth is at most 6x (plus noise).
    expect(growthMb[2]!).toBeLessThan(8 * Math.max(growthMb[0]!, 8));
  }, 400_000);

  it('an early EOS does not pay for maxNewTokens: a huge limit is fine', async () => {
    // Every token is an EOS token: generation ends after one step.
    const m = await T5Model.fromConfig({ ...config, eos_token_id: Array.from({ length: 64 }, (_, i) => i) }, { seed: 1 });
    const out = await m.generate({ inputIds: tensor(new Int32Array([5, 6, 7]), [1, 3]) }, { maxNewTokens: 1_000_000_000 });
    expect(out.shape).toEqual([1, 2]);
    m.dispose();
  });
});

describe('case 6: attention masks and counts', () => {
  it('mask values outside {0, 1} and non-integer counts are refused naming the field', async () => {
    const m = await T5Model.load(SRC);
    const ids = tensor(new Int32Array([5, 6, 7, 8]), [2, 2]);
    const labels = tensor(new Int32Array([5, 1, 5, 1]), [2, 2]);
    await expect(m.forward({ inputIds: ids, attentionMask: tensor(new Int32Array([1, 7, 1, 1]), [2, 2]), labels })).rejects.toThrow(
      /attentionMask holds 7; mask values must be 0 or 1/,
    );
    await expect(m.forward({ inputIds: ids, attentionMask: tensor(new Float32Array([1, 0.5, 1, 1]), [2, 2]), labels })).rejects.toThrow(
      /attentionMask holds 0\.5/,
    );
    await expect(m.forward({ inputIds: ids, labels, decoderAttentionMask: tensor(new Int32Array([1, -1, 1, 1]), [2, 2]) })).rejects.toThrow(
      /decoderAttentionMask holds -1; mask values must be 0 or 1/,
    );
    await expect(m.generate({ inputIds: ids, attentionMask: tensor(new Int32Array([1, 1, 7, 1]), [2, 2]) })).rejects.toThrow(/attentionMask holds 7/);
    await expect(m.generate({ inputIds: ids }, { maxNewTokens: 1.5 })).rejects.toThrow(/generate: maxNewTokens must be an integer, got 1\.5/);
    await expect(m.generate({ inputIds: ids }, { doSample: true, topK: 2.5 })).rejects.toThrow(/generate: topK must be an integer, got 2\.5/);
    await expect(m.generate({ inputIds: ids }, { doSample: true, numReturnSequences: 1.5 })).rejects.toThrow(
      /generate: numReturnSequences must be an integer, got 1\.5/,
    );
    await expect(m.generate({ inputIds: ids }, { doSample: true, seed: 0.25 })).rejects.toThrow(/generate: seed must be an integer, got 0\.25/);
    await expect(m.save(join(tmp, 'c6'), { maxShardBytes: 10.5 })).rejects.toThrow(/save: maxShardBytes must be an integer, got 10\.5/);
    await expect(T5Model.fromConfig(baseConfig, { seed: 0.5 })).rejects.toThrow(/T5Model\.fromConfig: seed must be an integer, got 0\.5/);
    // Valid masks still work: 0/1 in any dtype.
    const ok = await m.forward({ inputIds: ids, attentionMask: tensor(new Float32Array([1, 0, 1, 1]), [2, 2]), labels });
    expect(Number.isFinite(ok.loss)).toBe(true);
    m.dispose();
  });
});
