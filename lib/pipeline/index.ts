/** The Mentor-KD pipeline: run config, the stages from data to report, and sweeps. */
export { runPipeline, STAGES } from './pipeline.js';
export type { PipelineOptions, PipelineResult, StageName, StudentResult } from './pipeline.js';
export { runSweep } from './sweep.js';
export type { SweepGrid, SweepCell } from './sweep.js';
export { meanStd, pairedDifference, studentTCdf, studentTQuantile } from './statistics.js';
export type { MeanStd, PairedDifference } from './statistics.js';
export { defaultConfig } from '../config/defaults.js';
export { validateConfig, mergeConfig, readConfigFile, ConfigError } from '../config/load.js';
export { STUDENT_MODES } from '../config/schema.js';
export type { RunConfig, RunConfigInput, StudentMode } from '../config/schema.js';
