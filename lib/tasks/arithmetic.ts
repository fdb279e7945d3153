/**
 * Multi-step arithmetic word problems, GSM8K-like: a person starts with some items and 2–4
 * operations (+, −, ×, ÷) change how many they have; the answer is the integer count at the end.
 * Every intermediate count is a positive integer (subtractions leave some, divisions are exact), so
 * the answer is always an integer and a rationale can state each step. Seeded: the same seed gives
 * the same problems. Questions are parsed back for the simulated teacher (lib/teacher/server).
 */
import { createRng, type Rng } from './random.js';
import type { TaskRecord } from './records.js';
import { FIRST_NAMES, type SyntheticOptions } from './synthetic.js';

export type ArithmeticOp = '+' | '-' | '*' | '/';

export interface ArithmeticStep {
  op: ArithmeticOp;
  /** The operand: items added or given away, the factor, or the number of equal shares. */
  k: number;
  /** The friend given items to (subtraction only). */
  friend?: string;
}

export interface ArithmeticProblem {
  person: string;
  item: string;
  start: number;
  steps: ArithmeticStep[];
}

export const ARITHMETIC_ITEMS: readonly string[] = ['apples', 'marbles', 'stickers', 'cookies', 'pencils', 'stamps', 'shells', 'books', 'coins', 'cards'];

/** Counts stay below this, so problems read like grade-school ones. */
const MAX_COUNT = 1000;

/** The count after one step (the question's wording guarantees an integer). */
export function applyStep(count: number, step: ArithmeticStep): number {
  switch (step.op) {
    case '+':
      return count + step.k;
    case '-':
      return count - step.k;
    case '*':
      return count * step.k;
    case '/':
      return count / step.k;
  }
}

/** The count after every step: [start, after step 1, ...]. */
export function arithmeticCounts(p: ArithmeticProblem): number[] {
  const counts = [p.start];
  for (const s of p.steps) counts.push(applyStep(counts[counts.length - 1]!, s));
  return counts;
}

export function arithmeticAnswer(p: ArithmeticProblem): string {
  return String(arithmeticCounts(p).at(-1)!);
}

function stepSentence(p: ArithmeticProblem, s: ArithmeticStep): string {
  switch (s.op) {
    case '+':
      return `Then ${p.person} buys ${s.k} more ${p.item}.`;
    case '-':
      return `Then ${p.person} gives ${s.k} ${p.item} to ${s.friend}.`;
    case '*':
      return `Then ${p.person} ends up with ${s.k} times as many ${p.item} as before.`;
    case '/':
      return `Then ${p.person} splits the ${p.item} equally into ${s.k} bags and keeps one bag.`;
  }
}

/** "Maya has 12 apples. Then Maya buys 5 more apples. ... How many apples does Maya have now?" */
export function arithmeticQuestion(p: ArithmeticProblem): string {
  return `${p.person} has ${p.start} ${p.item}. ${p.steps.map((s) => stepSentence(p, s)).join(' ')} How many ${p.item} does ${p.person} have now?`;
}

/** One step valid from `count`: the drawn operation when it keeps counts positive integers below MAX_COUNT, else an addition. */
function drawStep(rng: Rng, count: number, person: string): ArithmeticStep {
  const op = rng.pick(['+', '-', '*', '/'] as const);
  if (op === '-' && count > 1) return { op, k: 1 + rng.int(count - 1), friend: rng.pick(FIRST_NAMES.filter((n) => n !== person)) };
  if (op === '*') {
    const k = 2 + rng.int(3);
    if (count * k < MAX_COUNT) return { op, k };
  }
  if (op === '/') {
    const divisors = [2, 3, 4, 5].filter((d) => count % d === 0 && count / d >= 1);
    if (divisors.length) return { op, k: rng.pick(divisors) };
  }
  return { op: '+', k: 2 + rng.int(19) };
}

export function drawArithmeticProblem(rng: Rng, operations: number): ArithmeticProblem {
  const person = rng.pick(FIRST_NAMES);
  const item = rng.pick(ARITHMETIC_ITEMS);
  const start = 2 + rng.int(49);
  const steps: ArithmeticStep[] = [];
  let count = start;
  for (let i = 0; i < operations; i++) {
    const s = drawStep(rng, count, person);
    steps.push(s);
    count = applyStep(count, s);
  }
  return { person, item, start, steps };
}

/**
 * `size` is ignored (it is the word count of the other synthetic tasks): each problem takes 2–4
 * operations, drawn from the seed.
 */
export function generateMultistepArithmetic(options: SyntheticOptions): TaskRecord[] {
  const { count, seed = 0 } = options;
  if (!Number.isInteger(count) || count < 0) throw new Error(`count must be a non-negative integer, got ${count}`);
  const rng = createRng(seed);
  const prefix = options.idPrefix ?? 'multistep_arithmetic';
  return Array.from({ length: count }, (_, i) => {
    const p = drawArithmeticProblem(rng, 2 + rng.int(3));
    return { id: `${prefix}-${seed}-${i}`, question: arithmeticQuestion(p), answer: arithmeticAnswer(p) };
  });
}

const OPENING = /^(\S+) has (\d+) (\S+)\. (.*) How many (\S+) does (\S+) have now\?$/;

/** Parse a question back into its problem, or undefined when it is not one of this generator's. */
export function parseArithmeticQuestion(question: string): ArithmeticProblem | undefined {
  const m = OPENING.exec(question.trim());
  if (!m || m[3] !== m[5] || m[1] !== m[6]) return undefined;
  const [person, item] = [m[1]!, m[3]!];
  const steps: ArithmeticStep[] = [];
  const sentences = m[4]!.split(/(?<=\.) /);
  for (const sentence of sentences) {
    const [add, sub, mul, div] = [
      /^Then \S+ buys (\d+) more \S+\.$/,
      /^Then \S+ gives (\d+) \S+ to (\S+)\.$/,
      /^Then \S+ ends up with (\d+) times as many \S+ as before\.$/,
      /^Then \S+ splits the \S+ equally into (\d+) bags and keeps one bag\.$/,
    ].map((re) => re.exec(sentence));
    if (add) steps.push({ op: '+', k: Number(add[1]) });
    else if (sub) steps.push({ op: '-', k: Number(sub[1]), friend: sub[2]! });
    else if (mul) steps.push({ op: '*', k: Number(mul[1]) });
    else if (div) steps.push({ op: '/', k: Number(div[1]) });
    else return undefined;
  }
  return steps.length ? { person, item, start: Number(m[2]), steps } : undefined;
}
