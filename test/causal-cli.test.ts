/**
 * `mentor-kd model info` and `model generate` on decoder-only directories: the family comes from
 * config.json's model_type, info reports the prompt format the model would use, and generate runs a
 * from-config Qwen2 model with a byte-level BPE tokenizer and a ChatML template end to end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import { registerModelCommands } from '../lib/model/cli.js';
import { buildByteLevelBpeTokenizer } from '../lib/model/tokenizer.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, fixtureDir, T5_CASES } from './helpers/fixtures.js';

const tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-causal-cli-'));
afterAll(async () => rm(tmp, { recursive: true, force: true }));

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('model info', () => {
  it('reads a causal directory as a CausalLM and reports its prompt format', async () => {
    const { stdout } = await runCli(registerModelCommands, ['model', 'info', join(FIXTURES, 'causal-lm-hf-reference', 'llama-tiny-gqa-seed1')]);
    const info = JSON.parse(stdout.join('\n'));
    expect(info).toMatchObject({ family: 'causal', modelType: 'llama', vocabSize: 96, numKeyValueHeads: 2, promptFormat: { kind: 'plain' } });
  });

  it('still reads a T5 directory as a T5Model', async () => {
    const { stdout } = await runCli(registerModelCommands, ['model', 'info', fixtureDir(T5_CASES[0])]);
    expect(JSON.parse(stdout.join('\n'))).toMatchObject({ family: 't5' });
  });
});

describe('model generate on a causal directory', () => {
  it('formats with the chat template, left-pads, samples reproducibly and decodes the new tokens', async () => {
    const tok = buildByteLevelBpeTokenizer(['Q: What is 2+3?\nA: 5.', 'Q: Is the coin heads up?\nA: yes.'], { vocabSize: 280 });
    const dir = join(tmp, 'qwen2-tiny');
    const config = {
      model_type: 'qwen2',
      vocab_size: tok.vocabSize,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
      eos_token_id: tok.eosId,
      pad_token_id: tok.padId,
    };
    const m = await CausalLM.fromConfig(config, { seed: 1 });
    await m.save(dir);
    m.dispose();
    await tok.save(dir);
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...tok.config, chat_template: CHATML }));

    const info = JSON.parse((await runCli(registerModelCommands, ['model', 'info', dir])).stdout.join('\n'));
    expect(info).toMatchObject({ family: 'causal', modelType: 'qwen2', promptFormat: { kind: 'chat_template', name: 'default' } });

    const args = ['model', 'generate', dir, '--chat', '-t', 'What is 2+3?', 'Is the coin heads up? Ünïcödé', '--max-new-tokens', '6'];
    const sampled = await runCli(registerModelCommands, [...args, '--sample', '--temperature', '1', '--seed', '4']);
    expect(sampled.stdout).toHaveLength(2);
    expect(sampled.stdout[0]).toMatch(/^\[0\] /);
    expect((await runCli(registerModelCommands, [...args, '--sample', '--temperature', '1', '--seed', '4'])).stdout).toEqual(sampled.stdout);
    const greedy = await runCli(registerModelCommands, args);
    expect(greedy.stdout).toHaveLength(2);
  });
});
