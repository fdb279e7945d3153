/**
 * Bad input never crashes the process: each case is a rejected Promise (or thrown Error) whose
 * message names the file, tensor or field at fault. After all of them the addon still works.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { tensor } from '../lib/model/tensor.js';
import { T5_CASES, fixtureDir, safetensorsBytes } from './helpers/fixtures.js';

const SRC = fixtureDir(T5_CASES[0]);
let tmp: string;
let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
let data: Buffer;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-bad-'));
  const raw = await readFile(join(SRC, 'model.safetensors'));
  const n = Number(raw.readBigUInt64LE(0));
  header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8'));
  data = raw.subarray(8 + n);
});
afterAll(async () => rm(tmp, { recursive: true, force: true }));

/** A model dir with the fixture's config and the given safetensors bytes. */
async function modelDir(name: string, bytes: Buffer): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  await copyFile(join(SRC, 'config.json'), join(dir, 'config.json'));
  await writeFile(join(dir, 'model.safetensors'), bytes);
  return dir;
}

function cloneHeader() {
  return JSON.parse(JSON.stringify(header)) as typeof header;
}

/** Removes one tensor and re-packs the data buffer so the file is otherwise valid. */
function withoutTensor(name: string): Buffer {
  const h = cloneHeader();
  const parts: Buffer[] = [];
  let off = 0;
  const out: Record<string, unknown> = {};
  const entries = Object.entries(h) as [string, { dtype: string; shape: number[]; data_offsets: [number, number] }][];
  for (const [k, v] of entries) if (k === '__metadata__') out[k] = v;
  const tensors = entries.filter(([k]) => k !== '__metadata__').sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  for (const [k, v] of tensors) {
    if (k === name) continue;
    const [b, e] = v.data_offsets;
    parts.push(data.subarray(b, e));
    out[k] = { ...v, data_offsets: [off, off + (e - b)] };
    off += e - b;
  }
  return safetensorsBytes(out, Buffer.concat(parts));
}

describe('corrupt or mismatched checkpoints', () => {
  it('truncated file', async () => {
    const raw = await readFile(join(SRC, 'model.safetensors'));
    const dir = await modelDir('truncated', raw.subarray(0, Math.floor(raw.length / 2)));
    await expect(T5Model.load(dir)).rejects.toThrow(/model\.safetensors: tensor '.+' ends at byte \d+ of a \d+-byte data buffer \(truncated file\?\)/);
  });

  it('file shorter than the 8-byte length prefix', async () => {
    const dir = await modelDir('tiny', Buffer.from([1, 2, 3]));
    await expect(T5Model.load(dir)).rejects.toThrow(/model\.safetensors: file is 3 bytes, too short/);
  });

  it('header size beyond the file', async () => {
    const dir = await modelDir('header-size', safetensorsBytes(header, data, { declaredHeaderLength: 10_000_000 }));
    await expect(T5Model.load(dir)).rejects.toThrow(/model\.safetensors: header size 10000000 runs past the end of the file/);
  });

  it('header that is not JSON', async () => {
    const raw = await readFile(join(SRC, 'model.safetensors'));
    const bad = Buffer.from(raw);
    bad.write('{"x": [1, 2', 8, 'utf8');
    const dir = await modelDir('not-json', bad);
    await expect(T5Model.load(dir)).rejects.toThrow(/model\.safetensors: header is not valid JSON/);
  });

  it('overlapping offsets', async () => {
    const h = cloneHeader();
    const names = Object.keys(h).filter((k) => k !== '__metadata__');
    const [a, b] = names.slice(0, 2) as [string, string];
    // Point b at a's bytes (same size in this model: two q/k/v or norm tensors would do; force equal size).
    const target = names.find((k) => k !== a && h[k]!.data_offsets[1] - h[k]!.data_offsets[0] === h[a]!.data_offsets[1] - h[a]!.data_offsets[0])!;
    void b;
    h[target]!.data_offsets = [...h[a]!.data_offsets];
    const dir = await modelDir('overlap', safetensorsBytes(h, data));
    await expect(T5Model.load(dir)).rejects.toThrow(
      /model\.safetensors: (tensor '.+' overlaps the previous tensor's bytes|bytes \d+\.\.\d+ before tensor '.+' belong to no tensor|data buffer has \d+ trailing bytes)/,
    );
  });

  it('byte size that disagrees with dtype and shape', async () => {
    const h = cloneHeader();
    h['shared.weight']!.shape = [h['shared.weight']!.shape[0]! + 1, h['shared.weight']!.shape[1]!];
    const dir = await modelDir('size', safetensorsBytes(h, data));
    await expect(T5Model.load(dir)).rejects.toThrow(/tensor 'shared\.weight' has \d+ bytes but dtype F32 and shape \[97, 32\] need \d+/);
  });

  it('unknown dtype', async () => {
    const h = cloneHeader();
    h['shared.weight']!.dtype = 'F31';
    const dir = await modelDir('dtype', safetensorsBytes(h, data));
    await expect(T5Model.load(dir)).rejects.toThrow(/tensor 'shared\.weight' has unknown dtype 'F31'/);
  });

  it('missing tensor', async () => {
    const dir = await modelDir('missing', withoutTensor('decoder.final_layer_norm.weight'));
    await expect(T5Model.load(dir)).rejects.toThrow(/has no tensor 'decoder\.final_layer_norm\.weight'/);
  });

  it('extra tensor', async () => {
    const h: Record<string, unknown> = cloneHeader();
    const extra = new Float32Array([1, 2, 3, 4]);
    h['encoder.block.9.layer.0.SelfAttention.q.weight'] = { dtype: 'F32', shape: [4], data_offsets: [data.length, data.length + 16] };
    const dir = await modelDir('extra', safetensorsBytes(h, Buffer.concat([data, Buffer.from(extra.buffer)])));
    await expect(T5Model.load(dir)).rejects.toThrow(/unexpected tensor 'encoder\.block\.9\.layer\.0\.SelfAttention\.q\.weight'/);
  });

  it('wrong shape for the config', async () => {
    const h = cloneHeader();
    const t = h['encoder.final_layer_norm.weight']!;
    const ln = h['decoder.final_layer_norm.weight']!;
    // Same byte count, different shape: [32] -> [4, 8].
    t.shape = [4, 8];
    void ln;
    const dir = await modelDir('shape', safetensorsBytes(h, data));
    await expect(T5Model.load(dir)).rejects.toThrow(/tensor 'encoder\.final_layer_norm\.weight' has shape \[4, 8\] but config\.json implies \[32\]/);
  });

  it('missing directory and missing weights', async () => {
    await expect(T5Model.load(join(tmp, 'nope'))).rejects.toThrow(/nope: not a directory/);
    const dir = join(tmp, 'no-weights');
    await mkdir(dir, { recursive: true });
    await copyFile(join(SRC, 'config.json'), join(dir, 'config.json'));
    await expect(T5Model.load(dir)).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('bad config.json fields', async () => {
    const cfg = JSON.parse(await readFile(join(SRC, 'config.json'), 'utf8'));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...cfg, d_model: 'big' }, /config\.json: field 'd_model' must be an integer/],
      [{ ...cfg, model_type: 'bart' }, /model_type is 'bart', expected 't5'/],
      [{ ...cfg, feed_forward_proj: 'gated-gelu-x' }, /feed_forward_proj/],
      [{ ...cfg, eos_token_id: 5000 }, /field 'eos_token_id' = 5000 is outside the vocabulary/],
    ];
    for (const [i, [c, re]] of cases.entries()) {
      const dir = join(tmp, `cfg-${i}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'config.json'), JSON.stringify(c));
      await copyFile(join(SRC, 'model.safetensors'), join(dir, 'model.safetensors'));
      await expect(T5Model.load(dir)).rejects.toThrow(re);
    }
    await expect(T5Model.fromConfig('{not json')).rejects.toThrow(/config: not valid JSON/);
  });
});

describe('bad batches', () => {
  it('rejects ids outside the vocabulary and mismatched shapes, and keeps working', async () => {
    const model = await T5Model.load(SRC);
    const ids = tensor(new Int32Array([5, 6, 1, 7, 96, 1]), [2, 3]);
    await expect(model.forward({ inputIds: ids, labels: tensor(new Int32Array([5, 1, 5, 1]), [2, 2]) })).rejects.toThrow(
      /inputIds contains id 96 >= vocab_size 96/,
    );
    const ok = tensor(new Int32Array([5, 6, 1, 7, 8, 1]), [2, 3]);
    await expect(model.forward({ inputIds: ok, labels: tensor(new Int32Array([5, 1, -5, 1]), [2, 2]) })).rejects.toThrow(
      /labels contains id -5 < 0 \(only -100 may be negative\)/,
    );
    await expect(model.forward({ inputIds: ok, labels: tensor(new Int32Array([5, 1, 5]), [3, 1]) })).rejects.toThrow(
      /labels has batch size 3 but inputIds has 2/,
    );
    await expect(
      model.forward({ inputIds: ok, attentionMask: tensor(new Int32Array([1, 1, 1, 1]), [2, 2]), labels: tensor(new Int32Array([5, 1]), [2, 1]) }),
    ).rejects.toThrow(/attentionMask has shape \[2, 2\] but inputIds has \[2, 3\]/);
    await expect(model.forward({ inputIds: { data: new Int32Array(5), shape: [2, 3] } })).rejects.toThrow(
      /inputIds: shape \[2, 3\] needs 6 elements but data has 5/,
    );
    await expect(model.forward({ inputIds: ok })).rejects.toThrow(/forward needs labels or decoderInputIds/);
    await expect(model.forward({ inputIds: ok }, { backward: true })).rejects.toThrow(/needs labels/);
    await expect(model.generate({ inputIds: ok }, { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be >= 1/);
    await expect(model.generate({ inputIds: ok }, { doSample: true, temperature: 0 })).rejects.toThrow(/temperature must be > 0/);
    expect(() => model.getParameter('nope.weight')).toThrow(/no parameter named 'nope\.weight'/);
    expect(() => model.setParameter('shared.weight', tensor(new Float32Array(4), [2, 2]))).toThrow(
      /parameter 'shared\.weight' has shape \[96, 32\], got \[2, 2\]/,
    );

    // The process and the model are fine after all of that.
    const out = await model.forward({ inputIds: ok, labels: tensor(new Int32Array([5, 1, 5, 1]), [2, 2]) });
    expect(Number.isFinite(out.loss)).toBe(true);
    model.dispose();
    await expect(model.forward({ inputIds: ok })).rejects.toThrow(/used after dispose/);
  });

  it('errors point at the caller', async () => {
    const model = await T5Model.load(SRC);
    const err = await model.forward({ inputIds: tensor(new Int32Array([1000]), [1, 1]) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).stack).toMatch(/t5-bad-input\.test\.ts/);
    model.dispose();
  });
});

describe('reference reader', () => {
  it('reads what it writes', async () => {
    const st = await readSafetensors(join(SRC, 'reference.safetensors'));
    expect(st.tensors.input_ids!.shape.length).toBe(2);
  });
});
