/**
 * `--dry-run`: everything a run needs, checked without running a stage — the data files read
 * through the same loader and field mapping as the data stage, model directories readable with a
 * parsable config.json and weights, Hub ids cached or answering, the teacher endpoint reachable
 * (a bounded request), the run directory writable. Each check is a finding; the caller exits 1 when
 * any is an error. The configuration itself was validated before (resolveConfig).
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cachedSnapshot, isHubId } from '../model/hub.js';
import { loadSplitFile } from '../pipeline/stages/data.js';
import { hubSettingsFromEnv, secretFromEnv } from '../runtime/env.js';
import { checkDevices, ConfigError } from './load.js';
import type { RunConfig } from './schema.js';

export interface Finding {
  level: 'ok' | 'warning' | 'error';
  /** The setting checked (data.train, mentor.init, teacher.url, …). */
  field: string;
  message: string;
}

export interface DryRunOptions {
  /** Longest wait for one network check, in ms (default 10 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

const ok = (field: string, message: string): Finding => ({ level: 'ok', field, message });
const error = (field: string, message: string): Finding => ({ level: 'error', field, message });
const errorMessage = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A local model (or tokenizer) directory: readable, config.json parsable, weights present. */
function checkModelDir(field: string, dir: string, need: 'model' | 'tokenizer'): Finding {
  if (need === 'tokenizer') {
    try {
      JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
      return ok(field, `${dir}: tokenizer.json readable`);
    } catch (e) {
      return error(field, `${dir}/tokenizer.json: ${errorMessage(e)}`);
    }
  }
  let config: { model_type?: unknown };
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown };
  } catch (e) {
    return error(field, `${dir}/config.json: ${errorMessage(e)}`);
  }
  const weights = ['model.safetensors', 'model.safetensors.index.json'].find((f) => existsSync(join(dir, f)));
  if (!weights) return error(field, `${dir} has no model.safetensors (nor a sharded index): mentor-kd reads safetensors weights`);
  return ok(field, `${dir}: ${String(config.model_type ?? 'unknown model_type')}, ${weights}`);
}

/** A Hub id: in the cache, or (online) answering at the endpoint. */
async function checkHubId(field: string, id: string, o: DryRunOptions): Promise<Finding> {
  const s = hubSettingsFromEnv(o.env);
  try {
    return ok(field, `${id}: in the cache (${cachedSnapshot(id, 'main', s)})`);
  } catch (cacheMiss) {
    if (s.offline) return error(field, errorMessage(cacheMiss));
  }
  try {
    const res = await (o.fetch ?? fetch)(`${s.endpoint}/api/models/${id}/revision/main`, {
      headers: s.token ? { authorization: `Bearer ${s.token}` } : {},
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
    await res.body?.cancel();
    if (res.ok) return ok(field, `${id}: on the Hub at ${s.endpoint} (downloaded into ${s.cacheDir} when the run starts)`);
    if (res.status === 401 || res.status === 403)
      return error(
        field,
        `${id}: access denied at ${s.endpoint} (${res.status}): private, gated or missing; ${s.token ? 'HF_TOKEN has no access' : 'set HF_TOKEN'}`,
      );
    return error(field, `${id}: not a local directory, and ${s.endpoint} answered ${res.status}`);
  } catch (e) {
    return error(field, `${id}: not cached and ${s.endpoint} is unreachable (${errorMessage(e)})`);
  }
}

/** The teacher endpoint answers its model list (any HTTP answer but 401/403 counts as reachable). */
async function checkTeacher(c: RunConfig, o: DryRunOptions): Promise<Finding> {
  if (c.teacher.url === undefined) return ok('teacher', `the built-in simulated teacher (error rate ${c.teacher.embedded?.errorRate})`);
  const key = secretFromEnv(c.teacher.apiKeyEnv, o.env);
  const url = `${c.teacher.url.replace(/\/+$/, '')}/models`;
  try {
    const res = await (o.fetch ?? fetch)(url, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403)
      return error(
        'teacher.url',
        `${c.teacher.url} refused the key (${res.status}): ${key ? `check ${c.teacher.apiKeyEnv}` : `${c.teacher.apiKeyEnv} is not set`}`,
      );
    return ok(
      'teacher.url',
      `${c.teacher.url} reachable (GET /models: ${res.status})${key ? '' : `; ${c.teacher.apiKeyEnv} is not set (fine for local servers)`}`,
    );
  } catch (e) {
    return error('teacher.url', `${c.teacher.url} unreachable within ${(o.timeoutMs ?? 10_000) / 1000} s (${errorMessage(e)})`);
  }
}

/** The nearest existing folder on the way to `dir` is writable. */
function checkWritable(dir: string): Finding {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  try {
    accessSync(d, constants.W_OK);
    return ok('output_dir', `${dir}: writable`);
  } catch {
    return error('output_dir', `${dir}: ${d} is not writable`);
  }
}

/** Every check of a validated configuration, in the order a run would meet them. */
export async function dryRun(c: RunConfig, options: DryRunOptions = {}): Promise<Finding[]> {
  const findings: Finding[] = [checkWritable(c.output_dir)];
  try {
    checkDevices(c);
    findings.push(ok('device', `mentor on ${c.mentor.device ?? c.device}, student on ${c.student.device ?? c.device}`));
  } catch (e) {
    findings.push(error(e instanceof ConfigError ? e.field : 'device', errorMessage(e).replace(/^config: [^:]+: /, '')));
  }
  if (c.data.synthetic)
    findings.push(ok('data', `${c.task} generated (${c.data.synthetic.train} train, ${c.data.synthetic.dev} dev, ${c.data.synthetic.test} test)`));
  for (const split of ['train', 'dev', 'test'] as const) {
    const file = c.data[split];
    if (file === undefined) continue;
    try {
      findings.push(ok(`data.${split}`, `${file}: ${loadSplitFile(split, file, c.data.fields).length} records`));
    } catch (e) {
      findings.push(error(`data.${split}`, errorMessage(e)));
    }
  }
  findings.push(await checkTeacher(c, options));
  if (c.tokenizer.dir !== undefined)
    findings.push(
      isHubId(c.tokenizer.dir) && !existsSync(c.tokenizer.dir)
        ? await checkHubId('tokenizer.dir', c.tokenizer.dir, options)
        : checkModelDir('tokenizer.dir', c.tokenizer.dir, 'tokenizer'),
    );
  for (const role of ['mentor', 'student'] as const) {
    const init = c[role].init;
    const field = `${role}.init`;
    if ('config' in init) {
      const config = init.config as Record<string, unknown>;
      const type = typeof config.model_type === 'string' ? config.model_type : 't5';
      const width = type === 't5' ? `d_model ${String(config.d_model ?? '?')}` : `hidden_size ${String(config.hidden_size ?? '?')}`;
      findings.push(ok(field, `from scratch (a ${type} config, ${width}) on ${c[role].device ?? c.device}`));
    } else if (isHubId(init.model_name_or_path) && !existsSync(init.model_name_or_path))
      findings.push(await checkHubId(field, init.model_name_or_path, options));
    else findings.push(checkModelDir(field, init.model_name_or_path, 'model'));
  }
  return findings;
}

/** The findings as lines, and a last line counting the errors. */
export function formatFindings(findings: readonly Finding[]): string {
  const errors = findings.filter((f) => f.level === 'error').length;
  const lines = findings.map((f) => `${f.level.padEnd(7)} ${f.field}: ${f.message}`);
  lines.push(errors ? `dry run: ${errors} error${errors > 1 ? 's' : ''}; nothing was run` : 'dry run: every check passed; nothing was run');
  return lines.join('\n');
}
