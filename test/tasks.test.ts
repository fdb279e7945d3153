import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  answersMatch,
  checkCleansing,
  coinFlipAnswer,
  extractAnswer,
  extractAnswerDetailed,
  extractCandidates,
  generateCoinFlip,
  generateLastLetterConcatenation,
  getTask,
  lastLetterAnswer,
  listTasks,
  loadGenericFile,
  loadGsm8kJsonl,
  loadMentorKdFile,
  loadTaskFile,
  loadTeacherOutputs,
  normalizeGold,
  parseCoinFlipQuestion,
  parseFieldMapping,
  parseLastLetterQuestion,
  TASK_NAMES,
  TaskDataError,
  taskOfReleaseFile,
} from '../lib/tasks/index.js';
import { registerTaskCommands } from '../lib/tasks/cli.js';
import { runCli } from './helpers/cli.js';

const fixture = (name: string): string => join(__dirname, 'fixtures', 'tasks', name);
const tmp = mkdtempSync(join(tmpdir(), 'mentor-kd-tasks-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('task registry', () => {
  it('has the nine tasks of the paper under the release names, and the generated arithmetic, each with its answer format', () => {
    expect([...TASK_NAMES]).toEqual([
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
    ]);
    const kinds = Object.fromEntries(listTasks().map((t) => [t.name, t.kind]));
    expect(kinds).toMatchObject({
      gsm8k: 'numeric',
      svamp: 'numeric',
      asdiv: 'numeric',
      commonsense_qa: 'choice',
      strategy_qa: 'yes_no',
      coin_flip: 'yes_no',
      last_letter_concatenation: 'free_text',
      multistep_arithmetic: 'numeric',
    });
    expect(getTask('commonsense_qa').choices).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(getTask('date_understanding').choices).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    expect(getTask('tracking_shuffled_objects').choices).toEqual(['A', 'B', 'C']);
    expect(getTask('gsm8k').answerTrigger).toBe('Therefore, the answer (arabic numerals) is');
  });

  it('rejects an unknown task name and lists the known ones', () => {
    expect(() => getTask('mnist')).toThrow(/unknown task "mnist".*gsm8k.*coin_flip/);
  });
});

describe('answer cleansing', () => {
  it('numbers: commas inside numbers go, last candidate of a chain, compared as floats', () => {
    expect(extractCandidates('He paid $1,200.50 for 3 items', 'gsm8k')).toEqual(['1200.5', '3']);
    expect(extractAnswer('First 2 + 3 = 5, then 5 x 4 = 20 apples.', 'svamp')).toBe('20');
    expect(extractAnswer('The balance is -7 dollars.', 'gsm8k')).toBe('-7');
    expect(answersMatch('25.0', '25', 'svamp')).toBe(true);
    expect(answersMatch('25.0000001', '25', 'svamp')).toBe(true);
    expect(answersMatch('25.01', '25', 'svamp')).toBe(false);
    expect(answersMatch(undefined, '25', 'svamp')).toBe(false);
    expect(normalizeGold('1,000', 'gsm8k')).toBe('1000');
  });

  it('prefers the first candidate after the last "-->" (the Mentor-KD target format)', () => {
    const d = extractAnswerDetailed('3 + 4 = 7, then 7 * 2 = 14 --> 14', 'gsm8k');
    expect(d).toEqual({ prediction: '14', candidates: ['14'], rule: 'arrow' });
    expect(extractAnswer('steps 1 --> 2 and more --> 5 (not 9)', 'gsm8k')).toBe('5');
    expect(extractAnswer('Bob swaps with Claire --> (B)', 'tracking_shuffled_objects')).toBe('B');
    expect(extractAnswer('y, a, j, c --> "y a j c"', 'last_letter_concatenation')).toBe('yajc');
    expect(extractAnswer('chain --> yes', 'strategy_qa')).toBe('yes');
  });

  it('answer-stage outputs take the first candidate; chains the last', () => {
    expect(extractAnswer(' 18. (She sold 9 pairs.)', 'gsm8k', { source: 'answer' })).toBe('18');
    expect(extractAnswer(' 18. (She sold 9 pairs.)', 'gsm8k', { source: 'chain' })).toBe('9');
    expect(extractAnswer(' A: Sam.', 'tracking_shuffled_objects', { source: 'answer' })).toBe('A');
  });

  it('letters: only standalone letters of the allowed set count, not the B of "Bob"', () => {
    expect(extractCandidates('Bob gives Alice the ball, so the answer is (C).', 'tracking_shuffled_objects')).toEqual(['C']);
    expect(extractAnswer('Either B or E, but E fits: E.', 'commonsense_qa')).toBe('E');
    expect(extractCandidates('The answer is F.', 'commonsense_qa')).toEqual([]); // F is not an option of CSQA
    expect(extractAnswer('The answer is F.', 'date_understanding')).toBe('F');
    expect(normalizeGold('A. ignore', 'commonsense_qa')).toBe('A');
    expect(normalizeGold('(B)', 'tracking_shuffled_objects')).toBe('B');
  });

  it('yes/no: lower-cased, punctuation stripped; booleans and true/false golds map to yes/no', () => {
    expect(extractCandidates('Yes, no... "Yes!" NO:', 'strategy_qa')).toEqual(['yes', 'no', 'yes', 'no']);
    expect(extractAnswer('The coin was flipped twice, so it is heads up. Yes.', 'coin_flip')).toBe('yes');
    expect(extractAnswer('Nobody knows.', 'strategy_qa')).toBeUndefined();
    expect(normalizeGold(true, 'strategy_qa')).toBe('yes');
    expect(normalizeGold('False', 'strategy_qa')).toBe('no');
    expect(normalizeGold('No.', 'coin_flip')).toBe('no');
    expect(() => normalizeGold(true, 'gsm8k')).toThrow(/gsm8k expects a numeric answer/);
  });

  it('last letters: whitespace, quotes and periods removed; answer statements, not steps, are candidates', () => {
    expect(extractAnswer(' "y a j o".', 'last_letter_concatenation', { source: 'answer' })).toBe('yajo');
    expect(extractAnswer(' wrong.', 'last_letter_concatenation', { source: 'answer' })).toBe('wrong');
    expect(extractAnswer('1. Lucky - y\n2. Kc - c\n\nPutting them all together, we get: yc', 'last_letter_concatenation')).toBe('yc');
    expect(extractAnswer('Penny - Y\nHarry - Y\n\nConcatenating: Y Y', 'last_letter_concatenation')).toBe('yy');
    expect(extractAnswer('we get "lley" as the final concatenated string.', 'last_letter_concatenation')).toBe('lley');
    expect(extractAnswer('The last letter of "Kc" is "c".\nSo we get: yc\n\nLet me know if you need anything else!', 'last_letter_concatenation')).toBe('yc');
    expect(extractAnswer('Step 2: Concatenate the last letters\n\nyead', 'last_letter_concatenation')).toBe('yead');
    expect(normalizeGold('yaeeA', 'last_letter_concatenation')).toBe('yaeea');
  });
});

describe('loaders', () => {
  it('reads the Mentor-KD release format with optional chain, completion, initial_correct', () => {
    const { records, skipped } = loadMentorKdFile(fixture('mentor_kd_good.json'));
    expect(skipped).toBe(0);
    expect(records).toHaveLength(4);
    expect(records[0]).toMatchObject({ id: 'mentor_kd_good.json#0', answer: '7', source: { index: 0 } });
    expect(records[0]!.chain).toBeUndefined();
    expect(records[2]).toMatchObject({ completion: ' 6.', initialCorrect: true });
    expect(records[3]!.initialCorrect).toBe(false);
  });

  it('a malformed record is an error naming file, index and field', () => {
    const file = fixture('mentor_kd_bad.json');
    expect(() => loadMentorKdFile(file)).toThrow(TaskDataError);
    expect(() => loadMentorKdFile(file)).toThrow(`${file} [index 2]: field "answer": must be a string, number or boolean, got an object`);
  });

  it('skips malformed records only when asked, and counts them', () => {
    const { records, skipped, issues } = loadMentorKdFile(fixture('mentor_kd_bad.json'), { onInvalid: 'skip' });
    expect(records.map((r) => r.answer)).toEqual(['1', '2']);
    expect(skipped).toBe(3);
    expect(issues[0]).toMatch(/\[index 2\]: field "answer"/);
    expect(issues[1]).toMatch(/\[index 3\]: field "input": missing/);
    expect(issues[2]).toMatch(/\[index 4\]: field "initial_correct": must be a boolean/);
  });

  it('invalid JSON names the line', () => {
    expect(() => loadMentorKdFile(fixture('not_json.json'))).toThrow(/not_json\.json:3: invalid JSON/);
  });

  it("GSM8K's JSONL: gold after ####, commas stripped, calculator annotations removed from the chain", () => {
    const { records } = loadGsm8kJsonl(fixture('gsm8k_good.jsonl'));
    expect(records.map((r) => r.answer)).toEqual(['72', '1250', '-2']);
    expect(records[0]!.chain).toBe('Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.');
    expect(records[1]!.source).toEqual({ file: fixture('gsm8k_good.jsonl'), line: 3 }); // blank line 2 is no record
    expect(loadTaskFile(fixture('gsm8k_good.jsonl')).records).toHaveLength(3); // detected as gsm8k
  });

  it('GSM8K errors name the line; skip mode counts every bad line', () => {
    const file = fixture('gsm8k_bad.jsonl');
    expect(() => loadGsm8kJsonl(file)).toThrow(`${file}:2: invalid JSON`);
    const { records, skipped, issues } = loadGsm8kJsonl(file, { onInvalid: 'skip' });
    expect(records.map((r) => r.answer)).toEqual(['2', '4']);
    expect(skipped).toBe(3);
    expect(issues[1]).toBe(`${file}:4: field "answer": does not end with "#### <number>"`);
    expect(issues[2]).toMatch(/:5: field "answer": final answer "five"/);
  });

  it('generic JSONL with dot-path field mapping', () => {
    const { records } = loadGenericFile(fixture('csqa_like.jsonl'), { fields: { question: 'question.stem', answer: 'answerKey', id: 'id' } });
    expect(records.map((r) => [r.id, r.answer])).toEqual([
      ['q1', 'A'],
      ['q2', 'C'],
    ]);
    expect(records[0]!.question).toMatch(/^Where do you keep money safe\?/);
  });

  it('generic JSON under a root key, boolean answers become yes/no', () => {
    const { records } = loadGenericFile(fixture('strategy_like.json'), { root: 'examples', fields: { question: 'q', answer: 'a', chain: 'facts', id: 'qid' } });
    expect(records.map((r) => [r.id, r.answer, r.chain])).toEqual([
      ['s1', 'no', 'Goldfish live in water.'],
      ['s2', 'yes', 'Yes, it is.'],
    ]);
    expect(() => loadGenericFile(fixture('strategy_like.json'), { fields: { question: 'q', answer: 'a' } })).toThrow(/expected a JSON array/);
    expect(() => loadGenericFile(fixture('strategy_like.json'), { root: 'examples', fields: { question: 'question', answer: 'a' } })).toThrow(
      /strategy_like\.json \[index 0\]: field "question": missing/,
    );
  });

  it('teacher outputs (prompt/{task}_6.json) load as question → completions', () => {
    const { entries } = loadTeacherOutputs(fixture('replay_6.json'));
    expect(entries.map((e) => e.outputs.length)).toEqual([3, 2, 0]);
    expect(entries[0]!.label).toBe('yajc');
  });

  it('a missing file is an error naming it', () => {
    expect(() => loadTaskFile(join(tmp, 'nope.json'))).toThrow(/nope\.json: cannot read/);
  });

  it('parses CLI field mappings', () => {
    expect(parseFieldMapping('question=q.stem,answer=a,chain=why')).toEqual({ question: 'q.stem', answer: 'a', chain: 'why' });
    expect(() => parseFieldMapping('question=q')).toThrow(/needs question= and answer=/);
    expect(() => parseFieldMapping('question=q,answer=a,colour=c')).toThrow(/unknown field "colour"/);
  });
});

describe('synthetic generators', () => {
  it('Last Letter Concatenation: the paper wording, 4 names, right answers, seeded', () => {
    const a = generateLastLetterConcatenation({ count: 50, seed: 7 });
    const b = generateLastLetterConcatenation({ count: 50, seed: 7 });
    const c = generateLastLetterConcatenation({ count: 50, seed: 8 });
    expect(a).toEqual(b);
    expect(a.map((r) => r.question)).not.toEqual(c.map((r) => r.question));
    for (const r of a) {
      expect(r.question).toMatch(/^Take the last letters of each words in "\S+ \S+ \S+ \S+" and concatenate them\.$/);
      const words = parseLastLetterQuestion(r.question)!;
      expect(words).toHaveLength(4);
      expect(new Set(words).size).toBe(4);
      expect(r.answer).toBe(lastLetterAnswer(words));
      expect(r.answer).toBe(words.map((w) => w.at(-1)).join(''));
    }
    expect(new Set(a.map((r) => r.id)).size).toBe(50);
  });

  it('Coin Flip: the paper wording, answers follow the parity of flips, both answers occur', () => {
    const qs = generateCoinFlip({ count: 200, seed: 3 });
    expect(generateCoinFlip({ count: 200, seed: 3 })).toEqual(qs);
    for (const r of qs) {
      expect(r.question).toMatch(
        /^A coin is heads up\. (\S+ (flips|does not flip) the coin\. ){4}Is the coin still heads up\? Note that "flip" here means "reverse"\.$/,
      );
      const steps = parseCoinFlipQuestion(r.question)!;
      expect(steps).toHaveLength(4);
      const flips = (r.question.match(/ flips the coin/g) ?? []).length;
      expect(r.answer).toBe(flips % 2 === 0 ? 'yes' : 'no');
      expect(coinFlipAnswer(steps)).toBe(r.answer);
    }
    const yes = qs.filter((r) => r.answer === 'yes').length;
    expect(yes).toBeGreaterThan(70);
    expect(yes).toBeLessThan(130);
  });

  it('rejects bad sizes', () => {
    expect(() => generateCoinFlip({ count: -1 })).toThrow(/count/);
    expect(() => generateLastLetterConcatenation({ count: 1, size: 0 })).toThrow(/size/);
  });
});

describe('cleansing agreement', () => {
  it('counts records judged correct, extracting from the completion when present, else the chain', () => {
    const { records } = loadMentorKdFile(fixture('labelled_check.json'));
    const report = checkCleansing(records, 'last_letter_concatenation');
    expect(report).toMatchObject({ checked: 4, agreed: 3, incorrectChecked: 1, incorrectAgreed: 1, ignored: 1 });
    expect(report.mismatches).toEqual([
      { id: 'labelled_check.json#3', where: `${fixture('labelled_check.json')} [index 3]`, extracted: 'cc', gold: 'cj', from: 'chain' },
    ]);
  });

  it('`mentor-kd tasks check FILE --task NAME` prints the agreement as its last line', async () => {
    const { stdout } = await runCli(registerTaskCommands, ['tasks', 'check', fixture('labelled_check.json'), '--task', 'last_letter_concatenation']);
    expect(stdout.at(-1)).toBe('agreement: 3/4');
    expect(stdout.join('\n')).toMatch(/mismatch .*\[index 3\]: extracted "cc" from chain, gold "cj"/);
  });

  it('tasks check on GSM8K solutions with --assume-correct, and on a generic file with --fields', async () => {
    const gsm = await runCli(registerTaskCommands, ['tasks', 'check', fixture('gsm8k_good.jsonl'), '--task', 'gsm8k', '--assume-correct']);
    expect(gsm.stdout.at(-1)).toBe('agreement: 3/3');
    const generic = await runCli(registerTaskCommands, [
      'tasks',
      'check',
      fixture('strategy_like.json'),
      '--task',
      'strategy_qa',
      '--root',
      'examples',
      '--fields',
      'question=q,answer=a,chain=facts',
      '--assume-correct',
    ]);
    expect(generic.stdout.at(-1)).toBe('agreement: 1/2'); // "Goldfish live in water." states no answer
  });

  it('tasks check fails on a malformed file, naming file and index, unless --skip-invalid', async () => {
    await expect(runCli(registerTaskCommands, ['tasks', 'check', fixture('mentor_kd_bad.json'), '--task', 'gsm8k'])).rejects.toThrow(
      /mentor_kd_bad\.json \[index 2\]/,
    );
    const { stdout } = await runCli(registerTaskCommands, ['tasks', 'check', fixture('mentor_kd_bad.json'), '--task', 'gsm8k', '--skip-invalid']);
    expect(stdout).toContain('records: 2, skipped as malformed: 3');
    expect(stdout.at(-1)).toBe('agreement: 1/1');
  });

  it('`tasks generate` writes a file the loaders read back', async () => {
    const out = join(tmp, 'coin.json');
    await runCli(registerTaskCommands, ['tasks', 'generate', '--task', 'coin_flip', '--count', '12', '--seed', '5', '--out', out]);
    const { records } = loadTaskFile(out);
    expect(records.map((r) => ({ question: r.question, answer: r.answer }))).toEqual(
      generateCoinFlip({ count: 12, seed: 5 }).map((r) => ({ question: r.question, answer: r.answer })),
    );
    expect(JSON.parse(readFileSync(out, 'utf8'))[0]).toHaveProperty('input');
  });

  it('release file names map to tasks', () => {
    expect(taskOfReleaseFile('asdiv_3_train.json')).toBe('asdiv');
    expect(taskOfReleaseFile('tracking_shuffled_objects_rand3_aug3.json')).toBe('tracking_shuffled_objects');
    expect(taskOfReleaseFile('commonsense_qa_test.json')).toBe('commonsense_qa');
    expect(taskOfReleaseFile('clean_last_letter_data.py')).toBeUndefined();
  });
});
