/**
 * Collected samples as files: the Mentor-KD release layout (`input`, `chain`, `completion`,
 * `answer`, `initial_correct`) plus `question_id`, `sample_index` and `prediction`, so the
 * output loads with the task loaders and checks with `mentor-kd tasks check`.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { TaskRecord } from '../tasks/records.js';
import type { TeacherSample } from './collector.js';

export function sampleToRow(s: TeacherSample): Record<string, unknown> {
  return {
    input: s.question,
    chain: s.rationale,
    completion: s.answerText,
    answer: s.gold,
    initial_correct: s.correct,
    prediction: s.prediction ?? null,
    question_id: s.questionId,
    sample_index: s.sampleIndex,
  };
}

export function sampleToRecord(s: TeacherSample): TaskRecord {
  return {
    id: `${s.questionId}/${s.sampleIndex}`,
    question: s.question,
    answer: s.gold,
    chain: s.rationale,
    completion: s.answerText,
    initialCorrect: s.correct,
  };
}

/** JSON array, or JSONL when the path ends in .jsonl; written to a temp file then renamed (never half a file). */
export function writeSamples(path: string, samples: readonly TeacherSample[]): void {
  const rows = samples.map(sampleToRow);
  const text = extname(path).toLowerCase() === '.jsonl' ? rows.map((r) => `${JSON.stringify(r)}\n`).join('') : `${JSON.stringify(rows, null, 1)}\n`;
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
