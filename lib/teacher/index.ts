/** Teacher: Zero-shot-CoT collection from OpenAI-compatible servers, and the built-in teacher server. */
export * from './prompts.js';
export * from './retry.js';
export * from './limits.js';
export * from './usage.js';
export * from './cache.js';
export * from './client.js';
export * from './collector.js';
export * from './output.js';
export { boundedFetch, createNodeFetch, DEFAULT_MAX_RESPONSE_BYTES, type NodeFetch, type NodeFetchOptions } from './node-fetch.js';
export { createProgressBar, type ProgressReporter } from './progress.js';
export * from './server/faults.js';
export * from './server/replay.js';
export * from './server/simulate.js';
export * from './server/server.js';
export { registerTeacherCommands } from './cli.js';
