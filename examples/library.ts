/**
 * The library API end to end, in one file: build a tokenizer, make a small FlanT5-architecture
 * student, fine-tune it with the KD loss against a (here: untrained) mentor, and generate.
 * For real models, `model.T5Model.load('path/to/flan-t5-small')` and `model.Tokenizer.load(...)`.
 *
 *   npx tsx examples/library.ts [output-dir]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { model, train } from 'mentor-kd';

const outputDir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'mentor-kd-example-'));

// A toy task: the training pairs (source → target) the Mentor-KD pipeline would write as
// "{rationale} --> {answer}".
const pairs = Array.from({ length: 64 }, (_, i) => {
  const a = i % 8;
  const b = (i * 3) % 8;
  return { id: `q${i}`, source: `What is ${a} plus ${b}?`, target: `${a} plus ${b} makes ${a + b}. --> ${a + b}`, answer: String(a + b) };
});

const tokenizer = model.buildT5Tokenizer(
  pairs.flatMap((p) => [p.source, p.target]),
  { vocabSize: 120 },
);
const t5Config = (dModel: number) => ({
  model_type: 't5',
  vocab_size: tokenizer.vocabSize,
  pad_token_id: tokenizer.padId,
  eos_token_id: tokenizer.eosId,
  decoder_start_token_id: tokenizer.padId,
  d_model: dModel,
  d_kv: dModel / 4,
  d_ff: 2 * dModel,
  num_layers: 2,
  num_heads: 4,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
});
const mentor = await model.T5Model.fromConfig(t5Config(64), { seed: 1 });
const student = await model.T5Model.fromConfig(t5Config(32), { seed: 2 });

// HF TrainingArguments names; λ and τ of the KD loss (1-λ)·CE + λ·KL(mentor ‖ student).
const result = await train.train({
  model: student,
  tokenizer,
  train: pairs,
  mentor,
  kd: { lambda: 0.3, tau: 2 },
  output_dir: outputDir,
  max_steps: 20,
  per_device_train_batch_size: 16,
  learning_rate: 3e-3,
  lr_scheduler_type: 'linear',
  warmup_steps: 2,
  progress: false,
});
console.log(`trained ${result.globalStep} steps: loss ${result.steps[0]!.loss.toFixed(3)} -> ${result.steps.at(-1)!.loss.toFixed(3)}`);
console.log(`checkpoint: ${result.lastCheckpoint}`);

const batch = tokenizer.encodeBatch(['What is 3 plus 4?']);
const ids = await student.generate(batch, { maxNewTokens: 24 });
console.log(`greedy: ${tokenizer.decode(Array.from(ids.data.subarray(0, ids.shape[1])))}`);
const sampled = await student.generate(batch, { doSample: true, temperature: 0.7, numReturnSequences: 2, seed: 1, maxNewTokens: 24 });
console.log(`sampled: ${sampled.shape[0]} sequences of up to ${sampled.shape[1]} tokens`);

await student.save(join(outputDir, 'student')); // config.json, generation_config.json, model.safetensors
await tokenizer.save(join(outputDir, 'student'));
student.dispose();
mentor.dispose();
