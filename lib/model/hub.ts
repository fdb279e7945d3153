/**
 * Hugging Face Hub ids (`google/flan-t5-small`) as model directories, through `@huggingface/hub`,
 * in HF's own cache layout (`$HF_HUB_CACHE/models--org--name/{blobs,snapshots/<commit>,refs/<rev>}`),
 * the files Python's huggingface_hub and transformers reuse, and the reverse. Settings come from the
 * environment, as huggingface_hub reads them (lib/runtime/env.ts): HF_HOME / HF_HUB_CACHE,
 * HF_ENDPOINT, HF_TOKEN (sent, never written) and HF_HUB_OFFLINE=1 (the cache only).
 *
 * Only the files a T5 model directory needs are fetched (config, safetensors weights, tokenizer
 * files): a Hub repo often also holds PyTorch, TensorFlow, Flax and ONNX copies of the weights.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hubSettingsFromEnv, type HubSettings } from '../runtime/env.js';

/** `org/name`: what a Hub model id looks like (a local directory of that name wins, as in transformers). */
export function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/.test(s) && !s.includes('..') && !/\.$/.test(s);
}

/** The files of a repo a T5 model directory needs. */
const WANTED =
  /^(config\.json|generation_config\.json|model\.safetensors|model-\d+-of-\d+\.safetensors|model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|spiece\.model|added_tokens\.json)$/;

export interface HubDownloadOptions {
  /** Branch, tag or commit (default main). */
  revision?: string;
  /** The environment to read HF_* from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** One line per file downloaded (default: none). */
  log?: (line: string) => void;
  /** For tests and proxies. */
  fetch?: typeof fetch;
  /** A progress line (through `log`) at most this often while a large file downloads (default 10 s). */
  progressIntervalMs?: number;
  /** Files at least this large get progress lines (default 16 MiB). */
  progressMinBytes?: number;
}

const MiB = 1024 * 1024;

/**
 * `fetch` whose large response bodies report their progress through `log` (weights of a large
 * model take minutes to download; a silent wait looks like a hang).
 */
function fetchWithProgress(base: typeof fetch, log: (line: string) => void, everyMs: number, minBytes: number, current: { file: string }): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    const total = Number(res.headers.get('content-length'));
    if (res.status !== 200 || !res.body || !(total >= minBytes)) return res;
    const name = current.file; // the CDN's URL names a hash, not the file
    let seen = 0;
    let last = Date.now();
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          seen += chunk.byteLength;
          if (Date.now() - last >= everyMs) {
            last = Date.now();
            log(`hub: ${name}: ${(seen / MiB).toFixed(0)}/${(total / MiB).toFixed(0)} MiB (${Math.floor((100 * seen) / total)}%)`);
          }
          out.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** The cache folder of a model repo: `<cache>/models--org--name`. */
export function repoCacheDir(cacheDir: string, id: string): string {
  return join(cacheDir, `models--${id.split('/').join('--')}`);
}

/** A commit hash (40 hex digits), as refs/<rev> holds. */
const COMMIT = /^[0-9a-f]{40}$/;

/** The cached snapshot of `id` at `revision`, or an Error saying what is missing (HF_HUB_OFFLINE=1). */
export function cachedSnapshot(id: string, revision: string, settings: HubSettings): string {
  const repo = repoCacheDir(settings.cacheDir, id);
  let commit = revision;
  if (!COMMIT.test(revision)) {
    const ref = join(repo, 'refs', revision);
    if (!existsSync(ref))
      throw new Error(`hub: ${id} (${revision}) is not in the cache ${settings.cacheDir} and HF_HUB_OFFLINE=1 forbids downloading it; download it once online`);
    commit = readFileSync(ref, 'utf8').trim();
  }
  const snapshot = join(repo, 'snapshots', commit);
  if (!existsSync(join(snapshot, 'config.json')))
    throw new Error(`hub: ${id}: the cached snapshot ${snapshot} has no config.json (an interrupted download?); download it again online`);
  return snapshot;
}

/** A @huggingface/hub error (status code, network failure) as an Error naming the id and what to do. */
function hubError(id: string, err: unknown, s: HubSettings): Error {
  const status = (err as { statusCode?: number }).statusCode;
  const detail = err instanceof Error ? err.message : String(err);
  const at = `at ${s.endpoint}`;
  let message: string;
  if (status === 401 || status === 403)
    message = s.token
      ? `${id}: access denied ${at} (${status}): HF_TOKEN was refused or has no access to this model (gated models need their terms accepted on the Hub)`
      : `${id}: access denied ${at} (${status}): the model is private or gated, or does not exist; set HF_TOKEN to a token with access`;
  else if (status === 404) message = `${id}: not a local directory and not found ${at} (404): check the id (org/name) or the path`;
  else if (status !== undefined) message = `${id}: the Hub ${at} answered ${status} (${detail})`;
  else message = `${id}: cannot reach ${s.endpoint} (${detail}); HF_HUB_OFFLINE=1 uses the cache only`;
  return new Error(`hub: ${message}`, { cause: err });
}

/**
 * The local snapshot folder of Hub model `id` (a HF model directory), downloading what the cache
 * lacks. Online, the revision is resolved to its commit (one request) and the repo's file list read
 * (one more); files already in the snapshot are not fetched again. Offline (HF_HUB_OFFLINE=1), the
 * cache alone answers, and a missing model is an Error saying so.
 */
export async function downloadModel(id: string, options: HubDownloadOptions = {}): Promise<string> {
  if (!isHubId(id)) throw new Error(`hub: ${JSON.stringify(id)} is not a Hub model id (org/name)`);
  const s = hubSettingsFromEnv(options.env);
  const revision = options.revision ?? 'main';
  if (s.offline) return cachedSnapshot(id, revision, s);
  if (s.token !== undefined && !s.token.startsWith('hf_')) throw new Error('hub: HF_TOKEN does not look like a Hugging Face access token (hf_…)');
  const hub = await import('@huggingface/hub');
  const baseFetch = options.fetch ?? fetch;
  const current = { file: '' };
  const fetcher = options.log
    ? fetchWithProgress(baseFetch, options.log, options.progressIntervalMs ?? 10_000, options.progressMinBytes ?? 16 * MiB, current)
    : baseFetch;
  const common = { hubUrl: s.endpoint, ...(s.token ? { accessToken: s.token } : {}), fetch: fetcher };
  const repo = { type: 'model' as const, name: id };
  const repoDir = repoCacheDir(s.cacheDir, id);
  let commit: string;
  const files: string[] = [];
  try {
    const info = await hub.modelInfo({ name: id, revision, additionalFields: ['sha'], ...common });
    commit = String((info as { sha?: unknown }).sha ?? '');
    if (!COMMIT.test(commit)) throw new Error(`the Hub gave no commit for revision ${revision}`);
    for await (const f of hub.listFiles({ repo, revision: commit, recursive: true, ...common }))
      if (f.type === 'file' && WANTED.test(f.path)) files.push(f.path);
  } catch (err) {
    throw hubError(id, err, s);
  }
  if (!files.includes('config.json')) throw new Error(`hub: ${id} has no config.json at ${commit}: not a transformers model`);
  if (!files.some((f) => f.endsWith('.safetensors')))
    throw new Error(`hub: ${id} has no safetensors weights at ${commit} (mentor-kd reads model.safetensors; convert the weights first)`);
  if (revision !== commit) {
    // refs/<revision> → commit, as huggingface_hub writes it (offline runs read it).
    const ref = join(repoDir, 'refs', revision);
    mkdirSync(dirname(ref), { recursive: true });
    writeFileSync(ref, commit);
  }
  const snapshot = join(repoDir, 'snapshots', commit);
  for (const path of files) {
    if (existsSync(join(snapshot, path))) continue; // cached: no request
    options.log?.(`hub: downloading ${id}/${path} (${commit.slice(0, 8)})`);
    current.file = `${id}/${path}`;
    try {
      await hub.downloadFileToCacheDir({ repo, path, revision: commit, cacheDir: s.cacheDir, ...common });
    } catch (err) {
      throw hubError(`${id}/${path}`, err, s);
    }
  }
  return snapshot;
}
