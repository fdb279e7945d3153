/**
 * The words a task's answers are spelt from, and the answers themselves: Last Letter's answer is
 * made of the last letters of the names its question quotes. A tokenizer built for a from-scratch
 * model writes these letter by letter (lib/model/tokenizer.ts, `spell`): were a name one token, the
 * model could not read its last letter, only memorise it, and were an answer one token ("eaya"
 * repeats in its own target, so it becomes a piece), it would have to memorise the combination
 * instead of writing its letters (docs/experiments.md, "Last Letter at demo scale").
 */
import type { TaskRecord } from './records.js';
import type { TaskName } from './registry.js';
import { parseLastLetterQuestion } from './synthetic.js';

/** The distinct words and answers to spell, in first-seen order; none for a task that spells nothing. */
export function wordsToSpell(task: TaskName, records: Iterable<Pick<TaskRecord, 'question' | 'answer'>>): string[] {
  if (task !== 'last_letter_concatenation') return [];
  const words = new Set<string>();
  for (const r of records) {
    for (const w of parseLastLetterQuestion(r.question) ?? []) words.add(w);
    for (const w of String(r.answer).match(/\p{L}+/gu) ?? []) words.add(w);
  }
  return [...words];
}
