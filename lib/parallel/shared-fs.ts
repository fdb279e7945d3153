/**
 * Checks that ranks see the same files. Rank 0 alone writes run directories and checkpoints; the
 * other ranks read them (stage outputs, the checkpoint to resume from). On one machine that always
 * holds; across nodes it needs a shared filesystem, and without one the failure would be quiet:
 * rank 0 resumes from its checkpoint while rank 1, seeing none, starts afresh. These checks turn it
 * into an error on every rank, naming the ranks and hosts that do not see rank 0's files.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { ProcessGroup } from './process-group.js';
import { onMainShared } from './sharded.js';

const SHARED_HINT = 'rank 0 alone writes it and every rank reads it: put it on a filesystem every node mounts (NFS, Lustre, a shared volume)';

/**
 * Rank 0 writes a one-time token into `dir`; every rank must read it back. Throws on every rank,
 * naming the ranks (and hosts) that cannot, when one cannot. `what` names the folder in the error.
 */
export async function checkSharedDirectory(group: ProcessGroup | undefined, dir: string, what = 'directory'): Promise<void> {
  if (!group || group.worldSize === 1) return;
  const name = await onMainShared(
    group,
    () => {
      const n = `.mentor-kd-shared-check-${randomBytes(8).toString('hex')}`;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, n), n);
      return n;
    },
    `${what} check`,
  );
  const file = join(dir, name);
  let sees: boolean;
  try {
    sees = readFileSync(file, 'utf8') === name;
  } catch {
    sees = false;
  }
  const views = await group.allgatherObject({ sees, host: hostname(), path: resolve(dir) });
  if (group.isMain) rmSync(file, { force: true }); // every rank has looked
  const blind = views.map((v, rank) => ({ ...v, rank })).filter((v) => !v.sees);
  if (blind.length) {
    const who = blind.map((v) => `rank ${v.rank} (host ${v.host})`).join(', ');
    throw new Error(
      `dist: the ${what} ${views[0]!.path} is not shared between ranks: ${who} do${blind.length === 1 ? 'es' : ''} not see the file rank 0 (host ${views[0]!.host}) wrote there; ${SHARED_HINT}`,
    );
  }
}

/**
 * Every rank's `value` (JSON) must be the same; otherwise throws on every rank, listing each rank's
 * value through `describe`. For decisions each rank takes from the filesystem (which checkpoint to
 * resume from) that must agree.
 */
export async function agreeAcrossRanks<T>(
  group: ProcessGroup | undefined,
  value: T,
  what: string,
  describe: (v: T) => string = (v) => JSON.stringify(v),
): Promise<T> {
  if (!group || group.worldSize === 1) return value;
  const all = await group.allgatherObject(value);
  const first = JSON.stringify(all[0]);
  if (all.some((v) => JSON.stringify(v) !== first)) {
    throw new Error(`dist: the ranks disagree on ${what}: ${all.map((v, r) => `rank ${r}: ${describe(v)}`).join('; ')}`);
  }
  return value;
}
