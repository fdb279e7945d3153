import type { Command } from 'commander';
import { join } from 'node:path';
import { native, packageRoot } from '../native/index.js';
import { checkAgainstReference, findReferenceCases } from './check.js';
import { T5Model } from './t5-model.js';
import { Tokenizer } from './tokenizer.js';
import { rowsOf } from './tensor.js';

/** `mentor-kd model ...`: check, info, generate. */
export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('the native FlanT5: parity check, info, generation');

  model
    .command('check')
    .description('load HF reference fixtures, run forward/backward and greedy generation, compare with HF transformers')
    .argument('[dir]', 'a fixture folder, or a folder of them', join(packageRoot(), 'test', 'fixtures', 't5-hf-reference'))
    .action(async (dir: string) => {
      const info = native().runtime.info();
      console.log(`libtorch ${info.torchVersion}, ${info.threads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'}`);
      const cases = findReferenceCases(dir);
      if (cases.length === 0) throw new Error(`${dir}: no folder with a reference.safetensors`);
      let failures = 0;
      for (const c of cases) {
        const r = await checkAgainstReference(c);
        if (!r.ok) failures++;
        console.log(
          `${r.ok ? 'PASS' : 'FAIL'}  ${r.name.padEnd(34)} loss ${r.loss.toFixed(6)} (HF ${r.refLoss.toFixed(6)})  ` +
            `max|Δlogit| ${r.maxLogitDiff.toExponential(1)}  max|Δgrad| ${r.maxGradDiff.toExponential(1)}  ` +
            `greedy ${r.generationMatches ? 'identical' : 'DIFFERENT'}  ${r.ms.toFixed(0)} ms`,
        );
      }
      console.log(`model check: ${cases.length - failures}/${cases.length} reference cases match HF transformers`);
      if (failures) process.exitCode = 1;
    });

  model
    .command('info')
    .description("print a model directory's configuration and size")
    .argument('<dir>', 'HF model directory')
    .action(async (dir: string) => {
      const m = await T5Model.load(dir);
      console.log(JSON.stringify(m.info(), null, 2));
      m.dispose();
    });

  model
    .command('generate')
    .description('generate from a model directory (with its tokenizer.json) for each --text')
    .argument('<dir>', 'HF model directory with tokenizer.json')
    .requiredOption('-t, --text <text...>', 'input text(s)')
    .option('--max-new-tokens <n>', 'tokens to generate', (v) => parseInt(v, 10), 64)
    .option('--sample', 'sample instead of greedy decoding', false)
    .option('--temperature <t>', 'sampling temperature', parseFloat, 0.7)
    .option('--seed <n>', 'sampling seed', (v) => parseInt(v, 10))
    .option('--dtype <dtype>', 'float32 | bfloat16', 'float32')
    .action(
      async (dir: string, o: { text: string[]; maxNewTokens: number; sample: boolean; temperature: number; seed?: number; dtype: 'float32' | 'bfloat16' }) => {
        const tok = await Tokenizer.load(dir);
        const m = await T5Model.load(dir, { dtype: o.dtype });
        const batch = tok.encodeBatch(o.text);
        const out = await m.generate(batch, { maxNewTokens: o.maxNewTokens, doSample: o.sample, temperature: o.temperature, seed: o.seed });
        for (const [i, row] of rowsOf(out).entries()) console.log(`[${i}] ${tok.decode(row)}`);
        m.dispose();
      },
    );
}
