import type { Command } from 'commander';
import { join } from 'node:path';
import { native, packageRoot } from '../native/index.js';
import { checkAgainstReference, findReferenceCases } from './check.js';
import { loadModel } from './auto-model.js';
import { CausalLM } from './causal-model.js';
import { PromptFormat } from './chat-template.js';
import { Tokenizer } from './tokenizer.js';
import { rowsOf } from './tensor.js';
import { mergeLora } from './lora.js';

/** `mentor-kd model ...`: check, info, generate, merge-lora. */
export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('native models (FlanT5, Llama / Qwen2): parity check, info, generation');

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
    .argument('<dir>', 'HF model directory (T5, Llama or Qwen2)')
    .action(async (dir: string) => {
      // T5 or causal (Llama / Qwen2) by config.json's model_type, as HF's Auto classes.
      const m = await loadModel(dir);
      try {
        const family = m instanceof CausalLM ? 'causal' : 't5';
        const extra = m instanceof CausalLM ? { promptFormat: (await PromptFormat.load(dir)).describe() } : {};
        console.log(JSON.stringify({ family, ...m.info(), ...extra }, null, 2));
      } finally {
        m.dispose();
      }
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
    .option('--chat', "decoder-only models: format each text as a question with the model's chat template (else plain Q: … A:)", false)
    .action(
      async (
        dir: string,
        o: { text: string[]; maxNewTokens: number; sample: boolean; temperature: number; seed?: number; dtype: 'float32' | 'bfloat16'; chat: boolean },
      ) => {
        const tok = await Tokenizer.load(dir);
        const m = await loadModel(dir, { dtype: o.dtype });
        const options = { maxNewTokens: o.maxNewTokens, doSample: o.sample, temperature: o.temperature, seed: o.seed };
        try {
          if (m instanceof CausalLM) {
            const format = o.chat ? await PromptFormat.load(dir) : undefined;
            const prompts = format ? o.text.map((t) => format.format(t)) : o.text;
            // Decoder-only prompts are left-padded; the answer is what follows the prompt.
            const batch = tok.encodeBatch(prompts, { paddingSide: 'left' });
            const out = await m.generate(batch, options);
            const P = batch.inputIds.shape[1]!;
            for (const [i, row] of rowsOf(out).entries()) console.log(`[${i}] ${tok.decode(row.slice(P))}`);
          } else {
            const out = await m.generate(tok.encodeBatch(o.text), options);
            for (const [i, row] of rowsOf(out).entries()) console.log(`[${i}] ${tok.decode(row)}`);
          }
        } finally {
          m.dispose();
        }
      },
    );
  model
    .command('merge-lora')
    .description('merge a PEFT LoRA adapter directory into its base: a plain HF model directory (W + B·A·lora_alpha/r)')
    .requiredOption('--base <dir>', 'the base HF T5 model directory')
    .requiredOption('--adapter <dir>', 'a PEFT adapter directory (adapter_config.json + adapter_model.safetensors), e.g. a LoRA checkpoint')
    .requiredOption('--output <dir>', 'where the merged model directory goes')
    .option('--dtype <dtype>', 'float32 | bfloat16 (B·A·lora_alpha/r is added in float32)', 'float32')
    .action(async (o: { base: string; adapter: string; output: string; dtype: string }) => {
      if (o.dtype !== 'float32' && o.dtype !== 'bfloat16') throw new Error(`merge-lora: --dtype must be float32 or bfloat16, got ${JSON.stringify(o.dtype)}`);
      const l = await mergeLora({ base: o.base, adapter: o.adapter, output: o.output, dtype: o.dtype });
      console.log(`merge-lora: ${o.adapter} (r ${l.r}, lora_alpha ${l.lora_alpha}, ${l.target_modules.join(', ')}) merged into ${o.base} -> ${o.output}`);
    });
}
