/**
 * Work split over ranks. Sharded generation and evaluation: each rank works on its strided share
 * of the items (shardOf), results are all-gathered and put back in the original order (unshard),
 * so every rank returns the same full list (rank 0 then writes it). Results cross ranks as JSON.
 * Also: counters summed over ranks, and rank-0-only work the others wait for.
 */
import type { ProcessGroup } from './process-group.js';

/**
 * Runs `fn` on this rank's share of `items` (in batches of `fn`'s choosing) and returns every
 * rank's results in item order. Without a group (or with one rank) it is just fn(items).
 */
export async function shardedMap<T, R>(
  group: ProcessGroup | undefined,
  items: readonly T[],
  fn: (shard: T[], positions: number[]) => Promise<R[]>,
): Promise<R[]> {
  if (!group || group.worldSize === 1) {
    const all = await fn(
      [...items],
      items.map((_, i) => i),
    );
    if (all.length !== items.length) throw new Error(`shardedMap: fn returned ${all.length} results for ${items.length} items`);
    return all;
  }
  const mine = shardOf(items, group.rank, group.worldSize);
  const results = mine.items.length ? await fn(mine.items, mine.positions) : [];
  if (results.length !== mine.items.length)
    throw new Error(`shardedMap: fn returned ${results.length} results for ${mine.items.length} items on rank ${group.rank}`);
  const parts = await group.allgatherObject({ positions: mine.positions, results });
  return unshard(parts, items.length);
}

/** Sums counters (e.g. {correct, total}) over ranks; every rank gets the totals. */
export async function allreduceCounts<K extends string>(group: ProcessGroup | undefined, counts: Record<K, number>): Promise<Record<K, number>> {
  if (!group || group.worldSize === 1) return { ...counts };
  const keys = Object.keys(counts).sort() as K[];
  const sums = await group.allreduceNumbers(keys.map((k) => counts[k]));
  return Object.fromEntries(keys.map((k, i) => [k, sums[i]!])) as Record<K, number>;
}

/**
 * Runs fn on rank 0 only (checkpoints, logs, reports, a teacher-calling stage), while the other
 * ranks wait for it, then tells every rank whether it failed: no rank runs on after a failed
 * checkpoint. The wait is a patient barrier: no collective timeout applies while rank 0 is alive,
 * so rank-0 work may take hours; if rank 0 dies the others fail naming it. Rank 0 rethrows its own
 * error; the others throw one naming rank 0 and `what`.
 */
export async function onMain<T>(group: ProcessGroup | undefined, fn: () => Promise<T> | T, what = 'rank 0 work'): Promise<T | undefined> {
  if (!group || group.worldSize === 1) return fn();
  let out: T | undefined;
  let error: unknown;
  let failure: string | null = null;
  if (group.isMain) {
    try {
      out = await fn();
    } catch (err) {
      error = err;
      failure = err instanceof Error ? err.message : String(err);
    }
  }
  await group.patientBarrier(what);
  const status = await group.broadcastObject<string | null>(failure, 0);
  if (error !== undefined) throw error;
  if (status !== null) throw new Error(`rank 0 failed in ${what}: ${status}`);
  return out;
}

/** onMain, with rank 0's (JSON-serialisable) result returned on every rank. */
export async function onMainShared<T>(group: ProcessGroup | undefined, fn: () => Promise<T> | T, what = 'rank 0 work'): Promise<T> {
  if (!group || group.worldSize === 1) return fn();
  const out = await onMain(group, fn, what);
  return group.broadcastObject<T>(out, 0);
}

function check(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
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
