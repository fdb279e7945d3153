/** Tasks: registry, loaders, answer cleansing, agreement check, synthetic generators, seeded randomness. */
export { isTaskName, getTask, listTasks, resolveTask, TASK_NAMES } from './registry.js';
export type { TaskName, AnswerKind, TaskSpec } from './registry.js';
export { describeSource, TaskDataError } from './records.js';
export type { TaskRecord, RecordSource } from './records.js';
export { canonicalNumber, extractCandidates, extractAnswerDetailed, extractAnswer, normalizeGold, answersMatch, isCorrect, ANSWER_ARROW } from './cleansing.js';
export type { AnswerSource, ExtractOptions, Extraction } from './cleansing.js';
export { loadMentorKdFile, loadGenericFile, loadGsm8kJsonl, detectFormat, loadTaskFile, loadTeacherOutputs } from './loaders.js';
export type { TaskLoadOptions, LoadResult, FieldMapping, GenericLoadOptions, FileFormat, TaskFileOptions, TeacherOutputs } from './loaders.js';
export { checkCleansing, formatAgreement } from './check.js';
export type { AgreementMismatch, AgreementReport, AgreementOptions } from './check.js';
export {
  lastLetterQuestion,
  lastLetterAnswer,
  generateLastLetterConcatenation,
  coinFlipQuestion,
  coinFlipAnswer,
  generateCoinFlip,
  parseLastLetterQuestion,
  parseCoinFlipQuestion,
  FIRST_NAMES,
  SYNTHETIC_GENERATORS,
} from './synthetic.js';
export type { SyntheticOptions, CoinFlipStep } from './synthetic.js';
export {
  applyStep,
  arithmeticAnswer,
  arithmeticCounts,
  arithmeticQuestion,
  drawArithmeticProblem,
  generateMultistepArithmetic,
  parseArithmeticQuestion,
  ARITHMETIC_ITEMS,
} from './arithmetic.js';
export type { ArithmeticOp, ArithmeticStep, ArithmeticProblem } from './arithmetic.js';
export { taskOfReleaseFile, scanMentorKdRelease, formatReleaseAgreement } from './release.js';
export type { ReleaseFileAgreement, ReleaseTaskAgreement } from './release.js';
export { parseFieldMapping, toMentorKdJson } from './cli.js';
export { createRng, hashSeed, seededRandom, mixSeed, shuffleInPlace } from './random.js';
export type { Rng } from './random.js';
