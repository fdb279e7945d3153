/**
 * Two hosts, for real: each node of a 2-node job runs in its own Linux network namespace, joined by
 * a veth pair (10.231.0.1 <-> 10.231.0.2) and nothing else, and its hostname resolves to loopback
 * (as on Debian's 127.0.1.1 line, or in containers). Each node runs its own
 * `mentor-kd launch --nnodes 2 --node-rank R --master-addr 10.231.0.1`.
 *
 * This is the case c10d's default Gloo device gets wrong (it binds where the hostname resolves, so
 * every rank advertises 127.x and the nodes cannot connect); the group binds where the route to
 * MASTER_ADDR leaves instead. Needs root and iproute2 (`ip netns`); skipped, saying so, otherwise.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxDiff, reference, savedParameters } from './helpers/dist-reference.js';

const root = resolve(__dirname, '..');
const worker = join(__dirname, 'helpers', 'dist-worker.ts');
const tag = String(process.pid % 100000);
const ns = [`mkd${tag}n0`, `mkd${tag}n1`];
const veth = [`mkv${tag}a`, `mkv${tag}b`];
const addr = ['10.231.0.1', '10.231.0.2'];

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Builds the two namespaces; returns why not when this machine cannot. */
function makeHosts(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (ip netns needs it)';
  try {
    ip('netns', 'add', ns[0]!);
  } catch (err) {
    return `ip netns unavailable: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  try {
    ip('netns', 'add', ns[1]!);
    ip('link', 'add', veth[0]!, 'type', 'veth', 'peer', 'name', veth[1]!);
    for (const i of [0, 1]) {
      ip('link', 'set', veth[i]!, 'netns', ns[i]!);
      ip('-n', ns[i]!, 'addr', 'add', `${addr[i]}/24`, 'dev', veth[i]!);
      ip('-n', ns[i]!, 'link', 'set', veth[i]!, 'up');
      ip('-n', ns[i]!, 'link', 'set', 'lo', 'up');
    }
    return null;
  } catch (err) {
    removeHosts();
    return `could not build the veth link: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
}

function removeHosts(): void {
  for (const n of ns) {
    try {
      ip('netns', 'del', n); // takes its end of the veth pair with it
    } catch {
      /* not there */
    }
  }
}

const unavailable = makeHosts();
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-hosts-'));
afterAll(() => {
  removeHosts();
  rmSync(tmp, { recursive: true, force: true });
});

interface NodeRun {
  code: number | null;
  stderr: string;
}

/** Node `nodeRank` of the job: its own launcher with one worker, inside its namespace. */
function runNode(nodeRank: number, job: Record<string, unknown>, extraEnv: Record<string, string> = {}): Promise<NodeRun> {
  const args = [
    'netns',
    'exec',
    ns[nodeRank]!,
    process.execPath,
    '--import',
    'tsx',
    'lib/cli.ts',
    'launch',
    '--nproc-per-node',
    '1',
    '--nnodes',
    '2',
    '--node-rank',
    String(nodeRank),
    '--master-addr',
    addr[0]!,
    '--master-port',
    '29500',
    '--grace-ms',
    '1000',
    '--',
    process.execPath,
    '--import',
    'tsx',
    worker,
  ];
  const child = spawn('ip', args, { cwd: root, env: { ...process.env, ...extraEnv, MKD_TEST_JOB: JSON.stringify(job) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((done) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr });
    }),
  );
}

const STEPS = 3;

describe.skipIf(unavailable !== null)(`two hosts in network namespaces${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  const out = join(tmp, 'two-nodes');
  let nodes: NodeRun[];
  let ref: Awaited<ReturnType<typeof reference>>;

  beforeAll(async () => {
    [nodes, ref] = await Promise.all([Promise.all([0, 1].map((r) => runNode(r, { steps: STEPS, out, timeoutMs: 20_000 }))), reference(STEPS)]);
  });

  it('the hosts reach each other only over the veth link, and their hostname resolves to loopback', () => {
    const hosts = execFileSync('ip', ['netns', 'exec', ns[1]!, 'getent', 'ahostsv4', execFileSync('hostname').toString().trim()]).toString();
    expect(hosts).toMatch(/^127\./);
    const routes = execFileSync('ip', ['-n', ns[1]!, 'route']).toString();
    expect(routes.trim().split('\n')).toEqual([expect.stringMatching(/^10\.231\.0\.0\/24 dev /)]);
  });

  it('a 2-node job (one launcher per node) trains to what one process computes on the union of both shards', async () => {
    for (const n of nodes) expect(n.code, n.stderr).toBe(0);
    const { diff } = maxDiff(await savedParameters(join(out, 'final')), ref.params);
    expect(diff).toBeLessThan(2e-5);
    expect(maxDiff(ref.params, ref.start).diff).toBeGreaterThan(1e-2);
  });

  it("each rank bound Gloo to the address that routes to MASTER_ADDR, not to its hostname's", () => {
    const transport = (r: number) => (JSON.parse(readFileSync(join(out, `rank${r}.json`), 'utf8')) as { transport: string }).transport;
    expect(transport(0)).toBe(`gloo on ${addr[0]} (the local address that routes to MASTER_ADDR=${addr[0]})`);
    expect(transport(1)).toBe(`gloo on ${addr[1]} (the local address that routes to MASTER_ADDR=${addr[0]})`);
  });

  it('GLOO_SOCKET_IFNAME overrides the choice; the wrong interface fails within the timeout, naming it', async () => {
    const right = join(tmp, 'ifname');
    const ok = await Promise.all([0, 1].map((r) => runNode(r, { steps: 1, out: right, timeoutMs: 20_000 }, { GLOO_SOCKET_IFNAME: veth[r]! })));
    for (const n of ok) expect(n.code, n.stderr).toBe(0);
    expect((JSON.parse(readFileSync(join(right, 'rank1.json'), 'utf8')) as { transport: string }).transport).toBe(
      `gloo on interface ${veth[1]} (GLOO_SOCKET_IFNAME)`,
    );

    const t0 = Date.now();
    const bad = await Promise.all([0, 1].map((r) => runNode(r, { steps: 1, out: join(tmp, 'lo'), timeoutMs: 3000 }, { GLOO_SOCKET_IFNAME: 'lo' })));
    expect(Date.now() - t0).toBeLessThan(30_000);
    for (const [r, n] of bad.entries()) {
      expect(n.code).not.toBe(0);
      expect(n.stderr).toContain(`dist: creating the gloo process group (rank ${r} of 2, gloo on interface lo (GLOO_SOCKET_IFNAME)) failed`);
    }
  });
});
