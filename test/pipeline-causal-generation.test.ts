/**
 * Decoder-only models in the pipeline's generation (lib/pipeline/generation.ts) and its model
 * families (lib/pipeline/model-family.ts): per-question seeds make a causal model's samples
 * independent of the batch size, of the rank count and of reruns; greedy outputs equal one prompt
 * generated alone; the family of a model and the one-vocabulary rule of KD are decided before any work.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoCausalConfig } from '../lib/config/defaults.js';
import { runConfigSchema, type RunConfig } from '../lib/config/schema.js';
import { CausalLM } from '../lib/model/causal-model.js';
import { PromptFormat } from '../lib/model/chat-template.js';
import { tensor } from '../lib/model/tensor.js';
import { buildByteLevelBpeTokenizer, Tokenizer } from '../lib/model/tokenizer.js';
import { generateOver, type GenerateOverOptions } from '../lib/pipeline/generation.js';
import { causalPromptIds } from '../lib/train/data.js';
import {
  checkKdVocabulary,
  checkKdVocabularyWith,
  describeInit,
  describeModels,
  initModel,
  modelRecord,
  promptFormatFor,
} from '../lib/pipeline/model-family.js';
import { generateCoinFlip } from '../lib/tasks/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-causal-gen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const records = generateCoinFlip({ count: 12, seed: 5, size: 2 });
const questions = records.map((r) => ({ id: r.id, question: r.question, answer: r.answer }));
const format = PromptFormat.plain();
let tok: Tokenizer;
let model: CausalLM;

beforeAll(async () => {
  tok = buildByteLevelBpeTokenizer(
    records.map((r) => format.format(r.question)),
    { vocabSize: 300 },
  );
  const config = {
    model_type: 'llama',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    // A wide initialisation: a random model with varied, not constant, next-token distributions.
    initializer_range: 0.5,
    tie_word_embeddings: true,
  };
  model = (await initModel({ config }, tok, 3)) as CausalLM;
});
afterAll(() => model?.dispose());

/** In-process "ranks" whose allgathers meet at shared rendezvous, one per call. */
function fakeGroups(world: number) {
  const rounds: { slots: unknown[]; arrived: number; release: () => void; all: Promise<void> }[] = [];
  const calls = new Array<number>(world).fill(0);
  const round = (k: number) => {
    if (!rounds[k]) {
      let release!: () => void;
      const all = new Promise<void>((r) => (release = r));
      rounds[k] = { slots: new Array(world), arrived: 0, release, all };
    }
    return rounds[k]!;
  };
  return Array.from({ length: world }, (_, rank) => ({
    rank,
    worldSize: world,
    async allgatherObject<T>(value: T): Promise<T[]> {
      const r = round(calls[rank]!++);
      r.slots[rank] = structuredClone(value);
      if (++r.arrived === world) r.release();
      await r.all;
      return r.slots as T[];
    },
  }));
}

const options = (name: string, o: Partial<GenerateOverOptions> = {}): GenerateOverOptions => ({
  task: 'coin_flip',
  batchSize: 4,
  maxNewTokens: 12,
  maxSourceLength: 64,
  seed: 11,
  outFile: join(dir, `${name}.jsonl`),
  label: 'augment',
  promptFormat: format,
  ...o,
});

describe('causal generation over questions', () => {
  it('the from-scratch model takes the tokenizer vocabulary and special ids', () => {
    expect(model).toBeInstanceOf(CausalLM);
    const info = model.info();
    expect(info.vocabSize).toBe(tok.vocabSize);
    expect(info.eosTokenIds).toEqual([tok.eosId]);
    expect(info.padTokenId).toBe(tok.padId);
  });

  it('sampled rationales are the same for any batch size, any rank count, and on a rerun', async () => {
    const sample = { samples: 3, temperature: 1 };
    const a = await generateOver(model, tok, questions, options('a', { ...sample, batchSize: 4 }));
    const b = await generateOver(model, tok, questions, options('b', { ...sample, batchSize: 5 }));
    const again = await generateOver(model, tok, questions, options('again', { ...sample, batchSize: 4 }));
    expect(a).toHaveLength(questions.length * 3);
    expect(b.map((r) => r.output)).toEqual(a.map((r) => r.output));
    expect(again.map((r) => r.output)).toEqual(a.map((r) => r.output));
    const ranks = await Promise.all(fakeGroups(2).map((group) => generateOver(model, tok, questions, options('ranks', { ...sample, group }))));
    for (const r of ranks) expect(r.map((x) => x.output)).toEqual(a.map((x) => x.output));
    // Three samples of one question differ somewhere (sampling, not copies).
    expect(new Set(a.filter((r) => r.id === questions[0]!.id).map((r) => r.output)).size).toBeGreaterThan(1);
    // Another run seed draws other samples.
    const other = await generateOver(model, tok, questions, options('other', { ...sample, seed: 12 }));
    expect(other.map((r) => r.output)).not.toEqual(a.map((r) => r.output));
  });

  it('greedy outputs equal each prompt generated alone (left padding changes nothing)', async () => {
    const rows = await generateOver(model, tok, questions, options('greedy', { batchSize: 6 }));
    for (const q of [0, 5, 11]) {
      const { ids } = causalPromptIds(tok, format, questions[q]!.question, 64);
      expect(tok.decode(ids)).toBe(format.format(questions[q]!.question));
      const out = await model.generate({ inputIds: tensor(Int32Array.from(ids), [1, ids.length]) }, { maxNewTokens: 12 });
      const fresh = Array.from(out.data.subarray(ids.length));
      const end = fresh.indexOf(tok.eosId);
      expect(rows[q]!.output).toBe(tok.decode(end < 0 ? fresh : fresh.slice(0, end)).trimStart());
    }
  });

  it('the demo tokenizer is a deterministic byte-level BPE of the data: the same file from the same text', () => {
    const again = buildByteLevelBpeTokenizer(
      records.map((r) => format.format(r.question)),
      { vocabSize: 300 },
    );
    expect(JSON.stringify(again.json)).toBe(JSON.stringify(tok.json));
    expect(tok.vocabSize).toBe(300);
    // Byte-level: any text round-trips, with no unknown token.
    const text = 'Q: Does Zoë flip the coin? 🙂\nA:';
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it("with a chat template in the run tokenizer's config, prompts go through it, and the record says so", async () => {
    const template =
      '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
    const chatTok = Tokenizer.fromJSON(tok.json, { ...tok.config, chat_template: template });
    const record = modelRecord(model, chatTok);
    expect(record).toMatchObject({ family: 'causal', modelType: 'llama', promptFormat: { kind: 'chat_template', name: 'default' } });
    const chat = promptFormatFor(model, chatTok)!;
    const rows = await generateOver(model, chatTok, questions.slice(0, 3), options('chat', { promptFormat: chat, maxSourceLength: 200 }));
    const q = questions[1]!.question;
    const { ids } = causalPromptIds(chatTok, chat, q, 200);
    expect(chatTok.decode(ids, { skipSpecialTokens: false })).toBe(`<|im_start|>user\n${q}<|im_end|>\n<|im_start|>assistant\n`);
    const out = await model.generate({ inputIds: tensor(Int32Array.from(ids), [1, ids.length]) }, { maxNewTokens: 12 });
    const fresh = Array.from(out.data.subarray(ids.length));
    const end = fresh.indexOf(tok.eosId);
    expect(rows[1]!.output).toBe(chatTok.decode(end < 0 ? fresh : fresh.slice(0, end)).trimStart());
    // Without a template: plain Q/A.
    expect(modelRecord(model, tok).promptFormat).toEqual({ kind: 'plain', format: 'Q: {question}\\nA:' });
  });

  it('refuses a causal model without its prompt format', async () => {
    await expect(generateOver(model, tok, questions.slice(0, 2), options('nofmt', { promptFormat: null }))).rejects.toThrow(/prompt format/);
  });
});

describe('model families and the one-vocabulary rule', () => {
  const config = (over: Record<string, unknown>): RunConfig => {
    const c = demoCausalConfig() as Record<string, unknown>;
    return runConfigSchema.parse({ ...c, ...over });
  };
  const modelDir = (name: string, json: Record<string, unknown>) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), JSON.stringify(json));
    return d;
  };

  it('a from-scratch config names its family by model_type (t5 when absent)', async () => {
    expect((await describeInit('mentor', { config: { model_type: 'qwen2' } })).family).toBe('causal');
    expect((await describeInit('mentor', { config: { d_model: 8 } })).family).toBe('t5');
    await expect(describeInit('student', { config: { model_type: 'gpt2' } })).rejects.toThrow(/student\.init\.config\.model_type: "gpt2" is not supported/);
  });

  it('the demo-causal preset is a Llama mentor and a Qwen2 student, one vocabulary', async () => {
    const c = config({});
    const models = await describeModels(c);
    expect([models.mentor.modelType, models.student.modelType]).toEqual(['llama', 'qwen2']);
    await expect(checkKdVocabulary(c, models, { name: 'built' })).resolves.toBeUndefined();
  });

  it('KD across families, or across vocabularies, is an Error naming both before any work', async () => {
    const c = config({});
    const causal = { role: 'mentor' as const, family: 'causal' as const, modelType: 'llama' };
    const t5 = { role: 'student' as const, family: 't5' as const, modelType: 't5' };
    await expect(checkKdVocabulary(c, { mentor: causal, student: t5 }, { name: 'built' })).rejects.toThrow(
      /mentor\.init is llama \(causal\), student\.init is t5 \(t5\)/,
    );
    const big = modelDir('big', { model_type: 'qwen2', vocab_size: 1000 });
    const small = modelDir('small', { model_type: 'llama', vocab_size: 300 });
    c.mentor = { ...c.mentor, init: { model_name_or_path: big } };
    c.student = { ...c.student, init: { model_name_or_path: small } };
    const models = await describeModels(c);
    await expect(checkKdVocabulary(c, models, { name: 'built' })).rejects.toThrow(
      /vocab sizes differ \(1000 vs 300\).*big \(vocab_size 1000, tokenizer built\).*small \(vocab_size 300/,
    );
    // Without a KD mode nothing is compared.
    await expect(checkKdVocabulary({ ...c, student: { ...c.student, modes: ['vanilla'] } }, models, { name: 'built' })).resolves.toBeUndefined();
    // A model directory beside a from-scratch model: not on a tokenizer built from the data, and of the run tokenizer's size.
    c.student = { ...c.student, init: { config: { model_type: 'llama' } } };
    const mixed = await describeModels(c);
    await expect(checkKdVocabulary(c, mixed, { name: 'built from the data' })).rejects.toThrow(/give tokenizer\.dir/);
    // A from-scratch causal model may pad its vocabulary to the pretrained mentor's (HF checkpoints pad theirs).
    c.student = { ...c.student, init: { config: { model_type: 'llama', vocab_size: 1000 } } };
    await expect(checkKdVocabularyWith(c, await describeModels(c), tok, join(dir, 'tok'))).resolves.toBeUndefined();
    const padded = (await initModel(
      {
        config: {
          model_type: 'llama',
          hidden_size: 16,
          intermediate_size: 32,
          num_hidden_layers: 1,
          num_attention_heads: 2,
          num_key_value_heads: 1,
          vocab_size: 1000,
        },
      },
      tok,
      1,
    )) as CausalLM;
    expect(padded.info().vocabSize).toBe(1000);
    padded.dispose();
    await expect(initModel({ config: { model_type: 'llama', vocab_size: 10 } }, tok, 1)).rejects.toThrow(/vocab_size: 10 is smaller than the tokenizer's/);
    c.student = { ...c.student, init: { config: { model_type: 'llama' } } };
    await expect(checkKdVocabularyWith(c, mixed, tok, join(dir, 'tok'))).rejects.toThrow(new RegExp(`\\(1000 vs ${tok.vocabSize}\\).*student from scratch`));
  });
});
