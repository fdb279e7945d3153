import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const T5_REFERENCE = join(FIXTURES, 't5-hf-reference');
export const T5_CASES = ['flan-t5-tiny-gated-gelu-seed1', 't5-tiny-tied-relu-seed3', 'flan-t5-tiny-long-buckets-seed4'] as const;

export function fixtureDir(name: string): string {
  const dir = join(T5_REFERENCE, name);
  if (!existsSync(dir)) throw new Error(`missing fixture ${dir}`);
  return dir;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Builds a safetensors image by hand, so tests can corrupt any part of it. */
export function safetensorsBytes(header: Record<string, unknown>, data: Uint8Array, opts: { declaredHeaderLength?: number } = {}): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(opts.declaredHeaderLength ?? h.length));
  return Buffer.concat([len, h, Buffer.from(data)]);
}
