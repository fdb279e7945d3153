/**
 * Teacher-collection throughput against the built-in teacher server with 50 ms latency:
 *   npx tsx scripts/bench/teacher.ts [--latency-ms 50] [--seconds 3] [--concurrency 8,32,128]
 * For each concurrency C the collector (pool, limiter, retries, SDK over HTTP, JSONL cache) runs
 * until ~`seconds` of steady work; requests/s is measured from the first full wave until the
 * queue empties (ramp-up and drain excluded) and compared with the ideal C / latency.
 * The server runs in a child process so client and server each get a core.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateLastLetterConcatenation } from '../../lib/tasks/synthetic.js';
import { CompletionCache } from '../../lib/teacher/cache.js';
import { TeacherClient } from '../../lib/teacher/client.js';
import { collectRationales } from '../../lib/teacher/collector.js';
import { startTeacherServer } from '../../lib/teacher/server/server.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const latencyMs = Number(arg('latency-ms', '50'));

if (process.argv.includes('--serve')) {
  // Child: the server alone.
  const server = await startTeacherServer({ latencyMs });
  console.log(`PORT ${server.port}`);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
} else {
  await main();
}

async function startServerChild(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', '--latency-ms', String(latencyMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/v1` };
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '3'));
  const levels = arg('concurrency', '8,32,128').split(',').map(Number);
  const { child, url } = await startServerChild();
  const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-bench-'));
  const teacher = new TeacherClient({ model: 'bench', baseURL: url, api: 'chat' });
  console.log(`teacher bench: server latency ${latencyMs} ms, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  console.log('C\tideal req/s\tmeasured req/s\tratio\toverall req/s\trequests');
  const rows: Array<{ c: number; ratio: number }> = [];
  try {
    // Warm-up (not measured): JIT-compile the client and server paths before timing anything.
    const warmCache = CompletionCache.open(join(dir, 'cache-warmup.jsonl'));
    await collectRationales({
      task: 'last_letter_concatenation',
      questions: generateLastLetterConcatenation({ count: 1500, seed: 12345 }),
      teacher,
      concurrency: 64,
      cache: warmCache,
    });
    warmCache.close();
    for (const c of levels) {
      const ideal = c / (latencyMs / 1000);
      // Each question is two requests (rationale, answer) in sequence.
      const questions = generateLastLetterConcatenation({ count: Math.ceil((ideal * seconds) / 2), seed: c });
      const cache = CompletionCache.open(join(dir, `cache-${c}.jsonl`));
      let tStart: number | undefined;
      let rStart = 0;
      let tEnd: number | undefined;
      let rEnd = 0;
      const t0 = performance.now();
      const result = await collectRationales({
        task: 'last_letter_concatenation',
        questions,
        teacher,
        samples: 1,
        concurrency: c,
        cache,
        onProgress: (p) => {
          const t = performance.now();
          if (tStart === undefined && p.responses >= c) {
            tStart = t;
            rStart = p.responses;
          }
          if (p.pending > 0) {
            tEnd = t;
            rEnd = p.responses;
          }
        },
      });
      const elapsed = (performance.now() - t0) / 1000;
      cache.close();
      if (result.failures.length) throw new Error(`${result.failures.length} failures, first: ${result.failures[0]!.message}`);
      const steady = tStart !== undefined && tEnd !== undefined && tEnd > tStart ? ((rEnd - rStart) * 1000) / (tEnd - tStart) : NaN;
      const ratio = steady / ideal;
      rows.push({ c, ratio });
      console.log(
        `${c}\t${ideal.toFixed(0)}\t\t${steady.toFixed(0)}\t\t${(100 * ratio).toFixed(1)}%\t${(result.stats.responses / elapsed).toFixed(0)}\t\t${result.stats.responses}`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const worst = Math.min(...rows.map((r) => r.ratio));
  console.log(`worst ratio ${(100 * worst).toFixed(1)}% (target >= 95%)`);
}
