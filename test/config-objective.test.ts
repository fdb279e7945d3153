// The KD objective in the run config: student.objective {divergence, beta, alpha}, validated by the one schema.
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../lib/config/defaults.js';
import { mergeConfig, validateConfig } from '../lib/config/load.js';
import { describeObjective } from '../lib/pipeline/stages/report.js';

const withObjective = (objective: unknown) => mergeConfig(defaultConfig(), { output_dir: '/tmp/mentor-kd-objective', student: { objective } });

describe('student.objective', () => {
  it('defaults to the paper’s forward KL and accepts every divergence', () => {
    expect(validateConfig(defaultConfig()).student.objective).toEqual({ divergence: 'forward-kl', beta: 0.5, alpha: 0.1 });
    for (const divergence of ['forward-kl', 'reverse-kl', 'jsd', 'skew-kl', 'skew-reverse-kl', 'tvd']) {
      expect(validateConfig(withObjective({ divergence })).student.objective.divergence).toBe(divergence);
    }
    expect(describeObjective(validateConfig(withObjective({ divergence: 'jsd', beta: 0.9 })).student.objective)).toBe('jsd(β=0.9)');
  });

  it('bad values are refused naming the field', () => {
    expect(() => validateConfig(withObjective({ divergence: 'kl-forward' }))).toThrow(/student\.objective\.divergence: must be one of forward-kl/);
    expect(() => validateConfig(withObjective({ divergence: 'jsd', beta: 1.5 }))).toThrow(/student\.objective\.beta: must be in \[0, 1\], got 1\.5/);
    expect(() => validateConfig(withObjective({ divergence: 'skew-kl', alpha: 1 }))).toThrow(/student\.objective\.alpha: must be in \[0, 1\), got 1/);
    expect(() => validateConfig(withObjective({ divergnce: 'jsd' }))).toThrow(/student\.objective\.divergnce: unknown setting \(did you mean divergence\?\)/);
  });
});
