import type { Command } from 'commander';
import { intArg } from '../cli-args.js';
import { launch } from './launch.js';

/** `mentor-kd launch`: a torchrun-compatible local launcher (torchrun's option names). */
export function registerParallelCommands(program: Command): void {
  program
    .command('launch')
    .description('start N workers with the torchrun environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK); stop all if one fails')
    .requiredOption('--nproc-per-node <n>', 'workers on this node', intArg('--nproc-per-node'))
    .option('--nnodes <m>', 'nodes in the job', intArg('--nnodes'), 1)
    .option('--node-rank <r>', "this node's index", intArg('--node-rank'), 0)
    .option('--master-addr <addr>', 'address of node 0 (default 127.0.0.1)')
    .option('--master-port <port>', 'rendezvous port (default: a free port on one node, 29500 across nodes)', intArg('--master-port'))
    .option('--grace-ms <ms>', 'between SIGTERM and SIGKILL when stopping workers', intArg('--grace-ms'), 5000)
    .argument('<command...>', 'the worker command, after --')
    .action(
      async (command: string[], o: { nprocPerNode: number; nnodes: number; nodeRank: number; masterAddr?: string; masterPort?: number; graceMs: number }) => {
        const [cmd, ...args] = command;
        const r = await launch({
          nprocPerNode: o.nprocPerNode,
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
      },
    );
}
