/**
 * Test helper (was lib/parallel/sampler.ts): torch.utils.data.DistributedSampler for the
 * hand-written data-parallel loop of the distributed tests. The trainer shards its batch stream
 * itself (lib/train/trainer.ts), so the package does not ship this.
 *
 * Each epoch, one permutation of [0, size) from (seed, epoch) — identical on every rank — padded
 * by wrapping around to a multiple of worldSize (or truncated with dropLast), and rank r takes
 * positions r, r+W, r+2W, … The shards are disjoint (up to the wrap-around padding) and their
 * union is the epoch.
 */
import { seededRandom, shuffleInPlace } from '../../lib/tasks/random.js';

function check(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
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
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    seededRandom(mix(seed, epoch)),
  );
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
