/**
 * Nothing lost: a collector killed with SIGKILL mid-run, then rerun, completes every sample
 * without asking the teacher again for anything that had reached the cache.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheKey, startTeacherServer, type RecordedRequest } from '../lib/teacher/index.js';

const root = resolve(__dirname, '..');
const helper = join(__dirname, 'helpers', 'teacher-collect.ts');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function startCollector(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', helper], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal, stdout, stderr })),
  );
  return { child, exited };
}

function cacheLines(path: string): Array<{ key: string }> {
  if (!existsSync(path)) return [];
  const out: Array<{ key: string }> = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    try {
      out.push(JSON.parse(line));
    } catch {
      // the empty tail, or a line torn by the kill
    }
  }
  return out;
}

describe('kill and resume', () => {
  it('SIGKILL mid-run, rerun: every sample completes, nothing cached is asked again', async () => {
    const count = 40;
    const samples = 2;
    const completions = 2 * samples * count; // rationale + answer per sample
    const server = await startTeacherServer({
      seed: 8,
      latencyMs: 20,
      errorRate: 0.1,
      recordRequests: true,
      // 20% faults; slow responses (timeouts) are exercised in teacher-http.test.ts
      faults: { rateLimited: 0.05, serverError: 0.05, dropped: 0.05, malformed: 0.05, retryAfterMs: 20 },
    });
    const cache = join(tmp, 'cache.jsonl');
    const out = join(tmp, 'out.json');
    const env = { TEACHER_URL: server.url, CACHE: cache, OUT: out, COUNT: String(count), SAMPLES: String(samples), CONCURRENCY: '4' };
    try {
      // First run: kill it once about 40% of the completions are in the cache.
      const first = startCollector(env);
      const deadline = Date.now() + 30_000;
      while (cacheLines(cache).length < 0.4 * completions) {
        if (Date.now() > deadline) throw new Error('first run made no progress');
        await new Promise((r) => setTimeout(r, 10));
      }
      first.child.kill('SIGKILL');
      const killed = await first.exited;
      expect(killed.signal).toBe('SIGKILL');
      expect(existsSync(out)).toBe(false);
      // Requests the dead process had already written may still be in the server's socket
      // queue: let them be read before drawing the line between the two runs.
      await new Promise((r) => setTimeout(r, 250));
      const requestsBeforeKill = server.requests.length;
      const cachedAtKill = new Set(cacheLines(cache).map((l) => l.key));
      expect(cachedAtKill.size).toBeGreaterThan(0);
      expect(cachedAtKill.size).toBeLessThan(completions);
      // As if the kill had cut a line in half.
      appendFileSync(cache, '{"key":"0123abc","model":"sim","stage":"ratio');

      // Second run: resumes and finishes.
      const second = await startCollector(env).exited;
      expect(second.code, second.stderr).toBe(0);
      const report = JSON.parse(second.stdout.trim().split('\n').at(-1)!);
      expect(report.failures).toEqual([]);
      expect(report.torn).toBe(1);
      expect(report.loaded).toBe(cachedAtKill.size);
      expect(report.stats.cacheHits).toBe(cachedAtKill.size);
      expect(report.stats.responses).toBe(completions - cachedAtKill.size);

      // Every question has exactly its samples.
      const rows = JSON.parse(readFileSync(out, 'utf8')) as Array<{ question_id: string; sample_index: number }>;
      expect(rows).toHaveLength(count * samples);
      const seen = new Set(rows.map((r) => `${r.question_id}#${r.sample_index}`));
      expect(seen.size).toBe(rows.length);
      for (const r of rows) expect([0, 1]).toContain(r.sample_index);

      // The teacher was not asked again for anything the cache had: recompute the key of every
      // request the second run sent and answered.
      const keyOf = (r: RecordedRequest): string => {
        const sampling = r.stage === 'rationale' ? { temperature: 0.7, maxTokens: 256 } : { temperature: 0, maxTokens: 32 };
        return cacheKey({ model: 'sim', api: r.endpoint, prompt: r.prompt, sampling: { ...sampling, seed: r.seed! }, sampleIndex: r.seed! });
      };
      const rerun = server.requests.slice(requestsBeforeKill).filter((r) => r.outcome === 'ok');
      expect(rerun).toHaveLength(completions - cachedAtKill.size);
      for (const r of rerun) expect(cachedAtKill.has(keyOf(r))).toBe(false);
      // And the final cache holds each completion exactly once.
      const finalKeys = cacheLines(cache).map((l) => l.key);
      expect(finalKeys).toHaveLength(completions);
      expect(new Set(finalKeys).size).toBe(completions);
    } finally {
      await server.close();
    }
  });
});
