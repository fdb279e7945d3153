/**
 * Decoder-only models through the trainer and the fused KD op: one step's loss and every gradient
 * equal HF's on the causal fixtures (λ = 0, no mentor); KD with a causal mentor equals the
 * straightforward composition (mentor logits → forward KL on the completion tokens); exact resume;
 * causal batches from (prompt, completion) pairs; bad input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PromptFormat } from '../lib/model/chat-template.js';
import { CausalLM } from '../lib/model/causal-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { tensor, type Tensor } from '../lib/model/tensor.js';
import { buildByteLevelBpeTokenizer } from '../lib/model/tokenizer.js';
import { collateCausal, type CollatedBatch } from '../lib/train/batches.js';
import { causalCompletionIds, causalPromptIds, tokenizeCausalDataset, type TokenizedExample } from '../lib/train/data.js';
import { TrainEngine } from '../lib/train/engine.js';
import { train } from '../lib/train/trainer.js';
import { FIXTURES } from './helpers/fixtures.js';
import { reversalTask, tinyModel } from './helpers/train-fixtures.js';

const REFERENCE = join(FIXTURES, 'causal-lm-hf-reference');
const LLAMA = join(REFERENCE, 'llama-tiny-gqa-seed1');
const QWEN2 = join(REFERENCE, 'qwen2-style-tiny-bias-tied-seed3');
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-causal-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const int32 = (t: Tensor): Tensor<Int32Array> => tensor(Int32Array.from(t.data as ArrayLike<number | bigint>, Number), [...t.shape]);

/** The fixture's training batch (right-padded BOS + prompt + completion, labels on the completion). */
async function fixtureBatch(dir: string): Promise<{ batch: CollatedBatch; loss: number; tokens: number; grads: Record<string, Tensor> }> {
  const ref = (await readSafetensors(join(dir, 'reference.safetensors'))).tensors as Record<string, Tensor>;
  const json = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8')) as { loss: number; num_loss_tokens: number };
  const grads: Record<string, Tensor> = {};
  for (const k of Object.keys(ref)) if (k.startsWith('grad.')) grads[k.slice(5)] = ref[k]!;
  const batch = { inputIds: int32(ref.input_ids!), attentionMask: int32(ref.attention_mask!), labels: int32(ref.labels!), exampleIds: [] };
  return { batch, loss: json.loss, tokens: json.num_loss_tokens, grads };
}

function snapshot(model: CausalLM): Map<string, Float32Array> {
  return new Map(model.parameterNames().map((n) => [n, model.getParameter(n).data.slice()]));
}

describe.each([
  ['llama', LLAMA],
  ['qwen2', QWEN2],
])('one trainer step equals HF (%s fixture)', (_name, dir) => {
  it("loss, token count and every parameter's gradient within the fixture tolerances", async () => {
    const { batch, loss, tokens, grads } = await fixtureBatch(dir);
    const model = await CausalLM.load(dir);
    const before = snapshot(model);
    // AdamW with β1 = β2 = 0, no decay, lr = ε = E makes step 1's update g·E/(|g| + E) exactly, so
    // g = Δ·E/(E − |Δ|) recovers the step's gradient from the parameters.
    const E = 1e4;
    const engine = await TrainEngine.create(model, {
      learning_rate: E,
      adam_epsilon: E,
      adam_beta1: 0,
      adam_beta2: 0,
      weight_decay: 0,
      max_grad_norm: 0,
      lambda: 0,
    });
    expect(engine.info().family).toBe('causal');
    const r = await engine.step([batch]);
    expect(r.status).toBe('ok');
    expect(r.tokens).toBe(tokens);
    expect(Math.abs(r.loss - loss)).toBeLessThan(1e-5);
    expect(r.kl).toBe(0);
    expect(new Set(model.parameterNames())).toEqual(new Set(Object.keys(grads)));
    let sq = 0;
    for (const n of model.parameterNames()) {
      const p0 = before.get(n)!,
        p1 = model.getParameter(n).data,
        g = grads[n]!.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < p0.length; i++) {
        const d = p0[i]! - p1[i]!;
        worst = Math.max(worst, Math.abs((d * E) / (E - Math.abs(d)) - g[i]!));
        sq += g[i]! * g[i]!;
      }
      expect(worst, n).toBeLessThan(1e-5);
    }
    expect(r.gradNorm / Math.sqrt(sq)).toBeCloseTo(1, 5);
    engine.dispose();
    model.dispose();
  });
});

/** log_softmax of one row. */
function logSoftmax(row: Float32Array, tau: number): Float64Array {
  const x = Float64Array.from(row, (v) => v / tau);
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}

describe('KD with a causal mentor', () => {
  it('equals mentor logits → forward KL on the completion tokens, plus CE, composed by hand', async () => {
    const { batch } = await fixtureBatch(LLAMA);
    const student = await CausalLM.load(LLAMA);
    const mentor = await CausalLM.load(QWEN2); // another architecture, the same 96-token vocabulary
    const lambda = 0.4,
      tau = 2;
    const inputs = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
    const s = (await student.forward(inputs, { returnLogits: true })).logits!;
    const m = (await mentor.forward(inputs, { returnLogits: true })).logits!;
    const [B, T, V] = s.shape as [number, number, number];
    let ce = 0,
      kl = 0,
      n = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        const y = batch.labels.data[b * T + t + 1]!;
        if (y === -100) continue; // HF's shift: position t predicts label t + 1
        const off = (b * T + t) * V;
        const ls1 = logSoftmax(s.data.subarray(off, off + V), 1);
        const lsT = logSoftmax(s.data.subarray(off, off + V), tau);
        const lmT = logSoftmax(m.data.subarray(off, off + V), tau);
        ce -= ls1[y]!;
        for (let v = 0; v < V; v++) kl += Math.exp(lmT[v]!) * (lmT[v]! - lsT[v]!);
        n++;
      }
    }
    ce /= n;
    kl /= n;
    const engine = await TrainEngine.create(student, { mentor, lambda, tau, divergence: 'forward-kl', max_grad_norm: 0 });
    const e = await engine.evaluateLoss([batch]);
    expect(e.tokens).toBe(n);
    expect(Math.abs(e.ce - ce)).toBeLessThan(1e-5);
    expect(Math.abs(e.kl - kl)).toBeLessThan(1e-5);
    expect(Math.abs(e.loss - ((1 - lambda) * ce + lambda * kl))).toBeLessThan(1e-5);
    const r = await engine.step([batch]);
    expect(Math.abs(r.loss - e.loss)).toBeLessThan(1e-6); // no dropout in this family
    expect(r.kl).toBeGreaterThan(0);
    engine.dispose();
    for (const x of [student, mentor]) x.dispose();
  });
});

describe('padding side', () => {
  it('the same rows left-padded give the same loss (positions from the mask)', async () => {
    const { batch } = await fixtureBatch(LLAMA);
    const [B, T] = batch.inputIds.shape as [number, number];
    const left = (t: Tensor<Int32Array>, fill: number): Tensor<Int32Array> => {
      const out = new Int32Array(B * T).fill(fill);
      for (let b = 0; b < B; b++) {
        const n = batch.attentionMask.data.subarray(b * T, (b + 1) * T).reduce((s, x) => s + x, 0);
        out.set(t.data.subarray(b * T, b * T + n), b * T + T - n);
      }
      return tensor(out, [B, T]);
    };
    const model = await CausalLM.load(LLAMA);
    const engine = await TrainEngine.create(model, {});
    const right = await engine.evaluateLoss([batch]);
    const leftPadded = { ...batch, inputIds: left(batch.inputIds, 0), attentionMask: left(batch.attentionMask, 0), labels: left(batch.labels, -100) };
    const l = await engine.evaluateLoss([leftPadded]);
    expect(l.tokens).toBe(right.tokens);
    expect(Math.abs(l.loss - right.loss)).toBeLessThan(1e-5);
    engine.dispose();
    model.dispose();
  });
});

describe('causal batches', () => {
  const ex = (index: number, sourceIds: number[], targetIds: number[]): TokenizedExample => ({
    index,
    sourceIds,
    targetIds,
    sourceTruncated: false,
    targetTruncated: false,
    example: { source: '', target: '' },
  });

  it('collateCausal: prompt + completion right-padded, labels on the completion only', () => {
    const b = collateCausal([ex(4, [2, 10, 11], [20, 1]), ex(9, [2, 12], [21, 22, 23, 1])], 0);
    expect(b.inputIds.shape).toEqual([2, 6]);
    expect(Array.from(b.inputIds.data)).toEqual([2, 10, 11, 20, 1, 0, 2, 12, 21, 22, 23, 1]);
    expect(Array.from(b.attentionMask.data)).toEqual([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(b.labels.data)).toEqual([-100, -100, -100, 20, 1, -100, -100, -100, 21, 22, 23, 1]);
    expect(b.exampleIds).toEqual([4, 9]);
  });

  it('tokenizeCausalDataset: the plain Q/A prompt, completion ending in EOS, truncation counted; trains', async () => {
    const pairs = Array.from({ length: 6 }, (_, i) => ({ source: `what is ${i} plus ${i}?`, target: `${2 * i}` }));
    const tokenizer = buildByteLevelBpeTokenizer(
      pairs.flatMap((p) => [p.source, p.target]),
      { vocabSize: 300 },
    );
    const format = PromptFormat.plain();
    const data = tokenizeCausalDataset(pairs, tokenizer, { maxSourceLength: 64, maxTargetLength: 8, promptFormat: format });
    expect(data.promptFormat).toEqual({ kind: 'plain', format: 'Q: {question}\\nA:' });
    const first = data.examples[0]!;
    expect(tokenizer.decode(first.sourceIds)).toContain('Q: what is 0 plus 0?');
    expect(first.targetIds[first.targetIds.length - 1]).toBe(tokenizer.eosId);
    expect(tokenizer.decode(first.targetIds).trim()).toBe('0');
    const cut = tokenizeCausalDataset(pairs, tokenizer, { maxSourceLength: 3, maxTargetLength: 1, promptFormat: format });
    expect(cut.truncation.sourceTruncated).toBe(6);
    expect(cut.examples.every((e) => e.sourceIds.length === 3 && e.targetIds.length === 1 && e.targetIds[0] === tokenizer.eosId)).toBe(true);

    const config = JSON.parse(await readFile(join(LLAMA, 'config.json'), 'utf8')) as Record<string, unknown>;
    const model = await CausalLM.fromConfig({ ...config, vocab_size: tokenizer.vocabSize, pad_token_id: tokenizer.padId }, { seed: 1 });
    const engine = await TrainEngine.create(model, { learning_rate: 1e-2, seed: 1 });
    const batch = collateCausal(data.examples, tokenizer.padId);
    const r0 = await engine.step([batch]);
    expect(r0.tokens).toBe(data.examples.reduce((s, e) => s + e.targetIds.length, 0));
    let last = r0.loss;
    for (let i = 0; i < 5; i++) last = (await engine.step([batch])).loss;
    expect(last).toBeLessThan(r0.loss);
    engine.dispose();
    model.dispose();
  });
});

describe('train() with decoder-only models', () => {
  it('trains a causal student from a causal mentor, evaluates on dev greedily, records the prompt format, and refuses what it lacks', async () => {
    const data = reversalTask(24, 5, 2, 4);
    const tokenizer = buildByteLevelBpeTokenizer(
      data.flatMap((e) => [e.source, e.target, `Q: ${e.source}\nA: ${e.target}`]),
      { vocabSize: 320 },
    );
    const config = { ...(JSON.parse(await readFile(join(LLAMA, 'config.json'), 'utf8')) as Record<string, unknown>), vocab_size: tokenizer.vocabSize };
    const ids = { pad_token_id: tokenizer.padId, bos_token_id: tokenizer.eosId, eos_token_id: tokenizer.eosId };
    const student = await CausalLM.fromConfig({ ...config, ...ids }, { seed: 1 });
    const mentor = await CausalLM.fromConfig({ ...config, ...ids }, { seed: 2 });
    const settings = { max_steps: 6, per_device_train_batch_size: 4, learning_rate: 3e-3, save_steps: 3, seed: 1, maxSourceLength: 32, maxTargetLength: 16 };
    const out = join(tmp, 'train-causal');
    const result = await train({
      ...settings,
      model: student,
      mentor,
      tokenizer,
      train: data.slice(0, 20),
      dev: data.slice(20),
      eval: { maxNewTokens: 6, batchSize: 4 },
      output_dir: out,
      kd: { lambda: 0.5 },
      progress: false,
      logger: () => undefined,
    });
    expect(result.globalStep).toBe(6);
    expect(result.promptFormat).toEqual({ kind: 'plain', format: 'Q: {question}\\nA:' });
    expect(result.evaluations.map((e) => e.step)).toEqual([3, 6]);
    expect(result.evaluations.every((e) => e.total === 4)).toBe(true);
    expect(result.steps.every((s) => Number.isFinite(s.loss) && s.kl > 0)).toBe(true);
    await expect(
      train({ ...settings, model: student, tokenizer, train: data, output_dir: join(tmp, 'x'), onPolicy: { fraction: 0.5 }, mentor }),
    ).rejects.toThrow(/decoder-only \(CausalLM\) student does not support onPolicy/);
    for (const m of [student, mentor]) m.dispose();
  });
});

describe('chat-template prompts', () => {
  it('the template text carries its own special tokens (none added); the completion has no leading space and ends in EOS', () => {
    const tokenizer = buildByteLevelBpeTokenizer(['what is two plus two', 'four'], { vocabSize: 300 });
    const format = PromptFormat.fromTokenizerConfig({
      chat_template:
        '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
    });
    const p = causalPromptIds(tokenizer, format, 'what is two plus two', 64);
    expect(p.truncated).toBe(false);
    expect(p.ids).toEqual(tokenizer.encode('<|im_start|>user\nwhat is two plus two<|im_end|>\n<|im_start|>assistant\n', { addSpecialTokens: false }));
    expect(p.ids[0]).toBe(tokenizer.tokenToId('<|im_start|>'));
    const c = causalCompletionIds(tokenizer, format, 'four', 16);
    expect(c.ids).toEqual([...tokenizer.encode('four', { addSpecialTokens: false }), tokenizer.eosId]);
    // A long prompt loses its start: the generation prompt at the end stays.
    const cut = causalPromptIds(tokenizer, format, 'what is two plus two', 5);
    expect(cut.truncated).toBe(true);
    expect(cut.ids).toEqual(p.ids.slice(p.ids.length - 5));
  });
});

describe('exact resume', () => {
  it('k steps, checkpoint, a fresh process state, the rest == uninterrupted, bitwise (with a causal mentor)', async () => {
    const { batch } = await fixtureBatch(LLAMA);
    const halves = [
      { ...batch, inputIds: tensor(batch.inputIds.data.slice(), batch.inputIds.shape) },
      { ...batch }, // the same rows again: accumulation over two micro-batches
    ];
    const options = { learning_rate: 1e-2, lr_scheduler_type: 'linear' as const, max_steps: 6, seed: 3, lambda: 0.5 };
    const run = async (steps: number, from?: string): Promise<{ model: CausalLM; engine: TrainEngine; losses: number[] }> => {
      const model = await CausalLM.load(LLAMA);
      const mentor = await CausalLM.load(QWEN2);
      const engine = await TrainEngine.create(model, { ...options, mentor });
      if (from) await engine.loadCheckpoint(from);
      const losses: number[] = [];
      while (engine.globalStep < steps) losses.push((await engine.step(halves)).loss);
      return { model, engine, losses };
    };
    const full = await run(6);
    const first = await run(3);
    const ck = join(tmp, 'checkpoint-3');
    await first.engine.saveCheckpoint(ck);
    const rest = await run(6, ck);
    expect([...first.losses, ...rest.losses]).toEqual(full.losses);
    for (const n of full.model.parameterNames()) {
      expect(Buffer.from(rest.model.getParameter(n).data.buffer).equals(Buffer.from(full.model.getParameter(n).data.buffer)), n).toBe(true);
    }
    // A checkpoint of another architecture is refused, naming the field.
    const other = await CausalLM.load(QWEN2);
    const otherEngine = await TrainEngine.create(other, {});
    await expect(otherEngine.loadCheckpoint(ck)).rejects.toThrow(/model_type is llama in the checkpoint but qwen2/);
    for (const r of [full, first, rest]) {
      r.engine.dispose();
      r.model.dispose();
    }
    otherEngine.dispose();
    other.dispose();
  });
});

describe('bad input', () => {
  it('a mentor with another vocabulary: an error naming both sizes', async () => {
    const config = JSON.parse(await readFile(join(QWEN2, 'config.json'), 'utf8')) as Record<string, unknown>;
    const student = await CausalLM.load(LLAMA);
    const mentor = await CausalLM.fromConfig({ ...config, vocab_size: 100 }, { seed: 1 });
    await expect(TrainEngine.create(student, { mentor })).rejects.toThrow(/mentor has vocab_size 100 but the student has 96/);
    for (const x of [student, mentor]) x.dispose();
  });

  it('a T5 student with a causal mentor, and the reverse: an error naming both families', async () => {
    const t5 = await tinyModel({ vocabSize: 96, dropout: 0, seed: 1 });
    const causal = await CausalLM.load(LLAMA);
    await expect(TrainEngine.create(t5, { mentor: causal })).rejects.toThrow(/mentor is a causal model but the student is a T5/);
    await expect(TrainEngine.create(causal, { mentor: t5 })).rejects.toThrow(/mentor is a t5 model but the student is a causal/);
    t5.dispose();
    causal.dispose();
  });

  it('activation checkpointing and ids beyond the vocabulary are refused', async () => {
    const model = await CausalLM.load(LLAMA);
    await expect(TrainEngine.create(model, { activationCheckpointing: 'blocks' })).rejects.toThrow(
      /activation checkpointing is not implemented for causal students/,
    );
    const engine = await TrainEngine.create(model, {});
    const { batch } = await fixtureBatch(LLAMA);
    const bad = {
      ...batch,
      inputIds: tensor(
        batch.inputIds.data.map((x, i) => (i === 1 ? 96 : x)),
        batch.inputIds.shape,
      ),
    };
    await expect(engine.step([bad])).rejects.toThrow(/microBatches\[0\]: inputIds contains id 96 >= vocab_size 96/);
    engine.dispose();
    model.dispose();
  });
});
