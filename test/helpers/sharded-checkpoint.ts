/** Assertions shared by the T5 and causal checkpoint tests on HF's sharded layout. */
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';

/** A tensor's bytes, for bit-for-bit comparisons. */
export function bytesOf(t: { data: ArrayBufferView }): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * `out` holds a sharded save: model.safetensors.index.json and no model.safetensors, more than one
 * model-0000i-of-0000n.safetensors, and a weight_map naming exactly those shards and exactly `parameterNames`.
 */
export async function expectShardedSave(out: string, parameterNames: readonly string[]): Promise<void> {
  const files = (await readdir(out)).sort();
  expect(files).toContain('model.safetensors.index.json');
  expect(files).not.toContain('model.safetensors');
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  expect(shards.length).toBeGreaterThan(1);
  const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
  expect(Object.keys(index.weight_map).sort()).toEqual(parameterNames.slice().sort());
}

/** Saving again unsharded replaces the shards rather than mixing layouts. */
export async function expectUnshardedSave(out: string): Promise<void> {
  expect((await readdir(out)).filter((f) => f.endsWith('.safetensors'))).toEqual(['model.safetensors']);
}

type WeightMap = Record<string, string>;
const literal = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

/**
 * A loader refuses a damaged model.safetensors.index.json, naming the index file or the shard and
 * the tensor: each case copies the sharded directory `sharded` under `work` and replaces its index.
 */
export async function expectBadIndexRefused(load: (dir: string) => Promise<unknown>, sharded: string, work: string): Promise<void> {
  const INDEX = 'model.safetensors.index.json';
  const { weight_map } = JSON.parse(await readFile(join(sharded, INDEX), 'utf8')) as { weight_map: WeightMap };
  const shards = [...new Set(Object.values(weight_map))].sort();
  // `second` shares its shard with another tensor, so that shard is still read once it is moved or unlisted.
  const names = Object.keys(weight_map);
  const second = names.find((n) => names.some((m) => m !== n && weight_map[m] === weight_map[n]))!;
  const first = names.find((n) => n !== second)!;
  const home = weight_map[second]!;
  const elsewhere = shards.find((f) => f !== home)!;
  const cases: [string, string | object, RegExp][] = [
    ['not-json', '{"weight_map": ', literal(`${INDEX}: not valid JSON`)],
    ['no-map', { metadata: {} }, literal(`${INDEX}: needs a 'weight_map' object`)],
    ['not-a-name', { weight_map: { ...weight_map, [first]: 7 } }, literal(`${INDEX}: weight_map['${first}'] must be a file name`)],
    [
      'outside',
      { weight_map: { ...weight_map, [first]: '../model.safetensors' } },
      literal(`${INDEX}: weight_map['${first}'] = '../model.safetensors' is not a file in this directory`),
    ],
    [
      'unlisted',
      { weight_map: Object.fromEntries(Object.entries(weight_map).filter(([n]) => n !== second)) },
      literal(`${home}: tensor '${second}' is not listed in ${INDEX}`),
    ],
    ['elsewhere', { weight_map: { ...weight_map, [second]: elsewhere } }, literal(`${home}: tensor '${second}' is listed in the index under ${elsewhere}`)],
    [
      'ghost',
      { weight_map: { ...weight_map, 'ghost.weight': shards[0] } },
      literal(`${INDEX}: tensor 'ghost.weight' listed for ${shards[0]} was not found in it`),
    ],
  ];
  for (const [name, index, error] of cases) {
    const dir = join(work, `bad-index-${name}`);
    await cp(sharded, dir, { recursive: true });
    await writeFile(join(dir, INDEX), typeof index === 'string' ? index : JSON.stringify(index));
    await expect(load(dir), name).rejects.toThrow(error);
  }
}
