/**
 * Faithfulness of a rationale to its question: does the reasoning talk about what the question says?
 * Accuracy alone hides a student that answers right while naming people who are not in the question
 * or counting flips that never happened; this check reads the rationale against the question.
 *
 * - Coin Flip: every person named is in the question, each stated move (flips / does not flip)
 *   and state (heads / tails up) matches the question, every person is covered once, and the stated
 *   flip count, its parity, the final side and the yes/no agree with the question.
 * - Last Letter Concatenation: every word named is in the question, each stated letter is that
 *   word's last letter, every word is covered, and the concatenation stated is the right one.
 * - Other tasks (a heuristic): capitalised names that are not in the question, and equation
 *   operands that neither the question nor an earlier step gave.
 *
 * The checks are deterministic text rules written for step-by-step rationales in the phrasings of
 * the paper's teachers (and of lib/teacher/server/simulate.ts); a rationale in another style may be
 * flagged for coverage it does express. Reasons say exactly what failed.
 */
import { parseCoinFlipQuestion, parseLastLetterQuestion } from '../tasks/synthetic.js';

/** What a failed check was about: entities (names, numbers), steps (moves, letters, coverage), the conclusion. */
export type FaithfulnessCheck = 'entities' | 'steps' | 'conclusion';

export interface FaithfulnessIssue {
  check: FaithfulnessCheck;
  reason: string;
}

export interface FaithfulnessResult {
  faithful: boolean;
  /** One line per failed check, naming the entity or step; empty when faithful. */
  reasons: string[];
  /** The same failures with the check each belongs to. */
  issues: FaithfulnessIssue[];
}

/** Checks a rationale against its question; `task` is a task name (lib/tasks/registry.ts). */
export function checkFaithfulness(task: string, question: string, rationale: string): FaithfulnessResult {
  const text = stripAnswer(rationale);
  let issues: FaithfulnessIssue[];
  if (task === 'coin_flip') issues = checkCoinFlip(question, text);
  else if (task === 'last_letter_concatenation') issues = checkLastLetter(question, text);
  else issues = checkEntities(question, text);
  // A fault repeated in the text (the same wrong move named three times) is one reason.
  issues = issues.filter((x, i) => issues.findIndex((y) => y.reason === x.reason) === i);
  return { faithful: issues.length === 0, reasons: issues.map((i) => i.reason), issues };
}

/** The rationale without the "--> answer" tail of the Fine-tune-CoT target format. */
function stripAnswer(output: string): string {
  const i = output.lastIndexOf('-->');
  return (i < 0 ? output : output.slice(0, i)).trim();
}

const uniq = <T>(xs: readonly T[]): T[] => [...new Set(xs)];
const list = (xs: readonly string[]): string => xs.join(', ');

// ---------------------------------------------------------------- Coin Flip

function checkCoinFlip(question: string, text: string): FaithfulnessIssue[] {
  const steps = parseCoinFlipQuestion(question);
  if (!steps) return checkEntities(question, text); // not the generated wording: the generic check
  const moves = new Map(steps.map((s) => [s.person, s.flips]));
  const issues: FaithfulnessIssue[] = [];
  const notInQuestion = (name: string) => !moves.has(name);

  // "Rosa flips it." / "Rosa flips the coin, so it is now tails up." / "Rosa does not flip it."
  const stated: { person: string; flips: boolean }[] = [];
  for (const m of text.matchAll(/\b([A-Z][a-z]+) (flips|does not flip)\b/g)) stated.push({ person: m[1]!, flips: m[2] === 'flips' });
  // "After Rosa: tails up."
  const states: { person: string; heads: boolean }[] = [];
  for (const m of text.matchAll(/\bAfter ([A-Z][a-z]+): (heads|tails) up\b/g)) states.push({ person: m[1]!, heads: m[2] === 'heads' });
  for (const m of text.matchAll(/\b([A-Z][a-z]+) (?:flips the coin, so it is now|does not flip the coin, so it stays) (heads|tails) up\b/g)) {
    states.push({ person: m[1]!, heads: m[2] === 'heads' });
  }

  const stepNames = [...stated.map((s) => s.person), ...states.map((s) => s.person)];
  const strangers = uniq([...stepNames, ...capitalisedNames(text)].filter(notInQuestion));
  if (strangers.length) issues.push({ check: 'entities', reason: `names not in the question: ${list(strangers)}` });

  for (const s of stated) {
    const truth = moves.get(s.person);
    if (truth !== undefined && truth !== s.flips)
      issues.push({ check: 'steps', reason: `says ${s.person} ${s.flips ? 'flips' : 'does not flip'}; the question says the opposite` });
  }
  // A stated side after a person must be the side after that person's move in the question.
  let heads = true;
  const sideAfter = new Map<string, boolean>();
  for (const s of steps) {
    if (s.flips) heads = !heads;
    sideAfter.set(s.person, heads);
  }
  for (const s of states) {
    const truth = sideAfter.get(s.person);
    if (truth !== undefined && truth !== s.heads)
      issues.push({ check: 'steps', reason: `says the coin is ${s.heads ? 'heads' : 'tails'} up after ${s.person}; it is ${truth ? 'heads' : 'tails'} up` });
  }

  const named = stated.length ? stated.map((s) => s.person) : states.map((s) => s.person);
  const repeated = uniq(named.filter((p, i) => named.indexOf(p) !== i));
  if (repeated.length) issues.push({ check: 'steps', reason: `steps repeat ${list(repeated)}` });
  const missing = steps.map((s) => s.person).filter((p) => !named.includes(p));
  if (missing.length)
    issues.push({ check: 'steps', reason: `steps skip ${list(missing)} (${steps.length - missing.length} of ${steps.length} people covered)` });

  const flips = steps.filter((s) => s.flips).length;
  const count = /\bmakes (\d+) flips?\b/.exec(text);
  if (count) {
    const n = Number(count[1]);
    if (n !== flips) issues.push({ check: 'conclusion', reason: `counts ${n} flips; the question has ${flips}` });
    const parity = /\ban (even|odd) number\b/.exec(text);
    if (parity && (parity[1] === 'even') !== (n % 2 === 0)) issues.push({ check: 'conclusion', reason: `calls ${n} ${parity[1]}` });
  }
  const endsHeads = flips % 2 === 0;
  const side = lastMatch(text, /\b(?:coin is|coin ends|ends) (heads|tails) up\b/g);
  if (side && (side === 'heads') !== endsHeads)
    issues.push({ check: 'conclusion', reason: `concludes ${side} up; after ${flips} flips the coin is ${endsHeads ? 'heads' : 'tails'} up` });
  return issues;
}

function lastMatch(text: string, re: RegExp): string | undefined {
  let last: string | undefined;
  for (const m of text.matchAll(re)) last = m[1];
  return last;
}

// ---------------------------------------------------------------- Last Letter Concatenation

function checkLastLetter(question: string, text: string): FaithfulnessIssue[] {
  const words = parseLastLetterQuestion(question);
  if (!words) return checkEntities(question, text);
  const issues: FaithfulnessIssue[] = [];
  const byLower = new Map(words.map((w) => [w.toLowerCase(), w]));
  // `"Whitney" which is "y"`, `The last letter of "Whitney" is "y"`, `"Whitney" ends with "y"`, `1. Whitney - y`,
  // `Whitney -> y`, `Whitney - Last letter: y`: a word, a connective, one letter (compared ignoring case:
  // "VicentE - e" names the question's Vicente).
  const pairs: { word: string; letter: string }[] = [];
  const pairRe =
    /"?(?<!\p{L})(\p{L}+)"?(?:\s*(?:->|-|–|:)\s*|\s+(?:ends with|which is|is)\s+)(?:(?:the\s+)?[Ll]ast letter(?:\s+is)?:?\s*)?"?(\p{L})"?(?!\p{L})/gu;
  for (const m of text.matchAll(pairRe)) pairs.push({ word: m[1]!, letter: m[2]! });
  // A word named in a step or used as a name that is not in the question.
  const strangers = uniq([
    ...pairs.map((p) => p.word).filter((w) => w.length > 1 && /^\p{Lu}/u.test(w) && !byLower.has(w.toLowerCase()) && !COMMON_WORDS.has(w)),
    ...capitalisedNames(text).filter((w) => !byLower.has(w.toLowerCase())),
  ]);
  if (strangers.length) issues.push({ check: 'entities', reason: `names not in the question: ${list(strangers)}` });
  const covered = new Set<string>();
  for (const p of pairs) {
    const w = byLower.get(p.word.toLowerCase());
    if (w === undefined) continue;
    covered.add(w);
    const last = w[w.length - 1]!;
    if (p.letter.toLowerCase() !== last.toLowerCase())
      issues.push({ check: 'steps', reason: `says the last letter of ${w} is "${p.letter}"; it is "${last}"` });
  }
  const missing = words.filter((w) => !covered.has(w));
  if (missing.length)
    issues.push({ check: 'steps', reason: `steps skip ${list(missing)} (${words.length - missing.length} of ${words.length} words covered)` });
  const right = words.map((w) => w[w.length - 1]).join('');
  const concluded = concludedString(text);
  if (concluded !== undefined && concluded.toLowerCase() !== right.toLowerCase())
    issues.push({ check: 'conclusion', reason: `concludes "${concluded}"; the last letters give "${right}"` });
  return issues;
}

/** The concatenation a rationale ends on: its last quoted string, or the word after "we get:". */
function concludedString(text: string): string | undefined {
  const quoted = lastMatch(text, /"(\p{L}+)"/gu);
  const got = lastMatch(text, /\b(?:we get|result is|answer is):?\s+"?(\p{L}+)"?/gu);
  return got ?? quoted;
}

// ---------------------------------------------------------------- Any task: entities

// Capitalised words that are never entities: function words, answer words, calendar names, the
// labels of quantities in a worked formula ("Total = 5 + 3").
const COMMON_WORDS = new Set(
  (
    'A An And As At But By For From He Her His I If In It Its Let My Now Of On Or Our She So Since That The Their Then There ' +
    'Therefore These They This Those Thus To We What When Where Which Who With You Your After Before Step Yes No Answer Option ' +
    'Options Note Total Number Sum Difference Product Remaining Initial Final Length Width Height Area Amount Cost Rate Time ' +
    'Distance Weight Result January February March April May June July August September October November December Monday ' +
    'Tuesday Wednesday Thursday Friday Saturday Sunday'
  ).split(' '),
);

/**
 * Capitalised words used as names: those in mid-sentence, and a sentence's first word when the text
 * also capitalises it mid-sentence. A word opening a sentence ("Simplifying", "However", "Sure")
 * is capitalised by grammar, not because it names anything, so it alone is no evidence.
 */
function capitalisedNames(text: string): string[] {
  const words = [...text.matchAll(/(?<![\p{L}\p{N}])(\p{Lu}\p{Ll}+)(?![\p{L}\p{N}])/gu)].map((m) => ({ word: m[1]!, at: m.index }));
  // Sentence start: the text's start, after . ! ? : ; a line break, or a formula's = + * / ( - (a list marker "1." aside).
  const initial = (at: number) => /(?:^|[.!?:;=+*/(|\n–—-])\s*(?:\d+[.)]\s*)?["'“(]*\s*$/u.test(text.slice(0, at));
  const mid = new Set(words.filter((w) => !initial(w.at)).map((w) => w.word));
  return uniq(words.map((w) => w.word).filter((w) => mid.has(w) && !COMMON_WORDS.has(w)));
}

// Constants of world knowledge a reasoning step may bring in (days in a week, minutes in an hour, ...).
const KNOWN_CONSTANTS = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 24, 25, 30, 31, 50, 52, 60, 100, 365, 1000]);

const UNITS = 'zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen'.split(' ');
const TENS = 'twenty thirty forty fifty sixty seventy eighty ninety'.split(' ');

/** Numbers a question writes in words: "Thirteen" → 13, "twenty-six" → 26, "three hundred" → 300. */
export function numberWords(text: string): number[] {
  const out: number[] = [];
  const word = `(?:${[...TENS, ...UNITS].join('|')})`;
  for (const m of text.toLowerCase().matchAll(new RegExp(`\\b(${word})(?:[- ](${word}))?(?: (hundred|thousand))?\\b`, 'g'))) {
    const value = (w: string) => (UNITS.includes(w) ? UNITS.indexOf(w) : 20 + 10 * TENS.indexOf(w));
    let n = value(m[1]!);
    if (m[2] !== undefined && TENS.includes(m[1]!) && UNITS.indexOf(m[2]) < 10) n += value(m[2]);
    if (m[3] === 'hundred') n *= 100;
    if (m[3] === 'thousand') n *= 1000;
    out.push(n);
  }
  return out;
}

function checkEntities(question: string, text: string): FaithfulnessIssue[] {
  const issues: FaithfulnessIssue[] = [];
  const questionWords = new Set([...question.matchAll(/\b([A-Za-z]+)\b/g)].map((m) => m[1]!.toLowerCase()));
  const strangers = capitalisedNames(text).filter((w) => !questionWords.has(w.toLowerCase()));
  if (strangers.length) issues.push({ check: 'entities', reason: `names not in the question: ${list(strangers)}` });
  // Operands of "a op b = c": each from the question, an earlier result or a common constant, or
  // one operation on a number of the question or an earlier result with another or a constant
  // ("37 + 14" after "33 pieces ... 4 more": 37 = 33 + 4, said in words).
  const num = (s: string) => Number(s.replace(/,/g, ''));
  const known = new Set([...[...question.matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => num(m[0])), ...numberWords(question)]);
  const oneStep = (v: number) => {
    const xs = [...known];
    const ys = [...xs, ...KNOWN_CONSTANTS];
    const close = (x: number) => Math.abs(x - v) <= 1e-9 * Math.max(1, Math.abs(v));
    return xs.some((a) =>
      ys.some((b) => close(a + b) || close(a - b) || close(b - a) || close(a * b) || (b !== 0 && close(a / b)) || (a !== 0 && close(b / a))),
    );
  };
  const ungrounded: number[] = [];
  for (const m of text.matchAll(/((?:\d[\d,]*(?:\.\d+)?\s*[-+*/x×÷]\s*)+\d[\d,]*(?:\.\d+)?)\s*=\s*(\d[\d,]*(?:\.\d+)?)/g)) {
    for (const op of m[1]!.matchAll(/\d[\d,]*(?:\.\d+)?/g)) {
      const v = num(op[0]);
      if (known.has(v) || KNOWN_CONSTANTS.has(v)) continue;
      if (oneStep(v)) known.add(v);
      else ungrounded.push(v);
    }
    known.add(num(m[2]!));
  }
  if (ungrounded.length) issues.push({ check: 'entities', reason: `numbers not in the question or an earlier step: ${list(uniq(ungrounded).map(String))}` });
  return issues;
}

export interface FaithfulnessSummary {
  /** Rationales checked. */
  total: number;
  /** Fraction that pass every check. */
  faithful: number;
  /** Fraction that pass each check on its own (entities: names only people/words of the question). */
  byCheck: Record<FaithfulnessCheck, number>;
}

/** Faithfulness over many rationales (fractions are NaN for none). */
export function summarizeFaithfulness(task: string, rows: readonly { question: string; output: string }[]): FaithfulnessSummary {
  const results = rows.map((r) => checkFaithfulness(task, r.question, r.output));
  const frac = (pass: (r: FaithfulnessResult) => boolean) => (rows.length ? results.filter(pass).length / rows.length : NaN);
  const passes = (check: FaithfulnessCheck) => (r: FaithfulnessResult) => !r.issues.some((i) => i.check === check);
  return {
    total: rows.length,
    faithful: frac((r) => r.faithful),
    byCheck: { entities: frac(passes('entities')), steps: frac(passes('steps')), conclusion: frac(passes('conclusion')) },
  };
}
