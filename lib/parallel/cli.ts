import type { Command } from 'commander';
import { launch } from './launch.js';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got '${v}'`);
    return n;
  };
}

/** `mentor-kd launch`: a torchrun-compatible local launcher. */
export function registerDistCommands(program: Command): void {
  program
    .command('launch')
    .description('start N workers with the torchrun environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK); stop all if one fails')
    .requiredOption('--nproc <n>', 'workers on this node', int('nproc'))
    .option('--nnodes <m>', 'nodes in the job', int('nnodes'), 1)
    .option('--node-rank <r>', "this node's index", int('node-rank'), 0)
    .option('--master-addr <addr>', 'address of node 0 (default 127.0.0.1)')
    .option('--master-port <port>', 'rendezvous port (default: a free port on one node, 29500 across nodes)', int('master-port'))
    .option('--grace-ms <ms>', 'between SIGTERM and SIGKILL when stopping workers', int('grace-ms'), 5000)
    .argument('<command...>', 'the worker command, after --')
    .action(async (command: string[], o: { nproc: number; nnodes: number; nodeRank: number; masterAddr?: string; masterPort?: number; graceMs: number }) => {
      const [cmd, ...args] = command;
      const r = await launch({
        nproc: o.nproc,
        nnodes: o.nnodes,
        nodeRank: o.nodeRank,
        masterAddr: o.masterAddr,
        masterPort: o.masterPort,
        graceMs: o.graceMs,
        command: cmd!,
        args,
      });
      if (r.failed) throw new Error(`launch: ${r.message}`);
      if (r.exitCode !== 0) {
        console.error(`mentor-kd launch: ${r.message}`);
        process.exitCode = r.exitCode;
      }
    });
}
