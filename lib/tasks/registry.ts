/**
 * The tasks of the Mentor-KD paper, named as in the authors' released files, with the answer
 * format each one expects. Everything task-specific (cleansing, prompts, simulation) keys off this.
 */

export const TASK_NAMES = [
  'gsm8k',
  'asdiv',
  'svamp',
  'commonsense_qa',
  'strategy_qa',
  'date_understanding',
  'tracking_shuffled_objects',
  'last_letter_concatenation',
  'coin_flip',
  'multistep_arithmetic',
] as const;

export type TaskName = (typeof TASK_NAMES)[number];

/** How an answer is written and compared. */
export type AnswerKind = 'numeric' | 'choice' | 'yes_no' | 'free_text';

export interface TaskSpec {
  readonly name: TaskName;
  readonly title: string;
  readonly kind: AnswerKind;
  /** Allowed option letters for `choice` tasks, in order. */
  readonly choices?: readonly string[];
  /**
   * Zero-shot-CoT answer-extraction trigger (Kojima et al. 2022), which carries the
   * answer-format hint: appended after the rationale in the second stage.
   */
  readonly answerTrigger: string;
  /** True when `lib/tasks/synthetic` can generate this task with no download. */
  readonly synthetic: boolean;
}

const NUMERIC_TRIGGER = 'Therefore, the answer (arabic numerals) is';
const YES_NO_TRIGGER = 'Therefore, the answer (Yes or No) is';

const letters = (last: string): string[] => {
  const out: string[] = [];
  for (let c = 'A'.charCodeAt(0); c <= last.charCodeAt(0); c++) out.push(String.fromCharCode(c));
  return out;
};

const SPECS: Record<TaskName, TaskSpec> = {
  gsm8k: { name: 'gsm8k', title: 'GSM8K', kind: 'numeric', answerTrigger: NUMERIC_TRIGGER, synthetic: false },
  asdiv: { name: 'asdiv', title: 'ASDiv', kind: 'numeric', answerTrigger: NUMERIC_TRIGGER, synthetic: false },
  svamp: { name: 'svamp', title: 'SVAMP', kind: 'numeric', answerTrigger: NUMERIC_TRIGGER, synthetic: false },
  commonsense_qa: {
    name: 'commonsense_qa',
    title: 'CommonsenseQA',
    kind: 'choice',
    choices: letters('E'),
    answerTrigger: 'Therefore, among A through E, the answer is',
    synthetic: false,
  },
  strategy_qa: { name: 'strategy_qa', title: 'StrategyQA', kind: 'yes_no', answerTrigger: YES_NO_TRIGGER, synthetic: false },
  date_understanding: {
    name: 'date_understanding',
    title: 'Date Understanding',
    kind: 'choice',
    choices: letters('F'),
    answerTrigger: 'Therefore, among A through F, the answer is',
    synthetic: false,
  },
  tracking_shuffled_objects: {
    name: 'tracking_shuffled_objects',
    title: 'Tracking Shuffled Objects',
    kind: 'choice',
    choices: letters('C'),
    answerTrigger: 'Therefore, among A through C, the answer is',
    synthetic: false,
  },
  last_letter_concatenation: {
    name: 'last_letter_concatenation',
    title: 'Last Letter Concatenation',
    kind: 'free_text',
    answerTrigger: 'Therefore, the answer is',
    synthetic: true,
  },
  coin_flip: { name: 'coin_flip', title: 'Coin Flip', kind: 'yes_no', answerTrigger: YES_NO_TRIGGER, synthetic: true },
  // Not in the paper: GSM8K-like problems generated here (lib/tasks/arithmetic.ts), so arithmetic can be studied offline.
  multistep_arithmetic: {
    name: 'multistep_arithmetic',
    title: 'Multi-step Arithmetic (generated)',
    kind: 'numeric',
    answerTrigger: NUMERIC_TRIGGER,
    synthetic: true,
  },
};

export function isTaskName(name: string): name is TaskName {
  return (TASK_NAMES as readonly string[]).includes(name);
}

/** The spec for a task name; an unknown name is an error that lists the known ones. */
export function getTask(name: string): TaskSpec {
  if (!isTaskName(name)) {
    throw new Error(`unknown task "${name}"; known tasks: ${TASK_NAMES.join(', ')}`);
  }
  return SPECS[name];
}

export function listTasks(): TaskSpec[] {
  return TASK_NAMES.map((n) => SPECS[n]);
}

/** Accepts a spec or a name, so APIs can take either. */
export function resolveTask(task: TaskSpec | string): TaskSpec {
  return typeof task === 'string' ? getTask(task) : task;
}
