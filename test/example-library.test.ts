// The README's library example (examples/library.ts) runs as written, against this checkout's lib/.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('examples/library.ts', () => {
  it('trains, generates and saves through the public API', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-example-test-'));
    try {
      const source = readFileSync('examples/library.ts', 'utf8').replace("from 'mentor-kd'", `from '${resolve('lib/index.ts')}'`);
      const script = join(dir, 'library.mts');
      writeFileSync(script, source);
      const out = execFileSync(process.execPath, ['--import', 'tsx', script, join(dir, 'out')], { encoding: 'utf8', timeout: 120_000 });
      const m = /trained 20 steps: loss ([\d.]+) -> ([\d.]+)/.exec(out);
      expect(m, out).not.toBeNull();
      expect(Number(m![2])).toBeLessThan(Number(m![1]));
      expect(out).toMatch(/greedy: /);
      expect(out).toMatch(/sampled: 2 sequences/);
      expect(existsSync(join(dir, 'out', 'student', 'model.safetensors'))).toBe(true);
      expect(existsSync(join(dir, 'out', 'student', 'tokenizer.json'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
