/**
 * Decoder-only tokenizers and prompts: a byte-level BPE tokenizer.json (the Llama 3 / Qwen2 kind)
 * through @huggingface/tokenizers, built here from a small corpus, round-trips any text (non-ASCII
 * included) and loads from a model directory; chat templates from tokenizer_config.json (a Qwen2
 * ChatML template) through @huggingface/jinja, else plain Q/A, with the choice reported.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PromptFormat } from '../lib/model/chat-template.js';
import { Tokenizer, buildByteLevelBpeTokenizer } from '../lib/model/tokenizer.js';
import { rowsOf } from '../lib/model/tensor.js';

const tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-causal-tok-'));
afterAll(async () => rm(tmp, { recursive: true, force: true }));

const CORPUS = [
  'Q: There are 3 apples and 5 pears. How many fruits are there?\nA: 3 + 5 = 8. The answer is 8.',
  'Q: A coin is heads up. Ann flips it. Is it still heads up?\nA: It was flipped once, so no.',
  'the the the answer answer is is',
];

// Qwen2-0.5B-Instruct's chat template (ChatML, default system prompt).
const QWEN2_CHAT_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('byte-level BPE tokenizer', () => {
  const tok = buildByteLevelBpeTokenizer(CORPUS, { vocabSize: 300 });

  it('learns merges and round-trips any text, non-ASCII included', () => {
    // Up to vocabSize: this corpus has fewer pairs seen twice than 300 - 259 merges; a smaller limit is met exactly.
    expect(tok.vocabSize).toBeGreaterThan(270);
    expect(tok.vocabSize).toBeLessThanOrEqual(300);
    expect(buildByteLevelBpeTokenizer(CORPUS, { vocabSize: 270 }).vocabSize).toBe(270);
    // Frequent words become single tokens; unseen text still encodes byte by byte.
    expect(tok.encode(' answer', { addSpecialTokens: false })).toHaveLength(1);
    for (const text of ['The answer is 8.', 'héllo wörld — naïve café', '你好，世界', 'emoji 🤖🧠 and\ttabs\n\nnewlines', '  leading and trailing  ']) {
      const ids = tok.encode(text);
      expect(ids.every((id) => id >= 0 && id < tok.vocabSize)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
  });

  it('keeps special tokens whole and pads with <|endoftext|>, left for generation prompts', () => {
    const imStart = tok.tokenToId('<|im_start|>')!;
    expect(imStart).toBeGreaterThanOrEqual(256);
    expect(tok.encode('<|im_start|>user')[0]).toBe(imStart);
    expect(tok.padId).toBe(tok.tokenToId('<|endoftext|>'));
    expect(tok.eosId).toBe(tok.padId);
    const short = tok.encode('Q: 3');
    const long = tok.encode('Q: There are 3 apples');
    const left = tok.encodeBatch(['Q: 3', 'Q: There are 3 apples'], { paddingSide: 'left' });
    const [r0, r1] = rowsOf(left.inputIds);
    const [m0] = rowsOf(left.attentionMask);
    const padN = long.length - short.length;
    expect(r0).toEqual([...Array<number>(padN).fill(tok.padId), ...short]);
    expect(r1).toEqual(long);
    expect(m0).toEqual([...Array<number>(padN).fill(0), ...Array<number>(short.length).fill(1)]);
    const right = rowsOf(tok.encodeBatch(['Q: 3', 'Q: There are 3 apples']).inputIds)[0];
    expect(right).toEqual([...short, ...Array<number>(padN).fill(tok.padId)]);
  });

  it('loads from a model directory (a Llama-3-style config without a pad token pads with EOS)', async () => {
    const dir = join(tmp, 'bpe');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|im_end|>', pad_token: null, chat_template: QWEN2_CHAT_TEMPLATE }));
    const loaded = await Tokenizer.load(dir);
    expect(loaded.eosId).toBe(tok.tokenToId('<|im_end|>'));
    expect(loaded.padId).toBe(loaded.eosId);
    const text = 'Ünïcödé → 8 ✓';
    expect(loaded.encode(text)).toEqual(tok.encode(text));
    expect(loaded.decode(loaded.encode(text))).toBe(text);
  });
});

describe('prompt formats', () => {
  it('renders a Qwen2 ChatML chat template from tokenizer_config.json and reports it', async () => {
    const f = PromptFormat.fromTokenizerConfig({ chat_template: QWEN2_CHAT_TEMPLATE, eos_token: '<|im_end|>' }, 'qwen2/tokenizer_config.json');
    expect(f.kind).toBe('chat_template');
    expect(f.format('What is 2+3?')).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(f.format('Hi', { system: 'Be brief.' })).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(
      f.formatMessages(
        [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello.' },
        ],
        { addGenerationPrompt: false },
      ),
    ).toBe('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n');
    const record = f.describe();
    expect(record).toMatchObject({ kind: 'chat_template', name: 'default', source: 'qwen2/tokenizer_config.json' });
    expect(record.kind === 'chat_template' && record.sha256).toMatch(/^[0-9a-f]{64}$/);

    // The same through a directory, and HF's list-of-named-templates form.
    const dir = join(tmp, 'chat');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'default', template: QWEN2_CHAT_TEMPLATE }] }));
    expect((await PromptFormat.load(dir)).format('What is 2+3?')).toBe(f.format('What is 2+3?'));
  });

  it('uses plain Q/A without a chat template, and says so', async () => {
    const plain = await PromptFormat.load(join(tmp, 'no-such-model'));
    expect(plain.describe()).toEqual({ kind: 'plain', format: 'Q: {question}\\nA:' });
    expect(plain.format(' What is 2+3? ')).toBe('Q: What is 2+3?\nA:');
    expect(PromptFormat.fromTokenizerConfig({ eos_token: '</s>' }).kind).toBe('plain');
  });

  it('refuses broken templates, naming the file and field', () => {
    expect(() => PromptFormat.fromTokenizerConfig({ chat_template: '{% for m in messages %}' }, 'x/tokenizer_config.json')).toThrow(
      /x\/tokenizer_config.json: field "chat_template"/,
    );
    expect(() => PromptFormat.fromTokenizerConfig({ chat_template: 42 }, 'x/tokenizer_config.json')).toThrow(/field "chat_template" must be a string/);
    expect(() => PromptFormat.fromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'x' }] }, 'x/tokenizer_config.json')).toThrow(
      /none named "default"/,
    );
    expect(() => PromptFormat.fromTokenizerConfig({ chat_template: "{{ raise_exception('no system role') }}" }, 'x/tokenizer_config.json')).toThrow(
      /failed to render \(no system role\)/,
    );
  });
});
