/**
 * One hostile model operation in its own process, so a test can run it under a memory limit and
 * see that it ends in a named Error rather than an OOM kill or an allocator failure. The job comes
 * as JSON in HOSTILE_JOB. The child loads the addon (and, for generate, builds its model), prints
 * `READY <VmSize kB> <VmHWM kB>`, and waits for a line on stdin: meanwhile the parent caps its
 * address space (prlimit --pid --as), so the limit covers exactly the operation under test. The
 * last stdout line is JSON: {ok, error?, readyHwmKb, vmHwmKb, steps?}.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { setNumThreads } from '../../lib/native/index.js';
import { T5Model } from '../../lib/model/t5-model.js';
import { tensor } from '../../lib/model/tensor.js';

interface Job {
  op: 'load' | 'fromConfig' | 'generate';
  dir?: string;
  config?: string;
  options?: Record<string, unknown>;
  maxNewTokens?: number;
  /** generate: zero this lm_head row (an untied head) so greedy decoding never picks it (EOS). */
  neverToken?: number;
}

function status(key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}

const job = JSON.parse(process.env.HOSTILE_JOB ?? '{}') as Job;
setNumThreads(1);
// Warm up before the cap: the libuv thread pool (thread stacks, malloc arenas) and libtorch's
// first allocations belong to the process, not to the operation under test.
const WARM = { model_type: 't5', vocab_size: 8, d_model: 4, d_kv: 2, d_ff: 4, num_layers: 1, num_heads: 2, dropout_rate: 0 };
(await T5Model.fromConfig(WARM)).dispose();
let model: T5Model | undefined;
if (job.op === 'generate') {
  model = await T5Model.fromConfig(job.config!, { seed: 1 });
  if (job.neverToken !== undefined) {
    const w = model.getParameter('lm_head.weight');
    const d = w.shape[1]!;
    w.data.fill(0, job.neverToken * d, (job.neverToken + 1) * d);
    model.setParameter('lm_head.weight', w);
  }
}
const readyHwmKb = status('VmHWM');
process.stdout.write(`READY ${status('VmSize')} ${readyHwmKb}\n`);
process.stdin.setEncoding('utf8');
await once(process.stdin, 'data');
process.stdin.pause();

const result: Record<string, unknown> = { ok: true };
try {
  if (job.op === 'load') {
    (await T5Model.load(job.dir!, job.options ?? {})).dispose();
  } else if (job.op === 'fromConfig') {
    (await T5Model.fromConfig(job.config!, job.options ?? {})).dispose();
  } else {
    const out = await model!.generate({ inputIds: tensor(new Int32Array([5, 6, 7, 1]), [1, 4]) }, { maxNewTokens: job.maxNewTokens! });
    result.steps = out.shape[1]! - 1;
    model!.dispose();
  }
} catch (e) {
  result.ok = false;
  result.error = (e as Error).message;
}
result.readyHwmKb = readyHwmKb;
result.vmHwmKb = status('VmHWM');
process.stdout.write(`${JSON.stringify(result)}\n`);
