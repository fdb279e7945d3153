/** `mentor-kd teacher ...`: `serve` the built-in teacher, `collect` rationales from any teacher. */
import { existsSync, writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadTaskFile, type FileFormat } from '../tasks/loaders.js';
import { getTask } from '../tasks/registry.js';
import { SYNTHETIC_GENERATORS } from '../tasks/synthetic.js';
import { CompletionCache } from './cache.js';
import { DEFAULT_API_KEY_ENV, TeacherClient } from './client.js';
import { CollectDeadlineError, collectRationales, type CollectResult } from './collector.js';
import { writeSamples } from './output.js';
import { createProgressBar } from './progress.js';
import { evenFaults, type FaultRates } from './server/faults.js';
import { ReplayBook } from './server/replay.js';
import { startTeacherServer, type TeacherServer } from './server/server.js';
import { pricingFor, type Pricing } from './usage.js';

const num =
  (name: string, min: number, max = Infinity, integer = false) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    }
    return n;
  };
const rate = (name: string) => num(name, 0, 1);
const count = (name: string, min = 0) => num(name, min, Infinity, true);

interface ServeOptions {
  port: number;
  seed: number;
  latencyMs: number;
  latencyJitterMs: number;
  errorRate: number;
  replay?: string;
  replayTask?: string;
  faultRate?: number;
  rate429?: number;
  rate500?: number;
  rateDrop?: number;
  rateMalformed?: number;
  rateSlow?: number;
  retryAfterMs?: number;
  slowMs?: number;
  maxBodyBytes?: number;
  model: string;
  portFile?: string;
}

function faultsFrom(o: ServeOptions): FaultRates {
  const f: FaultRates = o.faultRate !== undefined ? evenFaults(o.faultRate) : {};
  if (o.rate429 !== undefined) f.rateLimited = o.rate429;
  if (o.rate500 !== undefined) f.serverError = o.rate500;
  if (o.rateDrop !== undefined) f.dropped = o.rateDrop;
  if (o.rateMalformed !== undefined) f.malformed = o.rateMalformed;
  if (o.rateSlow !== undefined) f.slow = o.rateSlow;
  if (o.retryAfterMs !== undefined) f.retryAfterMs = o.retryAfterMs;
  if (o.slowMs !== undefined) f.slowMs = o.slowMs;
  return f;
}

function addServerOptions(cmd: Command, prefix = ''): Command {
  return cmd
    .option(`--${prefix}seed <n>`, 'seed of simulated and replayed outputs', count('--seed'), 0)
    .option(`--${prefix}latency-ms <ms>`, 'delay before every response', num('--latency-ms', 0), 0)
    .option(`--${prefix}latency-jitter-ms <ms>`, 'extra random delay, uniform in [0, ms]', num('--latency-jitter-ms', 0), 0)
    .option(`--${prefix}error-rate <p>`, 'probability a simulated rationale has a wrong step or final answer', rate('--error-rate'), 0)
    .option(`--${prefix}replay <file>`, "recorded teacher outputs to replay (format of the release's prompt/{task}_6.json)")
    .option(`--${prefix}replay-task <name>`, 'task of the replay file (default: from its name)')
    .option(`--${prefix}fault-rate <p>`, 'total fault rate, split evenly over 429 / 500 / drop / malformed / slow', rate('--fault-rate'))
    .option(`--${prefix}rate-429 <p>`, '429 Too Many Requests (with Retry-After)', rate('--rate-429'))
    .option(`--${prefix}rate-500 <p>`, '500 Internal Server Error', rate('--rate-500'))
    .option(`--${prefix}rate-drop <p>`, 'connection dropped before or during the response', rate('--rate-drop'))
    .option(`--${prefix}rate-malformed <p>`, '200 with a body that is not valid JSON', rate('--rate-malformed'))
    .option(`--${prefix}rate-slow <p>`, 'response delayed by --slow-ms', rate('--rate-slow'))
    .option(`--${prefix}retry-after-ms <ms>`, 'Retry-After sent with 429s (default 100)', num('--retry-after-ms', 0))
    .option(`--${prefix}slow-ms <ms>`, 'extra delay of slow responses (default 2000)', num('--slow-ms', 0))
    .option(`--${prefix}max-body-bytes <n>`, 'largest request body accepted, else 413 (default 8 MiB)', count('--max-body-bytes', 1));
}

async function startFromOptions(o: ServeOptions, port: number): Promise<TeacherServer> {
  return startTeacherServer({
    port,
    seed: o.seed,
    latencyMs: o.latencyMs,
    latencyJitterMs: o.latencyJitterMs,
    errorRate: o.errorRate,
    faults: faultsFrom(o),
    model: o.model,
    ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}),
    ...(o.replay ? { replay: ReplayBook.fromFile(o.replay, o.replayTask) } : {}),
  });
}

interface CollectCliOptions {
  task: string;
  input?: string;
  format?: FileFormat;
  synthetic?: number;
  syntheticSeed: number;
  limit?: number;
  model: string;
  baseUrl?: string;
  embedded?: boolean;
  api: 'chat' | 'completions';
  apiKeyEnv: string;
  samples: number;
  temperature?: number;
  maxTokens: number;
  answerMaxTokens: number;
  seed: number | false;
  concurrency: number;
  rpm?: number;
  tpm?: number;
  maxRetries: number;
  timeoutMs: number;
  maxResponseBytes?: number;
  maxRetryAfterMs?: number;
  deadlineMs?: number;
  cache?: string;
  out: string;
  priceInput?: number;
  priceOutput?: number;
  progress?: boolean;
  fsync?: boolean;
}

function summary(result: CollectResult): string[] {
  const s = result.stats;
  const correct = result.samples.filter((x) => x.correct).length;
  const byKind = Object.entries(s.retriesByKind)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `samples: ${result.samples.length}/${s.total}${s.failed ? `, failed ${s.failed}` : ''}`,
    `teacher correct: ${correct}/${result.samples.length}`,
    `requests: ${s.requests} sent, ${s.responses} answered, ${s.cacheHits} from cache, ${s.retries} retries${byKind ? ` (${byKind})` : ''}`,
    `tokens: ${s.usage.promptTokens} prompt + ${s.usage.completionTokens} completion` + (s.costUsd !== undefined ? `, cost $${s.costUsd.toFixed(4)}` : ''),
    `time: ${(s.elapsedMs / 1000).toFixed(1)} s, ${((s.responses * 1000) / Math.max(1, s.elapsedMs)).toFixed(1)} requests/s`,
  ];
}

export function registerTeacherCommands(program: Command): void {
  const teacher = program.command('teacher').description('the teacher LLM: serve the built-in one, collect rationales');

  addServerOptions(
    teacher
      .command('serve')
      .description('OpenAI-compatible teacher on 127.0.0.1: simulates the synthetic tasks, replays recorded outputs, injects faults')
      .option('--port <n>', 'port (0: any free one)', count('--port'), 8000)
      .option('--model <name>', 'model name reported by /v1/models', 'mentor-kd-teacher')
      .option('--port-file <file>', 'write the port here once listening (for scripts)'),
  ).action(async (o: ServeOptions) => {
    const server = await startFromOptions(o, o.port);
    if (o.portFile) writeFileSync(o.portFile, `${server.port}\n`);
    console.log(`mentor-kd teacher listening on ${server.url}`);
    const stop = (): void => {
      void server.close().then(() => {
        const b = server.stats.byOutcome;
        console.error(
          `served ${server.stats.requests} requests: ${Object.entries(b)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
        process.exit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

  addServerOptions(
    teacher
      .command('collect')
      .description('Zero-shot-CoT rationales and answers from a teacher, n samples per question, resumable through a JSONL cache')
      .requiredOption('-t, --task <name>', 'task (see `mentor-kd tasks list`)')
      .option('-i, --input <file>', 'questions with gold answers (Mentor-KD JSON, GSM8K JSONL, ...)')
      .addOption(new Option('--format <format>', 'input format (default: detected)').choices(['mentor-kd', 'gsm8k', 'generic']))
      .option('--synthetic <n>', 'generate n questions instead of --input (synthetic tasks)', count('--synthetic', 1))
      .option('--synthetic-seed <n>', 'seed of --synthetic', count('--synthetic-seed'), 0)
      .option('--limit <n>', 'only the first n questions', count('--limit', 1))
      .option('-m, --model <name>', 'teacher model', 'mentor-kd-teacher')
      .option('--base-url <url>', 'OpenAI-compatible base URL (default: $OPENAI_BASE_URL, else OpenAI)')
      .option('--embedded', 'use the built-in teacher in this process (options as for `teacher serve`, prefixed embedded-)')
      .addOption(new Option('--api <api>', 'endpoint').choices(['chat', 'completions']).default('chat'))
      .option('--api-key-env <var>', 'environment variable holding the API key', DEFAULT_API_KEY_ENV)
      .option('-n, --samples <n>', 'samples per question', count('--samples', 1), 1)
      .option('--temperature <t>', 'rationale temperature (default 0.7 with n > 1, else 0)', num('--temperature', 0, 2))
      .option('--max-tokens <n>', 'rationale max tokens', count('--max-tokens', 1), 256)
      .option('--answer-max-tokens <n>', 'answer-stage max tokens', count('--answer-max-tokens', 1), 32)
      .option('--seed <n>', 'base seed sent to the teacher (sample i sends seed + i)', count('--seed'), 0)
      .option('--no-seed', 'send no seed')
      .option('-c, --concurrency <n>', 'requests in flight', count('--concurrency', 1), 8)
      .option('--rpm <n>', 'requests-per-minute limit', num('--rpm', 1))
      .option('--tpm <n>', 'tokens-per-minute limit', num('--tpm', 1))
      .option('--max-retries <n>', 'retries per request', count('--max-retries'), 8)
      .option('--timeout-ms <ms>', 'per-request timeout', count('--timeout-ms', 1), 60_000)
      .option('--max-response-bytes <n>', 'largest teacher response accepted, after decompression (default 32 MiB)', count('--max-response-bytes', 1))
      .option('--max-retry-after-ms <ms>', 'longest Retry-After obeyed; longer ones are cut to this (default 60000)', count('--max-retry-after-ms'))
      .option('--deadline-ms <ms>', 'stop the collection after this long (a rerun resumes from the cache)', count('--deadline-ms', 1))
      .option('--cache <file>', 'JSONL completion cache (default: <out>.cache.jsonl)')
      .option('--fsync', 'fsync the cache after every line (survives power loss)')
      .requiredOption('-o, --out <file>', 'samples, JSON (or JSONL by extension)')
      .option('--price-input <usd>', 'USD per 1M prompt tokens (default: known list price of the model)', num('--price-input', 0))
      .option('--price-output <usd>', 'USD per 1M completion tokens', num('--price-output', 0))
      .option('--progress', 'show progress even when not on a terminal')
      .option('--no-progress', 'no progress bar'),
    'embedded-',
  ).action(async (o: CollectCliOptions & Record<string, unknown>) => {
    const task = getTask(o.task);
    let questions;
    if (o.input) {
      questions = loadTaskFile(o.input, o.format ? { format: o.format } : {}).records;
    } else if (o.synthetic !== undefined) {
      const generate = (SYNTHETIC_GENERATORS as Record<string, (typeof SYNTHETIC_GENERATORS)[keyof typeof SYNTHETIC_GENERATORS]>)[task.name];
      if (!generate) throw new Error(`--synthetic works for ${Object.keys(SYNTHETIC_GENERATORS).join(', ')}; use --input for ${task.name}`);
      questions = generate({ count: o.synthetic, seed: o.syntheticSeed });
    } else throw new Error('give --input FILE or --synthetic N');
    if (o.limit !== undefined) questions = questions.slice(0, o.limit);

    let server: TeacherServer | undefined;
    if (o.embedded) {
      const serveOptions = Object.fromEntries(
        Object.entries(o)
          .filter(([k]) => k.startsWith('embedded') && k !== 'embedded')
          .map(([k, v]) => [k.charAt(8).toLowerCase() + k.slice(9), v]),
      ) as unknown as ServeOptions;
      server = await startFromOptions({ ...serveOptions, model: o.model }, 0);
    }
    const client = new TeacherClient({
      model: o.model,
      api: o.api,
      apiKeyEnv: o.apiKeyEnv,
      timeoutMs: o.timeoutMs,
      ...(o.maxResponseBytes !== undefined ? { maxResponseBytes: o.maxResponseBytes } : {}),
      ...(server ? { baseURL: server.url } : o.baseUrl ? { baseURL: o.baseUrl } : {}),
    });
    const pricing: Pricing | undefined =
      o.priceInput !== undefined || o.priceOutput !== undefined
        ? { inputPerMillion: o.priceInput ?? 0, outputPerMillion: o.priceOutput ?? 0 }
        : pricingFor(o.model);
    const cachePath = o.cache ?? `${o.out}.cache.jsonl`;
    const resuming = existsSync(cachePath);
    const cache = CompletionCache.open(cachePath, { fsync: Boolean(o.fsync) });
    if (resuming) {
      console.error(`cache ${cachePath}: ${cache.loaded} completions${cache.tornLines ? ', 1 torn last line dropped' : ''}`);
    }
    const total = questions.length * o.samples;
    const bar = o.progress === false ? undefined : createProgressBar(total, { force: o.progress === true });
    const abort = new AbortController();
    const onSignal = (): void => abort.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    let result: CollectResult;
    let deadlinePassed = false;
    try {
      result = await collectRationales({
        task,
        questions,
        teacher: client,
        samples: o.samples,
        rationale: { maxTokens: o.maxTokens, ...(o.temperature !== undefined ? { temperature: o.temperature } : {}) },
        answer: { maxTokens: o.answerMaxTokens },
        seed: o.seed === false ? null : o.seed,
        cache,
        concurrency: o.concurrency,
        limits: { ...(o.rpm ? { requestsPerMinute: o.rpm } : {}), ...(o.tpm ? { tokensPerMinute: o.tpm } : {}) },
        retry: { maxRetries: o.maxRetries, ...(o.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: o.maxRetryAfterMs } : {}) },
        ...(o.deadlineMs !== undefined ? { deadlineMs: o.deadlineMs } : {}),
        // A wait the server asked for but was cut short is worth a line; ordinary retries show in the bar.
        onRetry: (event) => {
          if (event.retryAfterCappedAtMs !== undefined) console.error(event.line);
        },
        ...(pricing ? { pricing } : {}),
        ...(bar ? { onProgress: bar.onProgress } : {}),
        signal: abort.signal,
      });
    } catch (err) {
      // Past --deadline-ms: say so, and still write what was done (the cache has it all too).
      if (!(err instanceof CollectDeadlineError)) throw err;
      console.error(err.message);
      result = err.result;
      deadlinePassed = true;
    } finally {
      bar?.stop();
      process.removeListener('SIGINT', onSignal);
      cache.close();
      client.close();
      await server?.close();
    }
    writeSamples(o.out, result.samples);
    for (const line of summary(result)) console.error(line);
    for (const f of result.failures.slice(0, 5)) console.error(`  failed ${f.questionId} sample ${f.sampleIndex}: ${f.message}`);
    console.log(`wrote ${result.samples.length} samples to ${o.out}`);
    if (result.aborted || result.failures.length > 0 || deadlinePassed) {
      console.error(`incomplete: rerun the same command to ask only for the ${total - result.samples.length} missing samples`);
      process.exitCode = result.aborted && !deadlinePassed ? 130 : 1;
    }
  });
}
