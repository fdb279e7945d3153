/**
 * One training step measured for the memory benchmarks: the resident memory before it, its peak
 * (VmHWM, reset just before the step via /proc/self/clear_refs; peak RSS otherwise only grows within
 * a process), its wall time, and its CPU seconds and minor page faults (the allocator's cost shows in
 * system time and faults).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { CollatedBatch } from '../../lib/train/batches.js';
import type { StepResult, TrainEngine } from '../../lib/train/engine.js';

/** A field of /proc/self/status in bytes (VmRSS, VmHWM). */
export function statusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Minor page faults of this process so far (/proc/self/stat, field 10). */
function minorFaults(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

export interface MeasuredStep {
  result: StepResult;
  staticBytes: number;
  peakBytes: number;
  stepSeconds: number;
  cpu: { user: number; system: number; minorFaults: number };
}

export async function measureStep(engine: TrainEngine, batch: CollatedBatch): Promise<MeasuredStep> {
  const staticBytes = statusBytes('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const faults0 = minorFaults();
  const result = await engine.step([batch]);
  const stepSeconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  const cpu = { user: used.user / 1e6, system: used.system / 1e6, minorFaults: minorFaults() - faults0 };
  return { result, staticBytes, peakBytes: statusBytes('VmHWM'), stepSeconds, cpu };
}
