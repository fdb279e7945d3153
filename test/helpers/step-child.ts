/**
 * A training run in its own process, for the kill-and-resume tests (train-resume, lora,
 * train-on-policy). Both halves of the protocol live here: the parent passes the settings as JSON
 * in STEP_CHILD and reads one "STEP <n> <loss>" line per step (JSON numbers round-trip exactly);
 * the child prints those lines and, with slowAfter, waits a second after each later step so the
 * parent's SIGKILL lands mid-run.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainOptions } from '../../lib/train/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SETTINGS_ENV = 'STEP_CHILD';

export interface StepChildRun {
  losses: Map<number, number>;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs test/helpers/<script>; with killAtStep, SIGKILLs it as soon as it reports that step. */
export function runStepChild(script: string, settings: Record<string, unknown>, killAtStep?: number): Promise<StepChildRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', script)], {
      cwd: ROOT,
      env: { ...process.env, [SETTINGS_ENV]: JSON.stringify(settings) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const losses = new Map<number, number>();
    let buffer = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const m = /^STEP (\d+) (.+)$/.exec(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (!m) continue;
        const step = Number(m[1]);
        losses.set(step, JSON.parse(m[2]!) as number);
        if (killAtStep !== undefined && step === killAtStep) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ losses, code, signal, stderr }));
  });
}

/** The settings every child reads: where it writes, whether it resumes, and when it slows down. */
export interface StepChildSettings {
  output_dir: string;
  resume_from_checkpoint?: boolean;
  slowAfter?: number;
}

/** In the child: the settings its parent passed. */
export function stepChildSettings<T extends StepChildSettings>(): T {
  return JSON.parse(process.env[SETTINGS_ENV] ?? '{}') as T;
}

/** In the child: the options that report each step to the parent (and slow down after slowAfter). */
export function stepReporting(s: StepChildSettings): Pick<TrainOptions, 'resume_from_checkpoint' | 'progress' | 'logger' | 'onStep'> {
  return {
    resume_from_checkpoint: s.resume_from_checkpoint,
    progress: false,
    logger: () => {},
    onStep: async (log) => {
      process.stdout.write(`STEP ${log.step} ${JSON.stringify(log.loss)}\n`);
      if (s.slowAfter !== undefined && log.step > s.slowAfter) await new Promise((r) => setTimeout(r, 1000));
    },
  };
}
