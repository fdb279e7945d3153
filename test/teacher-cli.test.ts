/** `mentor-kd teacher serve` and `teacher collect` as processes: wiring, output, exit codes. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTaskFile } from '../lib/tasks/index.js';

const root = resolve(__dirname, '..');
const cli = join(__dirname, 'helpers', 'teacher-cli.ts');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-teacher-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((ok) => child.once('exit', (code) => ok({ code, stdout, stderr })));
  return { child, done, out: () => stdout };
}

describe('teacher CLI', () => {
  it('serve + collect over HTTP with faults; a rerun is served from the cache', async () => {
    const portFile = join(tmp, 'port');
    const server = run([
      'teacher',
      'serve',
      '--port',
      '0',
      '--port-file',
      portFile,
      '--rate-429',
      '0.05',
      '--rate-500',
      '0.05',
      '--rate-drop',
      '0.05',
      '--rate-malformed',
      '0.05',
      '--retry-after-ms',
      '10',
      '--error-rate',
      '0.1',
      '--seed',
      '3',
    ]);
    try {
      const deadline = Date.now() + 20_000;
      while (!existsSync(portFile) || readFileSync(portFile, 'utf8').trim() === '') {
        if (Date.now() > deadline) throw new Error('server did not start');
        await new Promise((r) => setTimeout(r, 20));
      }
      const url = `http://127.0.0.1:${readFileSync(portFile, 'utf8').trim()}/v1`;
      const out = join(tmp, 'coin.json');
      const args = [
        'teacher',
        'collect',
        '--task',
        'coin_flip',
        '--synthetic',
        '20',
        '-n',
        '2',
        '--base-url',
        url,
        '--api',
        'completions',
        '-c',
        '8',
        '--timeout-ms',
        '1000',
        '-o',
        out,
        '--price-input',
        '1',
        '--price-output',
        '2',
      ];
      const first = await run(args).done;
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toContain(`wrote 40 samples to ${out}`);
      expect(first.stderr).toMatch(/samples: 40\/40\n/);
      expect(first.stderr).toMatch(/requests: \d+ sent, 80 answered, 0 from cache, [1-9]\d* retries/);
      expect(first.stderr).toMatch(/cost \$0\.0\d+/);
      const { records } = loadTaskFile(out);
      expect(records).toHaveLength(40);
      expect(existsSync(`${out}.cache.jsonl`)).toBe(true);
      expect(existsSync(`${out}.cache.jsonl.lock`)).toBe(false);

      const again = await run(args).done;
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/cache .*coin\.json\.cache\.jsonl: 80 completions/);
      expect(again.stderr).toContain('requests: 0 sent, 0 answered, 80 from cache, 0 retries');
      expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveLength(40);
    } finally {
      server.child.kill('SIGTERM');
      const stopped = await server.done;
      expect(stopped.stdout).toMatch(/mentor-kd teacher listening on http:\/\/127\.0\.0\.1:\d+\/v1/);
      expect(stopped.stderr).toMatch(/served \d+ requests: ok 80, rate_limited \d+/);
    }
  });

  it('collect --embedded; questions the teacher cannot answer make it exit 1 and say how to resume', async () => {
    const questions = join(tmp, 'mixed.json');
    writeFileSync(
      questions,
      JSON.stringify([
        { input: 'Take the last letters of each words in "Ada Bob Cy Dee" and concatenate them.', answer: 'abye' },
        { input: 'What is 2 + 2?', answer: '4' },
      ]),
    );
    const out = join(tmp, 'mixed-out.json');
    const r = await run(['teacher', 'collect', '--task', 'last_letter_concatenation', '--input', questions, '--embedded', '-o', out]).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('samples: 1/2, failed 1');
    expect(r.stderr).toMatch(/failed mixed\.json#1 sample 0: fatal \(HTTP 404\)/);
    expect(r.stderr).toContain('incomplete: rerun the same command to ask only for the 1 missing samples');
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject([{ answer: 'abye', initial_correct: true, prediction: 'abye' }]);
  });

  it('refuses to run against a remote teacher without a key, naming the variable only', async () => {
    const r = await run(
      [
        'teacher',
        'collect',
        '--task',
        'coin_flip',
        '--synthetic',
        '1',
        '--base-url',
        'https://example.invalid/v1',
        '--api-key-env',
        'MENTOR_KD_NO_SUCH_KEY',
        '-o',
        join(tmp, 'x.json'),
      ],
      { MENTOR_KD_NO_SUCH_KEY: '' },
    ).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no API key: set the environment variable MENTOR_KD_NO_SUCH_KEY');
  });
});
