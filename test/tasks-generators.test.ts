/**
 * The locally generated tasks: Last Letter Concatenation in the released data's format, and the
 * multi-step arithmetic word problems. Every answer is recomputed here from the question text
 * alone (not through the generators' own helpers), and each generator is deterministic per seed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateMultistepArithmetic, parseArithmeticQuestion } from '../lib/tasks/arithmetic.js';
import { extractAnswer } from '../lib/tasks/cleansing.js';
import { getTask } from '../lib/tasks/registry.js';
import { generateLastLetterConcatenation, SYNTHETIC_GENERATORS } from '../lib/tasks/synthetic.js';
import { simulateRationale, syntheticTaskOf } from '../lib/teacher/server/simulate.js';
import { createRng } from '../lib/tasks/random.js';

// The authors' release, where present (MENTOR_KD_DATA, as test/tasks-release.test.ts): the format check against it skips otherwise.
const RELEASE = join(process.env.MENTOR_KD_DATA ?? '/work/shared/data/mentor-kd', 'skeleton', 'last_letter_concatenation_train.json');
const releasePresent = existsSync(RELEASE);

/** The answer of a Last Letter question, from its text: the last character of each quoted word. */
function lastLettersOf(question: string): string {
  const quoted = question.slice(question.indexOf('"') + 1, question.lastIndexOf('"'));
  return quoted
    .split(' ')
    .map((w) => w.charAt(w.length - 1))
    .join('');
}

/** The answer of an arithmetic question, from its text, by an independent sentence-by-sentence reading. */
function solveWordProblem(question: string): number {
  const sentences = question.split(/(?<=[.?]) /);
  let count = Number(/has (\d+) /.exec(sentences[0]!)![1]);
  for (const s of sentences.slice(1, -1)) {
    const n = Number(/(\d+)/.exec(s)![1]);
    if (s.includes(' buys ')) count += n;
    else if (s.includes(' gives ')) count -= n;
    else if (s.includes(' times as many ')) count *= n;
    else if (s.includes(' splits ')) count /= n;
    else throw new Error(`unread sentence: ${s}`);
  }
  return count;
}

describe('Last Letter Concatenation, generated', () => {
  // The release has a few names with accents or of two words ("Jorge Luis"): 5 words, same rule.
  const releasedShape = /^Take the last letters of each words in "\p{L}+(?: \p{L}+)+" and concatenate them\.$/u;

  it.skipIf(!releasePresent)('the released data has the shape the generator follows (needs the release)', () => {
    const released = JSON.parse(readFileSync(RELEASE, 'utf8')) as { input: string; answer: string }[];
    expect(released.length).toBeGreaterThan(0);
    expect(released.filter((r) => !releasedShape.test(r.input) || r.answer.toLowerCase() !== lastLettersOf(r.input).toLowerCase())).toEqual([]); // compared case-blind, as the authors do
  });

  it('asks in the released data format and answers with the last letters', () => {
    const records = generateLastLetterConcatenation({ count: 300, seed: 7 });
    for (const r of records) {
      expect(r.question).toMatch(releasedShape);
      expect(r.question.split('"')[1]!.split(' ')).toHaveLength(4); // the release's size
      expect(r.answer).toBe(lastLettersOf(r.question));
      expect(r.answer).toMatch(/^[a-z]{4}$/);
    }
  });

  it('is deterministic per seed and differs across seeds', () => {
    const a = generateLastLetterConcatenation({ count: 50, seed: 3 });
    expect(generateLastLetterConcatenation({ count: 50, seed: 3 })).toEqual(a);
    expect(generateLastLetterConcatenation({ count: 50, seed: 4 }).map((r) => r.question)).not.toEqual(a.map((r) => r.question));
  });
});

describe('multi-step arithmetic, generated', () => {
  const records = generateMultistepArithmetic({ count: 500, seed: 11 });

  it('is a registered synthetic numeric task the pipeline can generate', () => {
    expect(getTask('multistep_arithmetic')).toMatchObject({ kind: 'numeric', synthetic: true });
    expect(SYNTHETIC_GENERATORS.multistep_arithmetic).toBe(generateMultistepArithmetic);
  });

  it('has 2-4 operations, every count a positive integer, and the right integer answer', () => {
    const ops = new Set<string>();
    for (const r of records) {
      const operations = r.question.split('. Then ').length - 1;
      expect(operations).toBeGreaterThanOrEqual(2);
      expect(operations).toBeLessThanOrEqual(4);
      const answer = solveWordProblem(r.question);
      expect(Number.isInteger(answer) && answer > 0, r.question).toBe(true);
      expect(r.answer).toBe(String(answer));
      for (const w of ['buys', 'gives', 'times as many', 'splits']) if (r.question.includes(w)) ops.add(w);
    }
    expect(ops.size).toBe(4); // all four operations occur
  });

  it('is deterministic per seed and differs across seeds', () => {
    expect(generateMultistepArithmetic({ count: 500, seed: 11 })).toEqual(records);
    expect(generateMultistepArithmetic({ count: 20, seed: 12 }).map((r) => r.question)).not.toEqual(records.slice(0, 20).map((r) => r.question));
  });

  it('parses its questions back, and the simulated teacher solves them (when it makes no mistake)', () => {
    for (const r of records.slice(0, 100)) {
      const p = parseArithmeticQuestion(r.question)!;
      expect(p.steps.length).toBeGreaterThanOrEqual(2);
      expect(syntheticTaskOf(r.question)).toBe('multistep_arithmetic');
      const sim = simulateRationale(r.question, createRng(1), 0)!;
      expect(sim.mistake).toBe('none');
      expect(extractAnswer(sim.text, 'multistep_arithmetic')).toBe(r.answer);
    }
    expect(parseArithmeticQuestion('Maya has 3 apples. Then Maya sings. How many apples does Maya have now?')).toBeUndefined();
  });

  it("the simulated teacher's mistakes give wrong answers", () => {
    const rng = createRng(5);
    let wrong = 0;
    for (const r of records.slice(0, 100)) {
      const sim = simulateRationale(r.question, rng, 1)!;
      expect(sim.mistake).not.toBe('none');
      if (extractAnswer(sim.text, 'multistep_arithmetic') !== r.answer) wrong++;
    }
    expect(wrong).toBe(100);
  });
});
