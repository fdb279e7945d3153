/** A pipeline configuration small enough to run several times in one test (seconds per student on 2 cores). */
import { defaultConfig } from '../../lib/config/defaults.js';
import { validateConfig } from '../../lib/config/load.js';
import type { RunConfig, RunConfigInput } from '../../lib/config/schema.js';

export function microConfig(output_dir: string, edit: (c: RunConfigInput) => void = () => {}): RunConfig {
  const c = defaultConfig();
  c.output_dir = output_dir;
  c.threads = 1;
  c.data = { synthetic: { train: 32, dev: 8, test: 16, size: 2 } };
  c.teacher.samples = 1;
  const small = { d_model: 32, d_kv: 8, d_ff: 64, num_layers: 1, num_decoder_layers: 1, num_heads: 4, feed_forward_proj: 'gated-gelu', dropout_rate: 0.1 };
  c.mentor.init = { config: small };
  c.student.init = { config: small };
  for (const t of [c.mentor.train, c.student.train])
    Object.assign(t, { num_train_epochs: 1, per_device_train_batch_size: 8, warmup_steps: 0, save_steps: 0, maxTargetLength: 64 });
  c.augment = { samples: 1, temperature: 0.7, maxNewTokens: 48, batchSize: 32 };
  c.student.mentorSamples = 1;
  c.evaluate = { maxNewTokens: 48, batchSize: 32 };
  edit(c);
  return validateConfig(c as never);
}
