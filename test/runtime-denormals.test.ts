/**
 * Denormals are flushed on the threads that do the work (native/runtime/settings.h says why: Intel
 * cores slow down many-fold on denormal operands, and training makes plenty). The probe multiplies
 * 1e-30f by 1e-10f on an AsyncWorker's thread and on every thread of the intra-op team it starts.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { devNative } from '../lib/native/loader.js';

const root = resolve(__dirname, '..');
interface Probe {
  threadsKeepingDenormals: number;
  threadsLooked: number;
}

function probeInChild(env: Record<string, string>): { info: { flushDenormal: boolean; threads: number }; probe: Probe } {
  const script =
    "import('./lib/native/loader.ts').then(async (m) => { const n = m.devNative(); n.runtime.setNumThreads(2); const probe = await n.dev.denormalProbe(); console.log(JSON.stringify({ info: n.runtime.info(), probe })); })";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('denormals', () => {
  it('are flushed by default on the worker thread and on each intra-op thread it runs', async () => {
    const n = devNative();
    expect(n.runtime.info().flushDenormal).toBe(true);
    const p: Probe = await n.dev.denormalProbe();
    expect(p.threadsLooked).toBeGreaterThanOrEqual(2); // the worker and its team (2 threads at least)
    expect(p.threadsKeepingDenormals).toBe(0);
  });

  it('MENTOR_KD_FLUSH_DENORMAL=0 keeps IEEE gradual underflow everywhere (the probe can tell)', () => {
    const off = probeInChild({ MENTOR_KD_FLUSH_DENORMAL: '0' });
    expect(off.info.flushDenormal).toBe(false);
    expect(off.probe.threadsKeepingDenormals).toBe(off.probe.threadsLooked);
    const on = probeInChild({});
    expect(on.info.flushDenormal).toBe(true);
    expect(on.probe.threadsKeepingDenormals).toBe(0);
  });
});
