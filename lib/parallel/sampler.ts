/**
 * Deterministic data sharding across ranks.
 *
 * DistributedSampler follows torch.utils.data.DistributedSampler: each epoch, one permutation of
 * [0, size) from (seed, epoch) — identical on every rank — padded by wrapping around to a
 * multiple of worldSize (or truncated with dropLast), and rank r takes positions r, r+W, r+2W, …
 * The shards are disjoint (up to the wrap-around padding) and their union is the epoch.
 */

function check(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
}

/** mulberry32: a tiny seeded generator (data order must not depend on Math.random). */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix(seed: number, epoch: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ (epoch >>> 0), 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A permutation of [0, n) from (seed, epoch); the same on every rank. */
export function permutation(n: number, seed: number, epoch: number): number[] {
  const random = seeded(mix(seed, epoch));
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

export interface DistributedSamplerOptions {
  /** Dataset size. */
  size: number;
  rank: number;
  worldSize: number;
  /** Default true. */
  shuffle?: boolean;
  seed?: number;
  /** Drop the tail that does not divide evenly instead of padding by wrap-around (default false). */
  dropLast?: boolean;
}

export class DistributedSampler {
  readonly size: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Indices per rank per epoch. */
  readonly numSamples: number;
  private epoch = 0;

  constructor(o: DistributedSamplerOptions) {
    check('size', o.size, 1);
    check('worldSize', o.worldSize, 1);
    check('rank', o.rank, 0);
    if (o.rank >= o.worldSize) throw new Error(`rank=${o.rank} is not < worldSize=${o.worldSize}`);
    this.seed = o.seed ?? 0;
    check('seed', this.seed, 0);
    this.size = o.size;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.shuffle = o.shuffle ?? true;
    this.dropLast = o.dropLast ?? false;
    this.numSamples = this.dropLast ? Math.floor(o.size / o.worldSize) : Math.ceil(o.size / o.worldSize);
    if (this.numSamples === 0) throw new Error(`dropLast with size=${o.size} < worldSize=${o.worldSize} leaves every rank empty`);
  }

  /** Picks the epoch's permutation (call before each epoch, as with torch). */
  setEpoch(epoch: number): void {
    check('epoch', epoch, 0);
    this.epoch = epoch;
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  /** This rank's dataset indices for the current epoch. */
  indices(): number[] {
    const order = this.shuffle ? permutation(this.size, this.seed, this.epoch) : Array.from({ length: this.size }, (_, i) => i);
    const total = this.numSamples * this.worldSize;
    const padded = order.slice(0, total);
    for (let i = 0; padded.length < total; i++) padded.push(order[i % order.length]!);
    const out: number[] = [];
    for (let i = this.rank; i < total; i += this.worldSize) out.push(padded[i]!);
    return out;
  }
}

/**
 * This rank's share of a list: items r, r+W, r+2W, … (strided, so a length-sorted list gives every
 * rank similar lengths). With their positions, for reassembly by `unshard`.
 */
export function shardOf<T>(items: readonly T[], rank: number, worldSize: number): { items: T[]; positions: number[] } {
  check('worldSize', worldSize, 1);
  check('rank', rank, 0);
  if (rank >= worldSize) throw new Error(`rank=${rank} is not < worldSize=${worldSize}`);
  const out: T[] = [];
  const positions: number[] = [];
  for (let i = rank; i < items.length; i += worldSize) {
    out.push(items[i]!);
    positions.push(i);
  }
  return { items: out, positions };
}

/** Puts every rank's results (from shardOf) back into the original order. */
export function unshard<R>(perRank: readonly { positions: readonly number[]; results: readonly R[] }[], total: number): R[] {
  const out = new Array<R>(total);
  const seen = new Uint8Array(total);
  perRank.forEach((part, r) => {
    if (part.positions.length !== part.results.length) {
      throw new Error(`unshard: rank ${r} returned ${part.results.length} results for ${part.positions.length} items`);
    }
    part.positions.forEach((p, i) => {
      if (!Number.isInteger(p) || p < 0 || p >= total) throw new Error(`unshard: rank ${r} has position ${p} outside 0..${total - 1}`);
      if (seen[p]) throw new Error(`unshard: position ${p} was produced twice`);
      seen[p] = 1;
      out[p] = part.results[i]!;
    });
  });
  const missing = seen.indexOf(0);
  if (missing >= 0) throw new Error(`unshard: no rank produced position ${missing}`);
  return out;
}
