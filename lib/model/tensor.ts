/** A dense tensor crossing the JS/native boundary: a typed array and its shape (row-major). */
export type TensorData = Int32Array | BigInt64Array | Float32Array | Float64Array | Uint8Array;

export interface Tensor<D extends TensorData = TensorData> {
  data: D;
  shape: number[];
  /** Set on tensors coming from native code: float32, bfloat16, int64, ... */
  dtype?: string;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor<D extends TensorData>(data: D, shape: number[]): Tensor<D> {
  if (numel(shape) !== data.length) {
    throw new Error(`tensor: shape [${shape.join(', ')}] needs ${numel(shape)} elements, data has ${data.length}`);
  }
  return { data, shape };
}

/**
 * Packs ragged id rows into a right-padded [B, L] Int32 tensor and its attention mask.
 * `length` defaults to the longest row.
 */
export function padBatch(rows: readonly (readonly number[])[], padId: number, length?: number): { ids: Tensor<Int32Array>; mask: Tensor<Int32Array> } {
  const L = length ?? Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * L).fill(padId);
  const mask = new Int32Array(rows.length * L);
  rows.forEach((r, i) => {
    const n = Math.min(r.length, L);
    for (let j = 0; j < n; j++) {
      ids[i * L + j] = r[j]!;
      mask[i * L + j] = 1;
    }
  });
  return { ids: tensor(ids, [rows.length, L]), mask: tensor(mask, [rows.length, L]) };
}

/** Rows of a 2-D tensor as plain number arrays. */
export function rowsOf(t: Tensor): number[][] {
  if (t.shape.length !== 2) throw new Error(`rowsOf: expected a 2-D tensor, got shape [${t.shape.join(', ')}]`);
  const [B, L] = t.shape as [number, number];
  const out: number[][] = [];
  for (let i = 0; i < B; i++) out.push(Array.from(t.data.subarray(i * L, (i + 1) * L) as ArrayLike<number | bigint>, Number));
  return out;
}
