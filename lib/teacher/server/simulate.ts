/**
 * A simulated teacher for the synthetic tasks: it reads the question, solves it, and writes the
 * reasoning in one of several phrasings; with probability `errorRate` it makes a mistake, either
 * in one step (the conclusion follows the wrong step) or in the final answer alone.
 * Everything is drawn from the `Rng` it is given, so a seed fixes the output.
 */
import { extractAnswer } from '../../tasks/cleansing.js';
import type { Rng } from '../../tasks/random.js';
import { getTask, type TaskName } from '../../tasks/registry.js';
import { parseCoinFlipQuestion, parseLastLetterQuestion, type CoinFlipStep } from '../../tasks/synthetic.js';
import { applyStep, parseArithmeticQuestion, type ArithmeticProblem } from '../../tasks/arithmetic.js';

export type SimulatedMistake = 'none' | 'step' | 'final';

export interface SimulatedRationale {
  task: TaskName;
  text: string;
  /** The answer the rationale concludes with (wrong when mistake ≠ none). */
  concluded: string;
  mistake: SimulatedMistake;
}

function drawMistake(rng: Rng, errorRate: number): SimulatedMistake {
  if (!(errorRate > 0) || rng.next() >= errorRate) return 'none';
  return rng.next() < 0.5 ? 'step' : 'final';
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

function otherLetter(rng: Rng, not: string): string {
  for (;;) {
    const c = ALPHABET[rng.int(ALPHABET.length)]!;
    if (c !== not.toLowerCase()) return c;
  }
}

/** A wrong concatenation of right letters: one dropped, two swapped, or one doubled. */
function garble(rng: Rng, letters: string[]): string {
  const right = letters.join('');
  for (let tries = 0; tries < 10; tries++) {
    const l = letters.slice();
    const i = rng.int(l.length);
    const move = rng.int(3);
    if (move === 0 && l.length > 1) l.splice(i, 1);
    else if (move === 1 && l.length > 1) {
      const j = (i + 1) % l.length;
      [l[i], l[j]] = [l[j]!, l[i]!];
    } else l.splice(i, 0, l[i]!);
    if (l.join('') !== right) return l.join('');
  }
  return right + otherLetter(rng, '');
}

export function simulateLastLetter(words: readonly string[], rng: Rng, errorRate: number): SimulatedRationale {
  const mistake = drawMistake(rng, errorRate);
  const letters = words.map((w) => w[w.length - 1]!);
  if (mistake === 'step') {
    // The classic slip: the wrong letter of one word (its second-to-last, or any other).
    const i = rng.int(words.length);
    const w = words[i]!;
    const slip = w.length > 1 && w[w.length - 2]!.toLowerCase() !== letters[i]!.toLowerCase() ? w[w.length - 2]! : otherLetter(rng, letters[i]!);
    letters[i] = slip;
  }
  const concluded = mistake === 'final' ? garble(rng, letters) : letters.join('');
  const pairs = words.map((w, i) => ({ w, l: letters[i]! }));
  const phrasings: Array<() => string> = [
    () =>
      `${pairs.map((p, i) => `Step ${i + 1}: Take the last letter of "${p.w}" which is "${p.l}"`).join('\n')}\n\n` +
      `Concatenate all the letters together: "${concluded}"`,
    () => `${pairs.map((p, i) => `${i + 1}. ${p.w} - ${p.l}`).join('\n')}\n\nPutting them all together, we get: ${concluded}`,
    () => `${pairs.map((p) => `The last letter of "${p.w}" is "${p.l}".`).join('\n')}\n\nSo, the final answer is "${concluded}".`,
    () => `${pairs.map((p) => `"${p.w}" ends with "${p.l}"`).join(', ')}. ` + `Concatenating the last letters of each word gives us "${concluded}".`,
    () => `Last letters: ${pairs.map((p) => `${p.w} -> ${p.l}`).join(', ')}.\nJoined together, the result is "${concluded}".`,
  ];
  return { task: 'last_letter_concatenation', text: ` ${rng.pick(phrasings)()}`, concluded, mistake };
}

export function simulateCoinFlip(steps: readonly CoinFlipStep[], rng: Rng, errorRate: number): SimulatedRationale {
  const mistake = drawMistake(rng, errorRate);
  const slipAt = mistake === 'step' ? rng.int(steps.length) : -1;
  let heads = true;
  const states: boolean[] = [];
  steps.forEach((s, i) => {
    // A step slip misreads one person's move; later steps build on the misread state.
    const flips = i === slipAt ? !s.flips : s.flips;
    if (flips) heads = !heads;
    states.push(heads);
  });
  const endsHeads = mistake === 'final' ? !heads : heads;
  const yesNo = endsHeads ? 'yes' : 'no';
  const side = (h: boolean): string => (h ? 'heads up' : 'tails up');
  const flipCount = steps.filter((s, i) => (i === slipAt ? !s.flips : s.flips)).length;
  const phrasings: Array<() => string> = [
    () =>
      `The coin starts heads up. ${steps
        .map(
          (s, i) => `${s.person} ${s.flips !== (i === slipAt) ? 'flips the coin, so it is now' : 'does not flip the coin, so it stays'} ${side(states[i]!)}.`,
        )
        .join(' ')} The coin ends ${side(endsHeads)}, so the answer is ${yesNo}.`,
    () =>
      `Count the flips. ${steps
        .map((s, i) => `${s.person} ${s.flips !== (i === slipAt) ? 'flips it' : 'does not flip it'}.`)
        .join(' ')} That makes ${flipCount} flip${flipCount === 1 ? '' : 's'}, an ${flipCount % 2 === 0 ? 'even' : 'odd'} number. ` +
      `So the coin is ${side(endsHeads)}, and the answer is ${yesNo}.`,
    () =>
      `Start: heads up.\n${steps.map((s, i) => `After ${s.person}: ${side(states[i]!)}.`).join('\n')}\n` +
      `Is the coin still heads up? ${endsHeads ? 'Yes' : 'No'}.`,
  ];
  return { task: 'coin_flip', text: ` ${rng.pick(phrasings)()}`, concluded: yesNo, mistake };
}

const OP_WORD = { '+': 'buying', '-': 'giving away', '*': 'multiplying by', '/': 'keeping one of' } as const;
const OP_SIGN = { '+': '+', '-': '-', '*': '*', '/': '/' } as const;

/** Step by step, one equation per operation; a step slip is off by one and later steps build on it. */
export function simulateArithmetic(p: ArithmeticProblem, rng: Rng, errorRate: number): SimulatedRationale {
  const mistake = drawMistake(rng, errorRate);
  const slipAt = mistake === 'step' ? rng.int(p.steps.length) : -1;
  let count = p.start;
  const lines: string[] = [];
  p.steps.forEach((s, i) => {
    let next = applyStep(count, s);
    if (i === slipAt) next += rng.next() < 0.5 ? 1 : -1;
    const what = s.op === '/' ? `${s.k} equal bags` : `${s.k}`;
    lines.push(`After ${OP_WORD[s.op]} ${what}, ${p.person} has ${count} ${OP_SIGN[s.op]} ${s.k} = ${next} ${p.item}.`);
    count = next;
  });
  const concluded = String(mistake === 'final' ? count + 1 + rng.int(5) : count);
  const opening = `${p.person} starts with ${p.start} ${p.item}.`;
  const phrasings: Array<() => string> = [
    () => `${opening} ${lines.join(' ')} So the answer is ${concluded}.`,
    () => `${opening}\n${lines.map((l, i) => `Step ${i + 1}: ${l}`).join('\n')}\nTherefore ${p.person} has ${concluded} ${p.item} now.`,
  ];
  return { task: 'multistep_arithmetic', text: ` ${rng.pick(phrasings)()}`, concluded, mistake };
}

/** The simulated rationale for a synthetic-task question, or undefined when it is not one. */
export function simulateRationale(question: string, rng: Rng, errorRate: number): SimulatedRationale | undefined {
  const words = parseLastLetterQuestion(question);
  if (words) return simulateLastLetter(words, rng, errorRate);
  const steps = parseCoinFlipQuestion(question);
  if (steps) return simulateCoinFlip(steps, rng, errorRate);
  const problem = parseArithmeticQuestion(question);
  if (problem) return simulateArithmetic(problem, rng, errorRate);
  return undefined;
}

/** Which synthetic task a question belongs to. */
export function syntheticTaskOf(question: string): TaskName | undefined {
  if (parseLastLetterQuestion(question)) return 'last_letter_concatenation';
  if (parseCoinFlipQuestion(question)) return 'coin_flip';
  if (parseArithmeticQuestion(question)) return 'multistep_arithmetic';
  return undefined;
}

/**
 * The second stage: the teacher states the answer its rationale reached, in the task's format
 * (`"yajo".`, `Yes.`, `(C).`, `18.`). Extraction failing gives an answer the cleanser rejects.
 */
export function answerFromRationale(rationale: string, task: TaskName): string {
  const spec = getTask(task);
  const answer = extractAnswer(rationale, spec, { source: 'chain' });
  if (answer === undefined) return ' unknown.';
  switch (spec.kind) {
    case 'free_text':
      return ` "${answer}".`;
    case 'yes_no':
      return ` ${answer === 'yes' ? 'Yes' : 'No'}.`;
    case 'choice':
      return ` (${answer}).`;
    case 'numeric':
      return ` ${answer}.`;
  }
}
