/**
 * The embedded default run: the demo. Coin Flip generated locally, the built-in simulated teacher
 * on loopback (20% of its rationales wrong), a tokenizer built from the data, and small FlanT5-style
 * models trained from scratch — a mentor and a smaller student — so the whole pipeline runs with no
 * network in minutes on 2 CPU cores. Real runs replace data, teacher.url and the model inits.
 */
import type { RunConfig } from './config.js';

const t5 = (d: number, layers: number, heads: number) => ({
  d_model: d, d_kv: d / heads, d_ff: 2 * d, num_layers: layers, num_decoder_layers: layers, num_heads: heads,
  feed_forward_proj: 'gated-gelu', tie_word_embeddings: false, dropout_rate: 0.1,
  relative_attention_num_buckets: 32, relative_attention_max_distance: 128,
});

export function defaultConfig(): RunConfig {
  return {
    runDir: 'runs/demo',
    task: 'coin_flip',
    seed: 0,
    data: { synthetic: { train: 400, dev: 50, test: 200, size: 4 } },
    teacher: {
      model: 'simulated-teacher', api: 'chat', apiKeyEnv: 'OPENAI_API_KEY', samples: 2, concurrency: 16,
      embedded: { errorRate: 0.2, latencyMs: 0 },
    },
    tokenizer: { vocabSize: 400 },
    mentor: {
      init: { config: t5(128, 2, 4) },
      train: { epochs: 30, batchSize: 16, learningRate: 1e-3, schedule: 'linear', warmupSteps: 20, weightDecay: 0.01, maxSourceLength: 64, maxTargetLength: 128, gradClip: 1, saveEvery: 100, keepLast: 2 },
    },
    augment: { samples: 3, temperature: 0.7, maxNewTokens: 128, batchSize: 64 },
    student: {
      init: { config: t5(64, 2, 4) },
      train: { epochs: 20, batchSize: 16, learningRate: 1e-3, schedule: 'linear', warmupSteps: 20, weightDecay: 0.01, maxSourceLength: 64, maxTargetLength: 128, gradClip: 1, saveEvery: 100, keepLast: 2 },
      modes: ['vanilla', 'mentor-kd'],
      lambda: 0.3, tau: 2.0, softLabels: 'online', topK: 32, teacherFraction: 1, mentorSamples: 3,
    },
    evaluate: { maxNewTokens: 128, batchSize: 64 },
    threads: 0,
  };
}
