/** The memory planner: per-rank bytes of a training run, and whether it fits (docs/memory.md). */
export { estimateMemory, countParameters, DEFAULT_RUNTIME_BYTES, type PlanEstimate, type PlanInput, type PlanModelConfig } from './estimate.js';
export { parseActivationCheckpointing } from './checkpointing.js';
export { formatBytes, parseBytes } from './bytes.js';
export { describePlan, planFits } from './report.js';
export { registerPlanCommand } from './cli.js';
export { MODEL_PRESETS } from './presets.js';
export { availableMemoryBytes } from './available.js';
export { trainingMemoryWarning, type TrainingShape } from './warn.js';
