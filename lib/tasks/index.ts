/** Tasks: registry, loaders, answer cleansing, agreement check, synthetic generators. */
export * from './registry.js';
export * from './records.js';
export * from './cleansing.js';
export * from './loaders.js';
export * from './check.js';
export * from './synthetic.js';
export { createRng, hashSeed, type Rng } from './random.js';
export { registerTaskCommands, parseFieldMapping, toMentorKdJson } from './cli.js';
export * from './release.js';
