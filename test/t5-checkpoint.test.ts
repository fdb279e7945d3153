/** HF model directories: round trip, shards, and what HF's from_pretrained expects to find. */
import { mkdtemp, readFile, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { T5_CASES, fixtureDir } from './helpers/fixtures.js';
import { bytesOf, expectBadIndexRefused, expectShardedSave, expectUnshardedSave } from './helpers/sharded-checkpoint.js';

const tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-ckpt-'));
afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await rm(tmp, { recursive: true, force: true });
});

describe.each(T5_CASES)('round trip: %s', (name) => {
  it('load -> save -> load gives bit-identical tensors and config, in HF layout', async () => {
    const src = fixtureDir(name);
    const out = join(tmp, name);
    const a = await T5Model.load(src);
    await a.save(out);
    const b = await T5Model.load(out);
    expect(b.parameterNames()).toEqual(a.parameterNames());
    for (const n of a.parameterNames()) expect(bytesOf(b.getParameter(n)).equals(bytesOf(a.getParameter(n))), n).toBe(true);
    expect(b.config()).toEqual(a.config());

    // Same tensor names, dtypes and bytes as HF's own save_pretrained wrote; tied copies left out as HF does.
    const hf = await readSafetensors(join(src, 'model.safetensors'));
    const ours = await readSafetensors(join(out, 'model.safetensors'));
    expect(Object.keys(ours.tensors).sort()).toEqual(Object.keys(hf.tensors).sort());
    for (const k of Object.keys(hf.tensors)) expect(bytesOf(ours.tensors[k]!).equals(bytesOf(hf.tensors[k]!)), k).toBe(true);
    expect(ours.metadata.format).toBe('pt');
    const hfConfig = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))).toEqual(hfConfig);
    expect(JSON.parse(await readFile(join(out, 'generation_config.json'), 'utf8'))).toEqual(
      JSON.parse(await readFile(join(src, 'generation_config.json'), 'utf8')),
    );
    a.dispose();
    b.dispose();
  });
});

describe('sharded checkpoints', () => {
  it('saves shards with model.safetensors.index.json, loads them back, and refuses a damaged index', async () => {
    const src = fixtureDir(T5_CASES[0]);
    const out = join(tmp, 'sharded');
    const a = await T5Model.load(src);
    await a.save(out, { maxShardBytes: 64 * 1024 });
    await expectShardedSave(out, a.parameterNames());
    await expectBadIndexRefused((dir) => T5Model.load(dir), out, tmp);
    const b = await T5Model.load(out);
    for (const n of a.parameterNames()) expect(bytesOf(b.getParameter(n)).equals(bytesOf(a.getParameter(n))), n).toBe(true);

    // Saving again unsharded replaces the shards rather than mixing layouts.
    await b.save(out);
    await expectUnshardedSave(out);
    a.dispose();
    b.dispose();
  });

  it('accepts tied copies of the embedding that older HF checkpoints carry', async () => {
    const src = fixtureDir(T5_CASES[0]);
    const out = join(tmp, 'aliases');
    const a = await T5Model.load(src);
    const st = await readSafetensors(join(src, 'model.safetensors'));
    const { writeSafetensors } = await import('../lib/model/safetensors.js');
    const withAliases = {
      ...st.tensors,
      'encoder.embed_tokens.weight': st.tensors['shared.weight']!,
      'decoder.embed_tokens.weight': st.tensors['shared.weight']!,
    };
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out, { recursive: true });
    await writeSafetensors(join(out, 'model.safetensors'), withAliases, { format: 'pt' });
    await copyFile(join(src, 'config.json'), join(out, 'config.json'));
    const b = await T5Model.load(out);
    expect(bytesOf(b.getParameter('shared.weight')).equals(bytesOf(a.getParameter('shared.weight')))).toBe(true);
    a.dispose();
    b.dispose();
  });

  it('copies tokenizer files along when saving', async () => {
    const src = join(tmp, 'with-tokenizer');
    const { cp } = await import('node:fs/promises');
    await cp(fixtureDir(T5_CASES[0]), src, { recursive: true });
    await writeFile(join(src, 'tokenizer.json'), '{"version":"1.0"}');
    const m = await T5Model.load(src);
    const out = join(tmp, 'with-tokenizer-out');
    await m.save(out);
    expect(await readFile(join(out, 'tokenizer.json'), 'utf8')).toBe('{"version":"1.0"}');
    m.dispose();
  });
});
