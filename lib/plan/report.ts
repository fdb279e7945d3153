/** The planner's printout and its verdict against a memory size. */
import { formatBytes } from './bytes.js';
import type { PlanEstimate } from './estimate.js';
import { CPU_RESIDENT_HEADROOM } from './warn.js';

/** Whether the estimate fits in `memoryBytes`, and by how much. */
export function planFits(e: PlanEstimate, memoryBytes: number): { fits: boolean; marginBytes: number } {
  return { fits: e.totalBytes <= memoryBytes, marginBytes: memoryBytes - e.totalBytes };
}

/** Lines such as `weights  945.6 MiB` per part, then the total and the verdict. */
export function describePlan(title: string, e: PlanEstimate, memoryBytes: number, memoryWhat: string): string {
  const row = (name: string, bytes: number, note = '') => `  ${name.padEnd(22)}${formatBytes(bytes).padStart(12)}${note ? `  ${note}` : ''}`;
  const a = e.activationParts;
  const verdict = planFits(e, memoryBytes);
  return [
    `${title}: ${(e.parameters / 1e6).toFixed(1)} M parameters (${(e.trainableParameters / 1e6).toFixed(1)} M trainable), per rank:`,
    row('weights', e.weightBytes),
    row('gradients', e.gradientBytes),
    ...(e.reducerBytes ? [row('reducer buffers', e.reducerBytes, 'zero2: the buckets backward fills, beside the two in flight')] : []),
    row('optimizer (AdamW)', e.optimizerBytes),
    row(
      'activations',
      e.activationBytes,
      `encoder ${formatBytes(a.encoder)}, decoder ${formatBytes(a.decoder)}, fused weight copies ${formatBytes(a.weightCopies)}, around ${formatBytes(a.around)}, backward transient ${formatBytes(a.transient)}`,
    ),
    row('runtime', e.runtimeBytes, 'Node, libtorch, the addon'),
    ...(e.communicationBytes ? [row('buckets in flight', e.communicationBytes)] : []),
    ...(e.overlapBytes ? [row('freed in backward', -e.overlapBytes, "blocks' activations freed before their gradients are written")] : []),
    row('total', e.totalBytes),
    row(
      'resident on a CPU',
      e.totalBytes * CPU_RESIDENT_HEADROOM,
      'the allocator keeps freed blocks: at most 1.19x the plan measured under bin/mentor-kd (docs/memory.md)',
    ),
    verdict.fits
      ? `  fits in ${formatBytes(memoryBytes)} (${memoryWhat}), ${formatBytes(verdict.marginBytes)} to spare`
      : `  does NOT fit in ${formatBytes(memoryBytes)} (${memoryWhat}): ${formatBytes(-verdict.marginBytes)} short`,
  ].join('\n');
}
