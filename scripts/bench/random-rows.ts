/** Random T5 training rows for the memory benchmarks (token values do not matter to memory or time). */
import { tensor } from '../../lib/model/tensor.js';

/**
 * A row maker over one LCG stream seeded `seed`: `rows(b, src, tgt)` draws the source ids, then the
 * labels (ids in [2, 32002)), every position attended.
 */
export function randomT5Rows(seed: number) {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const ids = (n: number) => Int32Array.from({ length: n }, () => 2 + Math.floor(rand() * 32000));
  return (b: number, src: number, tgt: number) => ({
    inputIds: tensor(ids(b * src), [b, src]),
    attentionMask: tensor(new Int32Array(b * src).fill(1), [b, src]),
    labels: tensor(ids(b * tgt), [b, tgt]),
    exampleIds: [] as number[],
  });
}
