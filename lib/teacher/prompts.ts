/**
 * Zero-shot-CoT (Kojima et al. 2022) in two stages, as Fine-tune-CoT and Mentor-KD collect
 * teacher rationales: the question with "Let's think step by step." gives a rationale; the same
 * text plus the rationale plus the task's answer trigger gives the answer.
 */
import { resolveTask, listTasks, type TaskSpec } from '../tasks/registry.js';

export const STEP_BY_STEP = "Let's think step by step.";

/** Stage 1: `Q: {question}\nA: Let's think step by step.` (the question's trailing blank trimmed). */
export function rationalePrompt(question: string): string {
  return `Q: ${question.trim()}\nA: ${STEP_BY_STEP}`;
}

/** Stage 2: `{stage-1 prompt}{rationale}\n{answer trigger}`, e.g. "Therefore, the answer (arabic numerals) is". */
export function answerPrompt(question: string, rationale: string, task: TaskSpec | string): string {
  return `${rationalePrompt(question)}${rationale}\n${resolveTask(task).answerTrigger}`;
}

export interface ParsedPrompt {
  stage: 'rationale' | 'answer';
  question: string;
  /** Stage 2 only. */
  rationale?: string;
  /** Stage 2 only: the answer trigger it ends with. */
  trigger?: string;
}

const TRIGGERS = [...new Set(listTasks().map((t) => t.answerTrigger))].sort((a, b) => b.length - a.length);

/** Read a prompt built by `rationalePrompt`/`answerPrompt` back into its parts (the simulated teacher's view). */
export function parseZeroShotCotPrompt(prompt: string): ParsedPrompt | undefined {
  if (!prompt.startsWith('Q: ')) return undefined;
  const marker = `\nA: ${STEP_BY_STEP}`;
  const at = prompt.indexOf(marker);
  if (at === -1) return undefined;
  const question = prompt.slice(3, at);
  const rest = prompt.slice(at + marker.length);
  if (rest === '') return { stage: 'rationale', question };
  for (const trigger of TRIGGERS) {
    const suffix = `\n${trigger}`;
    if (rest.endsWith(suffix)) return { stage: 'answer', question, rationale: rest.slice(0, -suffix.length), trigger };
  }
  return undefined;
}
