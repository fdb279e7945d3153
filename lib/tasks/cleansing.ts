/**
 * Answer cleansing as Fine-tune-CoT does it (Ho et al. 2023, `Evaluator`), per answer kind:
 * find every string in the text that fits the task's answer format ("candidates"), then take
 * the first candidate after the last `-->` when the text has one (the Mentor-KD target format
 * "{chain} --> {answer}"), the first candidate of an answer-stage output (Zero-shot-CoT's
 * second stage answers right away), and otherwise the last candidate of a rationale
 * (rationales end with their conclusion).
 */
import { resolveTask, type TaskSpec } from './registry.js';

/** What kind of text is being cleansed: a rationale or a second-stage answer. */
export type AnswerSource = 'chain' | 'answer';

export interface ExtractOptions {
  /** 'chain' (default): last candidate; 'answer': first candidate. `-->` wins over both. */
  source?: AnswerSource;
}

export interface Extraction {
  prediction: string | undefined;
  candidates: string[];
  /** Which rule picked the prediction. */
  rule: 'arrow' | 'first' | 'last' | 'none';
}

export const ANSWER_ARROW = '-->';

// Commas only inside digit groups ("1,234"), so a list "2,3" is not glued into 23 by accident
// of spacing while thousands separators still go.
const THOUSANDS_COMMA = /(?<=\d),(?=\d)/g;
const NUMBER = /-?\d+(?:\.\d+)?/g;
const YES_NO_PUNCTUATION = /["'“”‘’\n.\s:,;!?()[\]*]/g;
const FREE_TEXT_NOISE = /["'“”‘’\s.]/g;
const QUOTED = /"([^"\n]+)"|“([^”\n]+)”/g;
const FREE_TEXT_MARKER = /:|=|\b(?:is|get|gives(?: us)?)\b/g;
const HAS_QUOTED = /"[^"\n]+"|“[^”\n]+”/;

/** Canonical string for a number: "25.0" → "25", "1,200" → "1200", "0.50" → "0.5". */
export function canonicalNumber(text: string): string | undefined {
  const cleaned = text.replace(/,/g, '').trim();
  if (!/^-?\d+(?:\.\d+)?$/.test(cleaned)) return undefined;
  const value = Number(cleaned);
  if (!Number.isFinite(value)) return undefined;
  return String(value);
}

/** Last letters are compared case-blind, as the Mentor-KD authors' evaluator does ("YLYO" = "ylyo"). */
function cleanFreeText(text: string): string {
  return text.replace(FREE_TEXT_NOISE, '').toLowerCase();
}

function choicePattern(task: TaskSpec): RegExp {
  const set = (task.choices ?? []).join('');
  // A standalone option letter: "(B)", "B.", "B:", "answer is B" — not the B of "Bob".
  return new RegExp(`(?<![A-Za-z0-9])([${set}])(?![A-Za-z0-9'’])`, 'g');
}

/** Every substring of `text` that fits the task's answer format, in order, already cleaned. */
export function extractCandidates(text: string, taskOrName: TaskSpec | string): string[] {
  const task = resolveTask(taskOrName);
  switch (task.kind) {
    case 'numeric': {
      const found = text.replace(THOUSANDS_COMMA, '').match(NUMBER) ?? [];
      return found.map((s) => canonicalNumber(s) ?? s);
    }
    case 'choice':
      return [...text.matchAll(choicePattern(task))].map((m) => m[1]!);
    case 'yes_no':
      return text
        .toLowerCase()
        .replace(YES_NO_PUNCTUATION, ' ')
        .split(' ')
        .filter((w) => w === 'yes' || w === 'no');
    case 'free_text':
      return freeTextCandidates(text);
  }
}

/**
 * Free text has no format to search for, so candidates come from answer statements, line by
 * line: on a line with a marker (":", "=", "is", "get", "gives"), the first quoted string after
 * it (`we get "lley" as the string`), or the rest of the line (`we get: A L M E`); on a line
 * without one, its quoted strings, or the line itself when it is a single word. Other lines (a
 * closing pleasantry, "1. Lucky - y") add nothing.
 * With no candidate at all, the final word of the text.
 */
function freeTextCandidates(text: string): string[] {
  const candidates: string[] = [];
  for (const line of text.split('\n')) {
    const quotes = [...line.matchAll(QUOTED)].map((m) => ({ at: m.index, content: cleanFreeText(m[1] ?? m[2] ?? '') }));
    const markers = [...line.matchAll(FREE_TEXT_MARKER)].map((m) => m.index + m[0].length);
    // The last marker that still has a quote after it, else the last marker.
    const marker = markers.filter((end) => quotes.some((q) => q.at >= end)).pop() ?? markers.pop();
    if (marker !== undefined) {
      const quoted = quotes.find((q) => q.at >= marker);
      const rest = quoted ? quoted.content : cleanFreeText(line.slice(marker));
      if (rest) candidates.push(rest);
    } else if (quotes.length > 0) {
      for (const q of quotes) if (q.content) candidates.push(q.content);
    } else if (/^\s*\S+\s*$/.test(line)) {
      // A bare word on a line of its own, under "Concatenate the last letters:".
      const word = cleanFreeText(line);
      if (word) candidates.push(word);
    }
  }
  if (candidates.length === 0) {
    const finalWord = /(\S+)\s*$/.exec(text);
    const word = finalWord ? cleanFreeText(finalWord[1]!) : '';
    if (word) candidates.push(word);
  }
  return candidates;
}

/** The single answer a text commits to, with the candidates it was chosen from. */
export function extractAnswerDetailed(text: string, taskOrName: TaskSpec | string, options: ExtractOptions = {}): Extraction {
  const task = resolveTask(taskOrName);
  const arrow = text.lastIndexOf(ANSWER_ARROW);
  if (arrow !== -1) {
    const tail = text.slice(arrow + ANSWER_ARROW.length);
    // After the arrow there is nothing but the answer: for free text that is the whole tail.
    const candidates = task.kind === 'free_text' && !HAS_QUOTED.test(tail) ? [cleanFreeText(tail)].filter(Boolean) : extractCandidates(tail, task);
    return { prediction: candidates[0], candidates, rule: candidates.length ? 'arrow' : 'none' };
  }
  if ((options.source ?? 'chain') === 'answer') {
    // The answer stage is short and answers first; for free text that is the whole output
    // (Fine-tune-CoT) unless it quotes the answer.
    const candidates = task.kind === 'free_text' && !HAS_QUOTED.test(text) ? [cleanFreeText(text)].filter(Boolean) : extractCandidates(text, task);
    return { prediction: candidates[0], candidates, rule: candidates.length ? 'first' : 'none' };
  }
  const candidates = extractCandidates(text, task);
  return { prediction: candidates[candidates.length - 1], candidates, rule: candidates.length ? 'last' : 'none' };
}

export function extractAnswer(text: string, task: TaskSpec | string, options: ExtractOptions = {}): string | undefined {
  return extractAnswerDetailed(text, task, options).prediction;
}

/**
 * A gold answer in the form predictions are extracted in: "1,200" → "1200",
 * "A. ignore" → "A", true / "Yes." → "yes", `"y a j c"` → "yajc".
 */
export function normalizeGold(answer: string | number | boolean, taskOrName: TaskSpec | string): string {
  const task = resolveTask(taskOrName);
  if (typeof answer === 'boolean') {
    if (task.kind !== 'yes_no') throw new Error(`task ${task.name} expects a ${task.kind} answer, got a boolean`);
    return answer ? 'yes' : 'no';
  }
  const text = String(answer);
  switch (task.kind) {
    case 'numeric':
      return canonicalNumber(text) ?? text.trim();
    case 'choice': {
      const m = /^\s*\(?([A-Za-z])\)?(?:[.:)\s]|$)/.exec(text);
      return m ? m[1]!.toUpperCase() : text.trim();
    }
    case 'yes_no': {
      const word = text.toLowerCase().replace(YES_NO_PUNCTUATION, ' ').trim();
      if (word === 'true') return 'yes';
      if (word === 'false') return 'no';
      return word;
    }
    case 'free_text':
      return cleanFreeText(text);
  }
}

/** Numbers compare as floats within 1e-6; everything else as cleaned strings. */
export function answersMatch(prediction: string | undefined, gold: string, taskOrName: TaskSpec | string): boolean {
  if (prediction === undefined) return false;
  const task = resolveTask(taskOrName);
  if (task.kind === 'numeric') {
    const p = Number(canonicalNumber(prediction) ?? NaN);
    const g = Number(canonicalNumber(gold) ?? NaN);
    return Number.isFinite(p) && Number.isFinite(g) && Math.abs(p - g) <= 1e-6;
  }
  return prediction === gold;
}

/** Extract from `text` and compare with the (raw) gold answer. */
export function isCorrect(text: string, gold: string | number | boolean, task: TaskSpec | string, options: ExtractOptions = {}): boolean {
  return answersMatch(extractAnswer(text, task, options), normalizeGold(gold, task), task);
}
