/** Training: settings, the training loop, data to batches, evaluation, checkpoints, soft-label cache, the native engine. */
export { train, TrainingStoppedError } from './trainer.js';
export type { TrainOptions, TrainRunOptions, TrainResult, EvalLog } from './trainer.js';
export type { StepLog } from './step-record.js';
export { trainSettingsSchema, kdSettingsSchema, TRAIN_DEFAULTS, KD_DEFAULTS, LR_SCHEDULER_TYPES, trainSettingsJsonSchema } from '../config/train-settings.js';
export type { TrainSettings, TrainSettingsInput, KdSettings, KdSettingsInput, LrSchedulerType } from '../config/train-settings.js';
export { TrainEngine } from './engine.js';
export type { EngineOptions, StepResult, LossResult, TrainerInfo } from './engine.js';
export { tokenizeDataset, describeTruncation } from './data.js';
export type { Seq2SeqExample, TokenizedExample, TokenizedDataset, TruncationReport, TokenizeOptions } from './data.js';
export { BatchStream, epochBatches, collate, exampleLength } from './batches.js';
export type { BatchPlanOptions, StreamPosition, CollatedBatch } from './batches.js';
export { evaluateGreedy } from './evaluate.js';
export type { EvaluateOptions, EvaluationResult, Prediction } from './evaluate.js';
export { listCheckpoints, latestCheckpoint, readTrainerState, pruneCheckpoints, writeCheckpoint, checkpointName, TRAINER_STATE_FILE } from './checkpoints.js';
export type { TrainerState, LogEntry } from './checkpoints.js';
export { SoftLabelCache, buildSoftLabelCache } from './soft-labels.js';
export type { BuildSoftLabelOptions, SoftLabelCacheInfo } from './soft-labels.js';
export { MetricsLog, TrainProgress } from './progress.js';
