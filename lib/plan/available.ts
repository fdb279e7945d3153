/** The memory this process can still get: MemAvailable, capped by a cgroup limit (as native/t5 reads it). */
import { freemem } from 'node:os';

export function availableMemoryBytes(): number | undefined {
  const free = freemem();
  // process.constrainedMemory(): the cgroup limit, 0 (or undefined) when there is none.
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.() ?? 0;
  const candidates = [free, limit > 0 ? limit - process.memoryUsage().rss : 0].filter((x) => x > 0);
  return candidates.length ? Math.min(...candidates) : undefined;
}
