// The faithfulness check on planted rationales: faithful ones in each phrasing the teachers use pass;
// each planted fault (a stranger's name, a wrong move, a skipped person, a wrong count, parity,
// side, letter or concatenation, an invented number) is caught and named.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFaithfulness, numberWords, summarizeFaithfulness } from '../lib/eval/faithfulness.js';
import { createRng } from '../lib/tasks/random.js';
import {
  coinFlipQuestion,
  generateCoinFlip,
  generateLastLetterConcatenation,
  lastLetterQuestion,
  parseCoinFlipQuestion,
  parseLastLetterQuestion,
} from '../lib/tasks/synthetic.js';
import { simulateCoinFlip, simulateLastLetter } from '../lib/teacher/server/simulate.js';

const coinQ = coinFlipQuestion([
  { person: 'Jade', flips: false },
  { person: 'Vanessa', flips: true },
  { person: 'Val', flips: false },
  { person: 'Malik', flips: true },
]);
const count = (steps: string, tail: string) => `Count the flips. ${steps} ${tail} --> yes`;
const allSteps = 'Jade does not flip it. Vanessa flips it. Val does not flip it. Malik flips it.';
const evenTail = 'That makes 2 flips, an even number. So the coin is heads up, and the answer is yes.';

describe('coin flip', () => {
  it.each([
    ['count', count(allSteps, evenTail)],
    [
      'narrated',
      'The coin starts heads up. Jade does not flip the coin, so it stays heads up. Vanessa flips the coin, so it is now tails up. ' +
        'Val does not flip the coin, so it stays tails up. Malik flips the coin, so it is now heads up. The coin ends heads up, so the answer is yes.',
    ],
    [
      'states',
      'Start: heads up.\nAfter Jade: heads up.\nAfter Vanessa: tails up.\nAfter Val: tails up.\nAfter Malik: heads up.\nIs the coin still heads up? Yes.',
    ],
  ])('a faithful %s rationale passes', (_, r) => {
    expect(checkFaithfulness('coin_flip', coinQ, r)).toEqual({ faithful: true, reasons: [], issues: [] });
  });

  it.each([
    ['a person not in the question', count(allSteps.replace('Val does', 'Rosa does'), evenTail), /names not in the question: Rosa/, 'entities'],
    ['a wrong move', count(allSteps.replace('Val does not flip it', 'Val flips it'), evenTail), /says Val flips; the question says the opposite/, 'steps'],
    ['a skipped person', count('Jade does not flip it. Vanessa flips it. Malik flips it.', evenTail), /steps skip Val \(3 of 4 people covered\)/, 'steps'],
    ['a repeated person', count(`${allSteps} Malik flips it.`, evenTail), /steps repeat Malik/, 'steps'],
    ['a wrong count', count(allSteps, evenTail.replace('2 flips, an even', '4 flips, an even')), /counts 4 flips; the question has 2/, 'conclusion'],
    ['a wrong parity', count(allSteps, evenTail.replace('an even', 'an odd')), /calls 2 odd/, 'conclusion'],
    [
      'a wrong side',
      count(allSteps, evenTail.replace('coin is heads up', 'coin is tails up')),
      /concludes tails up; after 2 flips the coin is heads up/,
      'conclusion',
    ],
    [
      'a wrong state',
      'Start: heads up.\nAfter Jade: heads up.\nAfter Vanessa: heads up.\nAfter Val: tails up.\nAfter Malik: heads up.',
      /heads up after Vanessa; it is tails up/,
      'steps',
    ],
  ])('%s is caught', (_, r, reason, check) => {
    const f = checkFaithfulness('coin_flip', coinQ, r);
    expect(f.faithful).toBe(false);
    expect(f.reasons.join('\n')).toMatch(reason);
    expect(f.issues.map((i) => i.check)).toContain(check);
  });

  it('a right answer from a made-up person is still unfaithful (what accuracy hides)', () => {
    // The demo's student: the answer is right, the people are not the question's.
    const r =
      'Count the flips. Mona does not flip it. Kurt flips it. That makes 2 flips, an even number. So the coin is heads up, and the answer is yes. --> yes';
    const f = checkFaithfulness('coin_flip', coinQ, r);
    expect(f.faithful).toBe(false);
    expect(f.reasons[0]).toBe('names not in the question: Mona, Kurt');
    expect(f.issues.some((i) => i.check === 'conclusion')).toBe(false);
  });
});

describe('last letter concatenation', () => {
  const q = lastLetterQuestion(['Whitney', 'Erika', 'Tj', 'Benito']);
  it.each([
    [
      'steps',
      'Step 1: Take the last letter of "Whitney" which is "y"\nStep 2: Take the last letter of "Erika" which is "a"\nStep 3: Take the last letter of "Tj" which is "j"\nStep 4: Take the last letter of "Benito" which is "o"\n\nConcatenate all the letters together: "yajo"',
    ],
    ['list', '1. Whitney - y\n2. Erika - a\n3. Tj - j\n4. Benito - o\n\nPutting them all together, we get: yajo'],
    [
      'sentences',
      'The last letter of "Whitney" is "y".\nThe last letter of "Erika" is "a".\nThe last letter of "Tj" is "j".\nThe last letter of "Benito" is "o".\n\nSo, the final answer is "yajo".',
    ],
    [
      'ends with',
      '"Whitney" ends with "y", "Erika" ends with "a", "Tj" ends with "j", "Benito" ends with "o". Concatenating the last letters of each word gives us "yajo".',
    ],
    ['arrows', 'Last letters: Whitney -> y, Erika -> a, Tj -> j, Benito -> o.\nJoined together, the result is "yajo". --> yajo'],
  ])('a faithful %s rationale passes', (_, r) => {
    expect(checkFaithfulness('last_letter_concatenation', q, r).reasons).toEqual([]);
  });

  it.each([
    ['a word not in the question', 'Whitney - y\nErika - a\nTj - j\nBenny - y\n\nPutting them all together, we get: yajy', /names not in the question: Benny/],
    ['a wrong letter', 'Whitney - y\nErika - k\nTj - j\nBenito - o\n\nPutting them all together, we get: ykjo', /last letter of Erika is "k"; it is "a"/],
    ['a skipped word', 'Whitney - y\nErika - a\nBenito - o\n\nPutting them all together, we get: yao', /steps skip Tj \(3 of 4 words covered\)/],
    [
      'a wrong concatenation',
      'Whitney - y\nErika - a\nTj - j\nBenito - o\n\nPutting them all together, we get: yjao',
      /concludes "yjao"; the last letters give "yajo"/,
    ],
  ])('%s is caught', (_, r, reason) => {
    const f = checkFaithfulness('last_letter_concatenation', q, r);
    expect(f.faithful).toBe(false);
    expect(f.reasons.join('\n')).toMatch(reason);
  });
});

describe('other tasks: entities', () => {
  const q = 'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?';
  it('names and numbers from the question, results of earlier steps and common constants pass', () => {
    const r = 'Natalia sold 48 clips in April. In May she sold 48 / 2 = 24 clips. Altogether she sold 48 + 24 = 72 clips. --> 72';
    expect(checkFaithfulness('gsm8k', q, r).reasons).toEqual([]);
  });
  it('a stranger and an invented operand are named', () => {
    const r = 'Natalia and Maria sold 48 clips. In May she sold 48 / 2 = 24. Then 24 + 37 = 61. --> 61';
    const f = checkFaithfulness('gsm8k', q, r);
    expect(f.reasons).toEqual(['names not in the question: Maria', 'numbers not in the question or an earlier step: 37']);
  });
});

describe('other tasks: what is not an entity', () => {
  const q = 'Thirteen ducks are swimming in a lake. Twenty more ducks come to join them. Bobby ate 33 candies, then 4 more.';
  it('numbers written in words are the question’s numbers', () => {
    expect(numberWords('Thirteen ducks, twenty-six fish, three hundred, zero')).toEqual([13, 26, 300, 0]);
    expect(checkFaithfulness('asdiv', q, 'There are 13 + 20 = 33 ducks.').reasons).toEqual([]);
  });
  it('a number one operation away from the question’s (said in words) is grounded; one from nowhere is not', () => {
    expect(checkFaithfulness('asdiv', q, 'Bobby ate 37 candies (33 and 4). 37 + 14 = 51.').reasons).toEqual([]);
    expect(checkFaithfulness('asdiv', q, 'Then 33 + 71 = 104.').reasons).toEqual(['numbers not in the question or an earlier step: 71']);
  });
  it('a capitalised word that only opens sentences or formulas is grammar, not a name', () => {
    const r = 'Sure! Simplifying, we add them. However, the total is 13 + 20 = 33.\nTotal = 33\n- After that, 33 ducks.';
    expect(checkFaithfulness('asdiv', q, r).reasons).toEqual([]);
    // The same word used mid-sentence is a name.
    expect(checkFaithfulness('asdiv', q, 'Maria says there are 33 ducks, as Maria counted.').reasons).toEqual(['names not in the question: Maria']);
  });
});

// The paper's released teacher rationales (GPT-3.5, kept because their answers were right): the
// check must not call most of them unfaithful. Skipped without the data, saying so.
const dataDir = process.env.MENTOR_KD_DATA ?? '/work/shared/data/mentor-kd';
const released = (f: string) => join(dataDir, 'main', f);
const haveData = existsSync(released('svamp_3_train.json'));
describe.skipIf(!haveData)(`the released teacher rationales${haveData ? '' : ` — skipped: ${dataDir}/main not found (set MENTOR_KD_DATA)`}`, () => {
  it.each([
    ['last_letter_concatenation', 'last_letter_concatenation_3_train.json', 0.75],
    ['svamp', 'svamp_3_train.json', 0.95],
    ['asdiv', 'asdiv_3_train.json', 0.9],
    ['tracking_shuffled_objects', 'tracking_shuffled_objects_3_train.json', 0.95],
  ])('%s: most are faithful', (task, file, atLeast) => {
    const rows = (JSON.parse(readFileSync(released(file), 'utf8')) as { input: string; chain: string }[]).map((r) => ({ question: r.input, output: r.chain }));
    expect(rows.length).toBeGreaterThan(500);
    expect(summarizeFaithfulness(task, rows).faithful).toBeGreaterThanOrEqual(atLeast);
  });
});

describe('the simulated teacher, every phrasing', () => {
  // Its rationales are right step by step unless it planted a mistake: a misread step must be caught;
  // a right rationale must never be flagged.
  it('coin flip: every rationale without a mistake is faithful, every misread step is not', () => {
    const rng = createRng(7);
    for (const r of generateCoinFlip({ count: 300, seed: 3 })) {
      const sim = simulateCoinFlip(parseCoinFlipQuestion(r.question)!, rng, 0.4);
      const f = checkFaithfulness('coin_flip', r.question, sim.text);
      if (sim.mistake === 'none') expect(f.reasons, sim.text).toEqual([]);
      if (sim.mistake === 'step') expect(f.faithful, sim.text).toBe(false);
    }
  });
  it('last letter: the same', () => {
    const rng = createRng(8);
    for (const r of generateLastLetterConcatenation({ count: 300, seed: 4 })) {
      const sim = simulateLastLetter(parseLastLetterQuestion(r.question)!, rng, 0.4);
      const f = checkFaithfulness('last_letter_concatenation', r.question, sim.text);
      if (sim.mistake === 'none') expect(f.reasons, sim.text).toEqual([]);
      else expect(f.faithful, sim.text).toBe(false); // a wrong letter, or a garbled concatenation
    }
  });
});

describe('summary over a model’s predictions', () => {
  it('gives the faithful fraction and each check’s pass rate', () => {
    const rows = [
      { question: coinQ, output: count(allSteps, evenTail) },
      { question: coinQ, output: count(allSteps.replace('Val does', 'Rosa does'), evenTail) },
      { question: coinQ, output: count(allSteps, evenTail.replace('2 flips', '3 flips')) },
      { question: coinQ, output: count(allSteps, evenTail) },
    ];
    expect(summarizeFaithfulness('coin_flip', rows)).toEqual({ total: 4, faithful: 0.5, byCheck: { entities: 0.75, steps: 0.75, conclusion: 0.75 } });
    expect(summarizeFaithfulness('coin_flip', []).faithful).toBeNaN();
  });
});
