/** A pipeline configuration small enough for tests (about a minute on 2 cores). */
import { defaultConfig } from '../../lib/config/defaults.js';
import type { RunConfigInput } from '../../lib/config/schema.js';

export function tinyConfig(output_dir: string) {
  const c = defaultConfig();
  c.output_dir = output_dir;
  c.threads = 1; // same thread count in every process: bitwise-repeatable training
  c.data = { synthetic: { train: 200, dev: 40, test: 80, size: 2 } };
  c.teacher.samples = 2;
  c.teacher.embedded.errorRate = 0.25;
  const small = (d: number) => ({
    d_model: d,
    d_kv: d / 4,
    d_ff: 2 * d,
    num_layers: 1,
    num_decoder_layers: 1,
    num_heads: 4,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: false,
    dropout_rate: 0.1,
  });
  c.mentor.init = { config: small(96) };
  c.student.init = { config: small(64) };
  for (const t of [c.mentor.train, c.student.train]) {
    t.num_train_epochs = 20;
    t.per_device_train_batch_size = 16;
    t.learning_rate = 2e-3;
    t.warmup_steps = 5;
    t.save_steps = 20;
    t.maxTargetLength = 96;
  }
  c.augment = { samples: 2, temperature: 0.7, maxNewTokens: 96, batchSize: 32 };
  c.student.mentorSamples = 2;
  c.evaluate = { maxNewTokens: 96, batchSize: 32 };
  return c satisfies RunConfigInput;
}

/** The stages of a run with the default students (vanilla, and mentor-kd on 2 mentor samples each). */
export const PIPELINE_STAGES = [
  'data',
  'collect',
  'filter',
  'tokenizer',
  'train-mentor',
  'augment',
  'student-vanilla',
  'student-mentor-kd-m2',
  'evaluate-train-mentor',
  'evaluate-student-vanilla',
  'evaluate-student-mentor-kd-m2',
] as const;
