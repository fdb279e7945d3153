/**
 * Teacher-collection throughput against the built-in teacher server with 50 ms latency:
 *   npx tsx scripts/bench/teacher.ts [--latency-ms 50] [--seconds 3] [--concurrency 8,32,128]
 * For each concurrency C the collector (pool, limiter, retries, SDK over HTTP, JSONL cache) runs
 * until ~`seconds` of steady work; requests/s is measured from the first full wave until the
 * queue empties (ramp-up and drain excluded) and compared with the ideal C / latency.
 * The server runs in a child process so client and server each get a core. CPU time per request
 * of both processes and the load average are printed too: on a shared machine other work
 * steals cores, and the CPU cost says what the code would do on quiet ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
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
  // "cpu" on stdin → this process's CPU time so far and requests served, for the parent.
  createInterface({ input: process.stdin }).on('line', () => {
    const u = process.cpuUsage();
    console.log(`CPU ${u.user + u.system} ${server.stats.requests}`);
  });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
} else {
  await main();
}

interface ServerChild {
  child: ChildProcess;
  url: string;
  /** CPU microseconds the server has used, and requests it has served. */
  cpu(): Promise<{ micros: number; requests: number }>;
}

async function startServerChild(): Promise<ServerChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', '--latency-ms', String(latencyMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = () => new Promise<string>((resolve) => waiting.push(resolve));
  const port = await Promise.race([
    nextLine().then((l) => Number(/PORT (\d+)/.exec(l)![1])),
    new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)))),
  ]);
  return {
    child,
    url: `http://127.0.0.1:${port}/v1`,
    cpu: async () => {
      const reply = nextLine();
      child.stdin!.write('cpu\n');
      const [, micros, requests] = (await reply).split(' ');
      return { micros: Number(micros), requests: Number(requests) };
    },
  };
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '3'));
  const levels = arg('concurrency', '8,32,128').split(',').map(Number);
  const server = await startServerChild();
  const { child, url } = server;
  const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-bench-'));
  const teacher = new TeacherClient({ model: 'bench', baseURL: url, api: 'chat' });
  console.log(`teacher bench: server latency ${latencyMs} ms, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  console.log('C\tideal req/s\tmeasured req/s\tratio\toverall req/s\trequests\tclient CPU/req\tserver CPU/req\tload avg (1 min)');
  const rows: Array<{ c: number; ratio: number; cpu: number }> = [];
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
      const load = loadavg()[0]!;
      const clientCpu0 = process.cpuUsage();
      const serverCpu0 = await server.cpu();
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
      const clientCpu = process.cpuUsage(clientCpu0);
      const serverCpu1 = await server.cpu();
      const served = serverCpu1.requests - serverCpu0.requests;
      const clientPerRequest = (clientCpu.user + clientCpu.system) / result.stats.responses;
      const serverPerRequest = (serverCpu1.micros - serverCpu0.micros) / served;
      cache.close();
      if (result.failures.length) throw new Error(`${result.failures.length} failures, first: ${result.failures[0]!.message}`);
      const steady = tStart !== undefined && tEnd !== undefined && tEnd > tStart ? ((rEnd - rStart) * 1000) / (tEnd - tStart) : NaN;
      const ratio = steady / ideal;
      rows.push({ c, ratio, cpu: clientPerRequest + serverPerRequest });
      console.log(
        `${c}\t${ideal.toFixed(0)}\t\t${steady.toFixed(0)}\t\t${(100 * ratio).toFixed(1)}%\t${(result.stats.responses / elapsed).toFixed(0)}\t\t${result.stats.responses}` +
          `\t\t${clientPerRequest.toFixed(0)} us\t\t${serverPerRequest.toFixed(0)} us\t\t${load.toFixed(2)}`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const worst = Math.min(...rows.map((r) => r.ratio));
  console.log(`worst ratio ${(100 * worst).toFixed(1)}% (target >= 95%)`);
  // What the CPU cost allows on this many otherwise idle cores (client and server together).
  const cpuPerRequest = Math.max(...rows.map((r) => r.cpu));
  console.log(
    `CPU per request (client + server, worst level): ${cpuPerRequest.toFixed(0)} us → ` +
      `${((cpus().length * 1e6) / cpuPerRequest).toFixed(0)} requests/s on ${cpus().length} idle cores`,
  );
}
