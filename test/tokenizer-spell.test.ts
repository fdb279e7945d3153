/**
 * The demo tokenizer's spelt words (buildT5Tokenizer `spell`, lib/tasks/spelling.ts): Last Letter's
 * names and answers are written letter by letter wherever they appear, so a from-scratch model can
 * read the letters its answer is made of; other words and other tasks keep their whole pieces.
 */
import { describe, expect, it } from 'vitest';
import { buildT5Tokenizer, type Tokenizer } from '../lib/model/tokenizer.js';
import { generateCoinFlip, generateLastLetterConcatenation } from '../lib/tasks/synthetic.js';
import { wordsToSpell } from '../lib/tasks/spelling.js';

const pieces = (tok: Tokenizer, text: string) => {
  const vocab = (tok.json.model as { vocab: [string, number][] }).vocab;
  return tok.encode(text, { addSpecialTokens: false }).map((id) => vocab[id]![0]);
};

// Names and an answer repeated often enough (minCount 2) to become whole pieces when not spelt.
const corpus = [
  'Take the last letters of each words in "Abby Luis" and concatenate them.',
  'Take the last letters of each words in "Luis Abby" and concatenate them.',
  ' The last letter of "Abby" is "y". The last letter of "Luis" is "s". So the answer is "ys". --> ys',
  ' The last letter of "Luis" is "s". The last letter of "Abby" is "y". So the answer is "sy". --> sy',
  ' Last letters: Abby -> y, Luis -> s. Joined together, the result is ys --> ys',
];

describe('buildT5Tokenizer spell', () => {
  it('writes a spelt word letter by letter, with or without punctuation around it', () => {
    const plain = buildT5Tokenizer(corpus, { vocabSize: 200 });
    expect(pieces(plain, '"Abby"')).toEqual(['\u2581"Abby"']);
    expect(pieces(plain, 'ys')).toEqual(['\u2581ys']);
    const tok = buildT5Tokenizer(corpus, { vocabSize: 200, spell: ['Abby', 'Luis', 'ys', 'sy'] });
    expect(pieces(tok, 'Abby')).toEqual(['\u2581', 'A', 'b', 'b', 'y']);
    expect(pieces(tok, '"Abby"')).toEqual(['\u2581', '"', 'A', 'b', 'b', 'y', '"']);
    expect(pieces(tok, 'Luis ->')).toEqual(['\u2581', 'L', 'u', 'i', 's', '\u2581->']);
    expect(pieces(tok, '--> ys')).toEqual(['\u2581-->', '\u2581', 'y', 's']);
    // Words not spelt keep their whole pieces.
    expect(pieces(tok, 'the last letter')).toEqual(['\u2581the', '\u2581last', '\u2581letter']);
    for (const w of ['\u2581Abby', '\u2581"Abby"', '\u2581"Abby"', '\u2581Luis', '\u2581ys', '\u2581"ys".']) expect(tok.tokenToId(w)).toBeUndefined();
  });

  it('round-trips text and is deterministic', () => {
    const spell = ['Abby', 'Luis', 'ys', 'sy'];
    const a = buildT5Tokenizer(corpus, { vocabSize: 200, spell });
    const b = buildT5Tokenizer(corpus, { vocabSize: 200, spell: [...spell].reverse() });
    expect(b.json).toEqual(a.json);
    for (const text of corpus.map((t) => t.trim())) expect(a.decode(a.encode(text))).toBe(text);
    // A name never seen is letters too (every letter is in the vocabulary: no <unk>).
    const ids = a.encode('"Luba"', { addSpecialTokens: false });
    expect(ids).not.toContain(2);
    expect(a.decode(ids)).toBe('"Luba"');
  });

  it('an empty spell list builds the tokenizer it builds without one', () => {
    expect(buildT5Tokenizer(corpus, { vocabSize: 200, spell: [] }).json).toEqual(buildT5Tokenizer(corpus, { vocabSize: 200 }).json);
  });
});

describe('wordsToSpell', () => {
  it("Last Letter: the questions' words and the answers, distinct, in first-seen order", () => {
    const records = generateLastLetterConcatenation({ count: 3, seed: 1 });
    const words = wordsToSpell('last_letter_concatenation', records);
    const expected = [...new Set(records.flatMap((r) => [.../"([^"]+)"/.exec(r.question)![1]!.split(' '), r.answer]))];
    expect(words).toEqual(expected);
    expect(
      wordsToSpell('last_letter_concatenation', [{ question: 'Take the last letters of each words in "Whitney Erika" and concatenate them.', answer: 'ya' }]),
    ).toEqual(['Whitney', 'Erika', 'ya']);
  });

  it('spells nothing for other tasks, or a question it cannot parse', () => {
    expect(wordsToSpell('coin_flip', generateCoinFlip({ count: 5, seed: 0 }))).toEqual([]);
    expect(wordsToSpell('gsm8k', [{ question: 'How many?', answer: '3' }])).toEqual([]);
    expect(wordsToSpell('last_letter_concatenation', [{ question: 'Spell "Abby".', answer: '' }])).toEqual([]);
  });

  it('a Last Letter tokenizer spells every name of its data, and keeps the template words whole', () => {
    const records = generateLastLetterConcatenation({ count: 200, seed: 0 });
    const tok = buildT5Tokenizer(
      records.map((r) => r.question),
      { vocabSize: 400, spell: wordsToSpell('last_letter_concatenation', records) },
    );
    for (const r of records.slice(0, 20)) {
      const names = /"([^"]+)"/.exec(r.question)![1]!.split(' ');
      for (const name of names) expect(pieces(tok, name)).toEqual(['\u2581', ...name]);
      expect(tok.decode(tok.encode(r.question))).toBe(r.question);
    }
    expect(pieces(tok, 'Take the last letters')).toEqual(['\u2581Take', '\u2581the', '\u2581last', '\u2581letters']);
  });
});
