/**
 * The distributed tests' two sides of a comparison: `mentor-kd launch` running a worker script of
 * test/helpers on N local ranks (the job as JSON in MKD_TEST_JOB), and the parameters of a saved
 * checkpoint to compare bit for bit or within a tolerance.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { T5Model } from '../../lib/model/t5-model.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `mentor-kd launch --nproc-per-node <nproc> -- node test/helpers/<worker>`; resolves with its exit code and stderr. */
export function launchWorkers(worker: string, job: object, nproc = 2): Promise<{ code: number | null; stderr: string }> {
  const node = [process.execPath, '--import', 'tsx'];
  const child = spawn(
    node[0]!,
    [...node.slice(1), 'lib/cli.ts', 'launch', '--nproc-per-node', String(nproc), '--', ...node, join(ROOT, 'test', 'helpers', worker)],
    {
      cwd: ROOT,
      env: { ...process.env, MKD_TEST_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.once('exit', (code) => done({ code, stderr })));
}

/** Every parameter of the model saved in `dir`, copied out, by name. */
export async function savedParams(dir: string): Promise<Map<string, Float32Array>> {
  const m = await T5Model.load(dir);
  const out = new Map(m.parameterNames().map((n) => [n, Float32Array.from(m.getParameter(n).data as Float32Array)]));
  m.dispose();
  return out;
}
