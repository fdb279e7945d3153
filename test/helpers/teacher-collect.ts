/**
 * A collector run as its own process, so a test can SIGKILL it mid-run:
 *   node --import tsx test/helpers/teacher-collect.ts
 * Configured by environment: TEACHER_URL, CACHE, OUT, COUNT, SAMPLES, CONCURRENCY.
 * Prints one JSON line with its stats when it finishes.
 */
import { generateLastLetterConcatenation } from '../../lib/tasks/synthetic.js';
import { CompletionCache } from '../../lib/teacher/cache.js';
import { TeacherClient } from '../../lib/teacher/client.js';
import { collectRationales } from '../../lib/teacher/collector.js';
import { writeSamples } from '../../lib/teacher/output.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
};

const cache = CompletionCache.open(env('CACHE'));
const client = new TeacherClient({ model: 'sim', baseURL: env('TEACHER_URL'), timeoutMs: 1000 });
const result = await collectRationales({
  task: 'last_letter_concatenation',
  questions: generateLastLetterConcatenation({ count: Number(env('COUNT')), seed: 5 }),
  teacher: client,
  samples: Number(env('SAMPLES')),
  concurrency: Number(env('CONCURRENCY')),
  cache,
  retry: { baseDelayMs: 5, maxDelayMs: 50, maxRetries: 12 },
});
cache.close();
client.close();
writeSamples(env('OUT'), result.samples);
console.log(JSON.stringify({ stats: result.stats, failures: result.failures, loaded: cache.loaded, torn: cache.tornLines }));
