/** Teacher: Zero-shot-CoT collection from OpenAI-compatible servers, and the built-in teacher server. */
export { rationalePrompt, answerPrompt, parseZeroShotCotPrompt, STEP_BY_STEP } from './prompts.js';
export type { ParsedPrompt } from './prompts.js';
export {
  safeUrl,
  describeNetworkCause,
  parseRetryAfter,
  classifyError,
  cappedRetryAfter,
  backoffDelay,
  describeRetry,
  sleep,
  withRetry,
  DEFAULT_MAX_RETRY_AFTER_MS,
  DEFAULT_RETRY_POLICY,
  MalformedResponseError,
  ResponseTooLargeError,
  TeacherConnectionError,
  TeacherTimeoutError,
  TeacherRequestError,
} from './retry.js';
export type { FailureKind, RetryPolicy, ErrorClass, RetryEvent, RetryHooks } from './retry.js';
export { estimateTokens, TokenBucket, RateLimiter } from './limits.js';
export type { RateLimits } from './limits.js';
export { pricingFor, costUsd, addUsage, KNOWN_PRICING } from './usage.js';
export type { TokenUsage, Pricing } from './usage.js';
export { cacheKey, CompletionCache } from './cache.js';
export type { TeacherApi, SamplingParams, CacheKeyParts, CacheEntry, CacheOpenOptions } from './cache.js';
export { isLoopbackUrl, resolveApiKey, DEFAULT_API_KEY_ENV, TeacherClient } from './client.js';
export type { TeacherClientOptions, CompletionResult } from './client.js';
export { collectRationales, CollectDeadlineError } from './collector.js';
export type {
  Teacher,
  QuestionInput,
  CollectOptions,
  CollectRetryEvent,
  TeacherSample,
  CollectFailure,
  CollectStats,
  CollectProgress,
  CollectResult,
} from './collector.js';
export { sampleToRow, sampleToRecord, writeSamples } from './output.js';
export { boundedFetch, createNodeFetch, DEFAULT_MAX_RESPONSE_BYTES, type NodeFetch, type NodeFetchOptions } from './node-fetch.js';
export { createProgressBar, type ProgressReporter } from './progress.js';
export { validateFaults, evenFaults, drawFault } from './server/faults.js';
export type { FaultKind, FaultRates } from './server/faults.js';
export { ReplayBook } from './server/replay.js';
export { simulateLastLetter, simulateCoinFlip, simulateRationale, syntheticTaskOf, answerFromRationale } from './server/simulate.js';
export type { SimulatedMistake, SimulatedRationale } from './server/simulate.js';
export { startTeacherServer, DEFAULT_MAX_BODY_BYTES } from './server/server.js';
export type { TeacherServerOptions, RequestOutcome, RecordedRequest, TeacherServerStats, TeacherServer } from './server/server.js';
