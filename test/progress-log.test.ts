/** Training progress lines (terminal and not) and TensorBoard event files. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32c, readEvents, TensorBoardWriter } from '../lib/logging/tensorboard.js';
import { formatDuration, progressLabel, TrainProgress } from '../lib/train/progress.js';
import { logIntervalSecondsFromEnv } from '../lib/runtime/env.js';
import { resolveConfig } from '../lib/config/load.js';
import type { StageContext } from '../lib/pipeline/stages/context.js';
import { trainArgs } from '../lib/pipeline/stages/shared.js';
import type { StepLog } from '../lib/train/index.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-progress-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A stream that records what is written, and a clock the test moves. */
function fakeStream(tty: boolean, columns = 200) {
  const out: string[] = [];
  return { out, stream: { isTTY: tty, columns, write: (s: string) => (out.push(s), true) } };
}

describe('progress', () => {
  it('without a terminal: one plain line per interval (model, step, loss, tok/s, ETA), the checkpoint lines, a summary', () => {
    const { out, stream } = fakeStream(false);
    let t = 0;
    const p = new TrainProgress(true, 100, 0, { label: 'mentor', stream, intervalSeconds: 30, now: () => t });
    for (let step = 1; step <= 100; step++) {
      t = step * 1000; // 1 s per step
      p.update({ step, loss: 2 / step, tokensPerSecond: 1500, lr: 1e-3 });
      if (step === 50) p.log('step 50: dev accuracy 60.00% (30/50)');
    }
    p.stop();
    const lines = out.join('').split('\n').filter(Boolean);
    // Steps 1, 31, 61, 91 (every 30 s), the checkpoint line, the summary.
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe('mentor: step 1/100 (1%) | loss 2.0000 | 1500 tok/s | lr 1.00e-3 | elapsed 1s | ETA 1m39s');
    expect(lines[1]).toMatch(/^mentor: step 31\/100 \(31%\) \| loss 0\.0645 \| 1500 tok\/s \| lr 1\.00e-3 \| elapsed 31s \| ETA 1m09s$/);
    expect(lines[2]).toBe('mentor: step 50: dev accuracy 60.00% (30/50)');
    expect(lines.at(-1)).toBe('mentor: done at step 100/100 in 1m40s, last loss 0.0200, 1500 tok/s');
    expect(out.join('')).not.toContain('\r');
    expect(out.join('')).not.toContain('\u001b');
  });

  it('on a terminal: the bar names the model, is cut to the width, logged lines stay above it, a summary replaces it', () => {
    const { out, stream } = fakeStream(true, 60);
    let t = 0;
    const p = progressLabel.run('student mentor-kd', () => new TrainProgress(true, 10, 0, { stream, now: () => t }));
    t = 1000;
    p.update({ step: 1, loss: 1.5, tokensPerSecond: 900, lr: 5e-4 });
    p.log('step 1: dev accuracy 10.00% (1/10)');
    t = 10_000;
    p.update({ step: 10, loss: 0.5, tokensPerSecond: 950, lr: 5e-4 });
    p.stop();
    p.stop(); // once only
    const frames = out.map((s) => (s.startsWith('\r\u001b[K') ? s.slice(4) : s));
    expect(out.every((s) => s.startsWith('\r\x1b[K'))).toBe(true);
    // The redrawn bar never wraps (a wrapped bar is what overwrote earlier lines); printed lines end in a newline and stay.
    for (const f of frames.filter((x) => !x.includes('\n'))) expect(f.length).toBeLessThanOrEqual(59);
    expect(frames[1]).toMatch(/^\[##\.+\] student mentor-kd: step 1\/10/);
    expect(frames).toContain('student mentor-kd: step 1: dev accuracy 10.00% (1/10)\n');
    expect(frames.at(-1)).toBe('student mentor-kd: done at step 10/10 in 10s, last loss 0.5000, 950 tok/s\n');
    expect(frames.filter((f) => f.endsWith('\n'))).toHaveLength(2);
  });

  it('disabled progress writes nothing; the interval comes from MENTOR_KD_LOG_INTERVAL', () => {
    const { out, stream } = fakeStream(false);
    const p = new TrainProgress(false, 5, 0, { stream });
    p.update({ step: 1, loss: 1, tokensPerSecond: 1, lr: 1 });
    p.log('x');
    p.stop();
    expect(out).toEqual([]);
    expect(logIntervalSecondsFromEnv({})).toBe(30);
    expect(logIntervalSecondsFromEnv({ MENTOR_KD_LOG_INTERVAL: '5' })).toBe(5);
    expect(() => logIntervalSecondsFromEnv({ MENTOR_KD_LOG_INTERVAL: 'soon' })).toThrow(/MENTOR_KD_LOG_INTERVAL="soon" is not a positive number/);
    expect(formatDuration(3725)).toBe('1h02m');
  });
});

describe('tensorboard', () => {
  it('CRC-32C matches the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('writes event files that parse back: file_version first, then the scalars per step, CRCs checked', () => {
    let t = 1_700_000_000.25;
    const w = new TensorBoardWriter(join(root, 'runs', 'train-mentor'), () => t);
    for (let step = 1; step <= 3; step++) {
      t += 1;
      w.addScalars(step, { 'train/loss': 1 / step, 'train/learning_rate': 1e-3, 'train/kl': NaN });
    }
    w.addScalars(2 ** 40, { 'train/loss': 0.125 });
    expect(readdirSync(join(root, 'runs', 'train-mentor'))).toEqual([expect.stringMatching(/^events\.out\.tfevents\.1700000000\./)]);
    const events = readEvents(w.file);
    expect(events[0]).toEqual({ wallTime: 1_700_000_000.25, step: 0, fileVersion: 'brain.Event:2', scalars: {} });
    expect(events.slice(1).map((e) => e.step)).toEqual([1, 2, 3, 2 ** 40]);
    expect(events[2]!.wallTime).toBe(1_700_000_002.25);
    expect(events[3]!.scalars['train/loss']).toBeCloseTo(1 / 3, 6);
    expect(events[1]!.scalars).toEqual({ 'train/loss': 1, 'train/learning_rate': Math.fround(1e-3) }); // NaN left out
    // A flipped byte is caught by the CRC.
    const bytes = readFileSync(w.file);
    bytes[bytes.length - 6]! ^= 0xff;
    const bad = join(root, 'bad.tfevents');
    writeFileSync(bad, bytes);
    expect(() => readEvents(bad)).toThrow(/bad data CRC/);
  });

  it("report_to: [tensorboard] makes the pipeline's training write its step scalars under <output_dir>/runs/<stage>; off by default", async () => {
    const stepArgs = async (outputDir: string, set: string[]) => {
      const c = resolveConfig({ preset: 'demo', outputDir, set });
      const ctx = { config: c, isMain: true, group: undefined } as unknown as StageContext;
      return (await trainArgs(c.mentor.train, ctx, join(c.output_dir, 'stages', 'train-mentor', 'train'))) as {
        onStep?: (s: StepLog) => void;
        progress: boolean;
      };
    };
    const on = await stepArgs(join(root, 'tb-on'), ['report_to=tensorboard']);
    expect(on.progress).toBe(true);
    on.onStep!({
      step: 7,
      loss: 2.5,
      ce: 2.5,
      kl: 0,
      consistency: 0,
      lr: 1e-3,
      gradNorm: 1.5,
      tokens: 10,
      sourceTokens: 5,
      epoch: 0,
      tokensPerSecond: 100,
      seconds: 0.1,
    });
    const dir = join(root, 'tb-on', 'runs', 'train-mentor');
    const events = readEvents(join(dir, readdirSync(dir)[0]!));
    expect(events.at(-1)).toMatchObject({ step: 7, scalars: { 'train/loss': 2.5, 'train/grad_norm': 1.5, 'train/tokens_per_second': 100 } });
    const off = await stepArgs(join(root, 'tb-off'), []);
    expect(off.onStep).toBeUndefined();
    expect(existsSync(join(root, 'tb-off', 'runs'))).toBe(false);
  });
});
