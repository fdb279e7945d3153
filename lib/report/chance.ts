/**
 * The chance line of a task: what a model that ignores the question scores. Two baselines, the
 * higher is the line: always answering the training set's most frequent answer (majority class,
 * scored on the test set), and a uniformly random valid answer (1/2 for yes/no, 1/k for k options;
 * none for free-text and numeric answers, whose answer space is open).
 */
import { normalizeGold } from '../tasks/cleansing.js';
import { getTask } from '../tasks/registry.js';

export interface ChanceLine {
  accuracy: number;
  /** e.g. `majority class ("no")` or `random answer (1 of 5)`. */
  label: string;
  majority: { answer: string; accuracy: number } | null;
  random: number | null;
}

export function chanceLine(task: string, train: readonly { answer: string }[], test: readonly { answer: string }[]): ChanceLine | null {
  const spec = getTask(task);
  const norm = (a: string) => {
    try {
      return normalizeGold(a, spec);
    } catch {
      return a.trim().toLowerCase();
    }
  };
  const counts = new Map<string, number>();
  for (const r of train) counts.set(norm(r.answer), (counts.get(norm(r.answer)) ?? 0) + 1);
  // Ties go to the alphabetically first answer, so the line does not depend on record order.
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  const majority = top && test.length ? { answer: top[0], accuracy: test.filter((r) => norm(r.answer) === top[0]).length / test.length } : null;
  const k = spec.kind === 'yes_no' ? 2 : spec.kind === 'choice' ? (spec.choices?.length ?? 0) : 0;
  const random = k > 0 ? 1 / k : null;
  if (!majority && random === null) return null;
  if (majority && (random === null || majority.accuracy >= random)) {
    return { accuracy: majority.accuracy, label: `majority class ("${majority.answer}")`, majority, random };
  }
  return { accuracy: random!, label: `random answer (1 of ${k})`, majority, random };
}
