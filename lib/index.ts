/**
 * mentor-kd public API: one namespace per area, each an index file that lists its names.
 *
 *   import { model, train } from 'mentor-kd';
 *   const m = await model.T5Model.load(dir);
 *   await train.train({ model: m, tokenizer, train: examples, output_dir: 'out', num_train_epochs: 3 });
 *
 * CLI command registrars are not part of the API (lib/cli.ts wires them).
 */
export * as model from './model/index.js';
export * as kd from './kd/index.js';
export * as train from './train/index.js';
export * as parallel from './parallel/index.js';
export * as io from './io/index.js';
export * as runtime from './runtime/index.js';
export * as tasks from './tasks/index.js';
export * as teacher from './teacher/index.js';
export * as pipeline from './pipeline/index.js';
