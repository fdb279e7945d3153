/** Hub ids through @huggingface/hub into HF's cache layout, against a loopback hub (test/helpers/hub-server.ts). */
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadModel, isHubId, repoCacheDir } from '../lib/model/hub.js';
import { T5Model } from '../lib/model/t5-model.js';
import { validateConfig } from '../lib/config/load.js';
import { defaultConfig } from '../lib/config/defaults.js';
import { localizeHubIds } from '../lib/pipeline/stages/shared.js';
import { dryRun } from '../lib/config/dry-run.js';
import { startFakeHub, type FakeHub } from './helpers/hub-server.js';

const FIXTURE = join(__dirname, 'fixtures', 't5-hf-reference', 'flan-t5-tiny-gated-gelu-seed1');
const ID = 'tiny-org/flan-t5-tiny';
const root = mkdtempSync(join(tmpdir(), 'mentor-kd-hub-'));
let hub: FakeHub;
let privateHub: FakeHub;
const TOKEN = 'hf_loopbacktoken123';

beforeAll(async () => {
  hub = await startFakeHub({ id: ID, dir: FIXTURE });
  privateHub = await startFakeHub({ id: ID, dir: FIXTURE, token: TOKEN });
});
afterAll(async () => {
  await hub.close();
  await privateHub.close();
  rmSync(root, { recursive: true, force: true });
});

const envFor = (h: FakeHub, cache: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HF_ENDPOINT: h.url, HF_HUB_CACHE: cache, ...extra });
const downloads = (h: FakeHub) => h.requests.filter((r) => r.path.includes('/resolve/') || r.path.startsWith('/lfs-cdn/') || r.path.includes('/paths-info/'));

describe('hub', () => {
  const cache = join(root, 'cache');

  it('downloads a model id into the HF cache layout (blobs, snapshots/<commit>, refs/main) and the model loads', async () => {
    const lines: string[] = [];
    const snapshot = await downloadModel(ID, { env: envFor(hub, cache), log: (l) => lines.push(l), progressIntervalMs: 0, progressMinBytes: 100_000 });
    // One line per file, and progress lines while the large one (the weights) downloads.
    expect(lines.filter((l) => l.startsWith('hub: downloading'))).toHaveLength(3);
    expect(lines.at(-1)).toMatch(/^hub: tiny-org\/flan-t5-tiny\/model\.safetensors: 0\/0 MiB \(100%\)$/);
    const repo = repoCacheDir(cache, ID);
    expect(repo).toBe(join(cache, 'models--tiny-org--flan-t5-tiny'));
    expect(snapshot).toBe(join(repo, 'snapshots', hub.commit));
    expect(readFileSync(join(repo, 'refs', 'main'), 'utf8')).toBe(hub.commit);
    // Only what a model directory needs: the fixture's reference files stay on the hub.
    expect(readdirSync(snapshot).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
    // Blobs named by etag (sha256 for LFS files, the git blob sha1 otherwise), snapshot entries symlinks to them — huggingface_hub's layout.
    const weights = hub.files.find((f) => f.path === 'model.safetensors')!;
    const config = hub.files.find((f) => f.path === 'config.json')!;
    expect(readdirSync(join(repo, 'blobs')).sort()).toEqual([weights.lfs!, config.oid, hub.files.find((f) => f.path === 'generation_config.json')!.oid].sort());
    expect(lstatSync(join(snapshot, 'model.safetensors')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(snapshot, 'model.safetensors'))).toBe(`../../blobs/${weights.lfs}`);
    expect(readFileSync(join(snapshot, 'model.safetensors')).equals(readFileSync(join(FIXTURE, 'model.safetensors')))).toBe(true);
    // The LFS file came through the redirect, as from the Hub's CDN.
    expect(hub.requests.some((r) => r.path === `/lfs-cdn/${weights.lfs}`)).toBe(true);
    const [fromHub, fromDir] = [await T5Model.load(snapshot), await T5Model.load(FIXTURE)];
    expect(fromHub.info().numParameters).toBe(fromDir.info().numParameters);
    fromHub.dispose();
    fromDir.dispose();
  });

  it('reuses the cache: a second call downloads nothing', async () => {
    const before = downloads(hub).length;
    const n = hub.requests.length;
    const snapshot = await downloadModel(ID, { env: envFor(hub, cache) });
    expect(snapshot).toBe(join(repoCacheDir(cache, ID), 'snapshots', hub.commit));
    expect(downloads(hub).length).toBe(before);
    // Only the revision lookup and the file list.
    expect(hub.requests.slice(n).map((r) => r.path.replace(/[0-9a-f]{40}/, '<commit>'))).toEqual([
      `/api/models/${ID}/revision/main`,
      `/api/models/${ID}/tree/<commit>`,
    ]);
  });

  it('HF_HUB_OFFLINE=1 reads the cache only, and says so when the model is not there', async () => {
    const n = hub.requests.length;
    expect(await downloadModel(ID, { env: envFor(hub, cache, { HF_HUB_OFFLINE: '1' }) })).toBe(join(repoCacheDir(cache, ID), 'snapshots', hub.commit));
    await expect(downloadModel(ID, { env: envFor(hub, join(root, 'empty-cache'), { HF_HUB_OFFLINE: '1' }) })).rejects.toThrow(
      /hub: tiny-org\/flan-t5-tiny \(main\) is not in the cache .*empty-cache and HF_HUB_OFFLINE=1 forbids downloading it/,
    );
    expect(hub.requests.length).toBe(n);
  });

  it('a 404 names the id; a 401 names the id and HF_TOKEN; the token is sent but never written', async () => {
    await expect(downloadModel('tiny-org/no-such-model', { env: envFor(hub, join(root, 'c404')) })).rejects.toThrow(
      /hub: tiny-org\/no-such-model: not a local directory and not found at http:\/\/127\.0\.0\.1:\d+ \(404\)/,
    );
    await expect(downloadModel(ID, { env: envFor(privateHub, join(root, 'c401')) })).rejects.toThrow(
      /hub: tiny-org\/flan-t5-tiny: access denied at http:\/\/127\.0\.0\.1:\d+ \(401\): .*set HF_TOKEN/,
    );
    await expect(downloadModel(ID, { env: envFor(privateHub, join(root, 'c401'), { HF_TOKEN: 'hf_wrong' }) })).rejects.toThrow(/HF_TOKEN was refused/);
    const withToken = join(root, 'c-token');
    const snapshot = await downloadModel(ID, { env: envFor(privateHub, withToken, { HF_TOKEN: TOKEN }) });
    expect(existsSync(join(snapshot, 'model.safetensors'))).toBe(true);
    expect(privateHub.requests.filter((r) => r.auth === `Bearer ${TOKEN}`).length).toBeGreaterThan(3);
    const everything = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? everything(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
    for (const f of everything(withToken)) expect(readFileSync(f).includes(TOKEN)).toBe(false);
  });

  it('a config names a Hub id; the run gets its local snapshot before any stage', async () => {
    expect(isHubId('google/flan-t5-small')).toBe(true);
    expect(isHubId('/abs/path')).toBe(false);
    expect(isHubId('../up/dir')).toBe(false);
    const raw = { ...defaultConfig(), output_dir: join(root, 'run') };
    raw.mentor = { ...raw.mentor, init: { model_name_or_path: ID } };
    const c = validateConfig(raw, root);
    expect(c.mentor.init).toEqual({ model_name_or_path: ID });
    const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_HUB_CACHE: process.env.HF_HUB_CACHE };
    Object.assign(process.env, envFor(hub, cache));
    try {
      const lines: string[] = [];
      const local = await localizeHubIds(c, undefined, (l) => lines.push(l));
      expect(local.mentor.init).toEqual({ model_name_or_path: join(repoCacheDir(cache, ID), 'snapshots', hub.commit) });
      expect(local.student.init).toEqual(c.student.init);
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });

  it('--dry-run finds a Hub id in the cache, on the Hub, or names what is wrong, without downloading', async () => {
    const c = validateConfig(
      { ...defaultConfig(), output_dir: join(root, 'dry'), mentor: { ...defaultConfig().mentor, init: { model_name_or_path: ID } } },
      root,
    );
    const n = downloads(hub).length;
    const mentorFinding = async (env: NodeJS.ProcessEnv) => (await dryRun(c, { env, timeoutMs: 5000 })).find((f) => f.field === 'mentor.init');
    expect(await mentorFinding(envFor(hub, cache))).toMatchObject({ level: 'ok', message: expect.stringMatching(/^tiny-org\/flan-t5-tiny: in the cache/) });
    expect(await mentorFinding(envFor(hub, join(root, 'dry-cache')))).toMatchObject({ level: 'ok', message: expect.stringMatching(/on the Hub at http/) });
    expect(await mentorFinding(envFor(privateHub, join(root, 'dry-cache')))).toMatchObject({
      level: 'error',
      message: expect.stringMatching(/access denied .*\(401\).*set HF_TOKEN/),
    });
    expect(await mentorFinding(envFor(hub, join(root, 'dry-cache'), { HF_HUB_OFFLINE: '1' }))).toMatchObject({
      level: 'error',
      message: expect.stringMatching(/not in the cache/),
    });
    expect(downloads(hub).length).toBe(n);
    expect(existsSync(join(root, 'dry-cache'))).toBe(false);
  });
});
