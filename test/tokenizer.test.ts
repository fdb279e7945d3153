import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tokenizer, buildT5Tokenizer } from '../lib/model/tokenizer.js';

const corpus = [
  'Take the last letters of each words in "Elon Musk" and concatenate them.',
  'The last letter of "Elon" is "n". The last letter of "Musk" is "k". Concatenating them is "nk".',
  'A coin is heads up. Ka flips the coin. Is the coin still heads up?',
];

describe('Tokenizer', () => {
  it('builds a T5-style tokenizer that round-trips text and appends </s>', () => {
    const tok = buildT5Tokenizer(corpus, { vocabSize: 200, minCount: 1 });
    expect(tok.padId).toBe(0);
    expect(tok.eosId).toBe(1);
    const text = 'The last letter of "Musk" is "k".';
    const ids = tok.encode(text);
    expect(ids[ids.length - 1]).toBe(1);
    expect(ids.includes(2)).toBe(false); // no <unk>: every character is in the vocabulary
    expect(tok.decode(ids)).toBe(text);
    expect(tok.encode(text, { addSpecialTokens: false }).at(-1)).not.toBe(1);
    // Whole frequent words are single pieces.
    expect(tok.encode('the', { addSpecialTokens: false }).length).toBeLessThanOrEqual(3);
    const trunc = tok.encode(text, { maxLength: 4 });
    expect(trunc.length).toBe(4);
    expect(trunc[3]).toBe(1);
  });

  it('pads batches and saves/loads from a model directory', async () => {
    const tok = buildT5Tokenizer(corpus, { vocabSize: 200, minCount: 1 });
    const { inputIds, attentionMask } = tok.encodeBatch(['the coin', 'Take the last letters of each words in "Elon Musk" and concatenate them.']);
    expect(inputIds.shape[0]).toBe(2);
    const L = inputIds.shape[1]!;
    const firstLen = tok.encode('the coin').length;
    expect(firstLen).toBeLessThan(L);
    expect(Array.from(attentionMask.data.subarray(0, L))).toEqual(Array.from({ length: L }, (_, j) => (j < firstLen ? 1 : 0)));
    expect(inputIds.data[firstLen]).toBe(tok.padId);
    const dir = await mkdtemp(join(tmpdir(), 'mentor-kd-tok-'));
    await tok.save(dir);
    const again = await Tokenizer.load(dir);
    expect(again.encode('Elon Musk flips')).toEqual(tok.encode('Elon Musk flips'));
    await writeFile(join(dir, 'tokenizer.json'), '{bad');
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: not valid JSON/);
    await rm(dir, { recursive: true, force: true });
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: not found/);
  });
});
