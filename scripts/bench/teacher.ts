/**
 * Teacher-collection throughput against the built-in teacher server with 50 ms latency:
 *   npx tsx scripts/bench/teacher.ts [--latency-ms 50] [--seconds 3] [--concurrency 8,32,128] [--repeat 3]
 * For each concurrency C the collector (pool, limiter, retries, SDK over HTTP, JSONL cache) runs
 * until ~`seconds` of steady work; requests/s is measured from the first full wave until the
 * queue empties (ramp-up and drain excluded) and compared with the ideal C / latency.
 * The server runs in a child process so client and server each get a core; both run with a
 * larger V8 young generation (--max-semi-space-size=64: fewer scavenges at thousands of small
 * requests per second). Each level runs --repeat times; the median is the figure. CPU time per request
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

const SEMI_SPACE = '--max-semi-space-size=64';

if (!process.execArgv.includes(SEMI_SPACE)) {
  // Re-run this script with the V8 flag (it must be set at start-up).
  const child = spawn(process.execPath, [...process.execArgv, SEMI_SPACE, ...process.argv.slice(1)], { stdio: 'inherit' });
  child.once('exit', (code) => process.exit(code ?? 1));
} else if (process.argv.includes('--serve')) {
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
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve', '--latency-ms', String(latencyMs)], {
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

interface Trial {
  c: number;
  ideal: number;
  steady: number;
  overall: number;
  requests: number;
  clientCpu: number;
  serverCpu: number;
  load: number;
}

/** One run of the collector at concurrency c; requests/s measured between the first full wave and the drain. */
async function measure(c: number, seconds: number, teacher: TeacherClient, server: ServerChild, dir: string, trial: number): Promise<Trial> {
  const ideal = c / (latencyMs / 1000);
  // Each question is two requests (rationale, answer) in sequence.
  const questions = generateLastLetterConcatenation({ count: Math.ceil((ideal * seconds) / 2), seed: c * 100 + trial });
  const cache = CompletionCache.open(join(dir, `cache-${c}-${trial}.jsonl`));
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
  cache.close();
  if (result.failures.length) throw new Error(`${result.failures.length} failures, first: ${result.failures[0]!.message}`);
  return {
    c,
    ideal,
    steady: tStart !== undefined && tEnd !== undefined && tEnd > tStart ? ((rEnd - rStart) * 1000) / (tEnd - tStart) : NaN,
    overall: result.stats.responses / elapsed,
    requests: result.stats.responses,
    clientCpu: (clientCpu.user + clientCpu.system) / result.stats.responses,
    serverCpu: (serverCpu1.micros - serverCpu0.micros) / (serverCpu1.requests - serverCpu0.requests),
    load,
  };
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', '3'));
  const repeat = Number(arg('repeat', '3'));
  const levels = arg('concurrency', '8,32,128').split(',').map(Number);
  const server = await startServerChild();
  const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-bench-'));
  const teacher = new TeacherClient({ model: 'bench', baseURL: server.url, api: 'chat' });
  console.log(`teacher bench: server latency ${latencyMs} ms, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  console.log('C\ttrial\tideal/s\tmeasured/s\tratio\toverall/s\trequests\tclient CPU/req\tserver CPU/req\tload avg');
  const trials: Trial[] = [];
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
    for (let trial = 0; trial < repeat; trial++) {
      for (const c of levels) {
        const t = await measure(c, seconds, teacher, server, dir, trial);
        trials.push(t);
        console.log(
          `${c}\t${trial + 1}\t${t.ideal.toFixed(0)}\t${t.steady.toFixed(0)}\t\t${((100 * t.steady) / t.ideal).toFixed(1)}%\t` +
            `${t.overall.toFixed(0)}\t\t${t.requests}\t\t${t.clientCpu.toFixed(0)} us\t\t${t.serverCpu.toFixed(0)} us\t\t${t.load.toFixed(2)}`,
        );
      }
    }
  } finally {
    teacher.close();
    server.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\nmedian of the trials:');
  console.log('C\tideal/s\tmeasured/s\tratio\tclient CPU/req\tclient-thread ceiling/s');
  for (const c of levels) {
    const mine = trials.filter((t) => t.c === c);
    const steady = median(mine.map((t) => t.steady));
    const clientCpu = median(mine.map((t) => t.clientCpu));
    const ideal = mine[0]!.ideal;
    console.log(
      `${c}\t${ideal.toFixed(0)}\t${steady.toFixed(0)}\t\t${((100 * steady) / ideal).toFixed(1)}%\t${clientCpu.toFixed(0)} us\t\t${(1e6 / clientCpu).toFixed(0)}`,
    );
  }
  console.log('target: ratio >= 95%; the client is one thread, so its CPU per request caps its rate (last column).');
}
