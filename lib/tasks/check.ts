/**
 * Cleansing agreement: on labelled records (`initial_correct`), the answer extracted from the
 * answer stage (`completion`) when present, else from the `chain`, should equal the gold
 * answer exactly when the record says it was correct.
 */
import { answersMatch, extractAnswer, normalizeGold } from './cleansing.js';
import { describeSource, type TaskRecord } from './records.js';
import { resolveTask, type TaskName, type TaskSpec } from './registry.js';

export interface AgreementMismatch {
  id: string;
  where: string;
  extracted: string | undefined;
  gold: string;
  /** Which text the answer was extracted from. */
  from: 'completion' | 'chain';
}

export interface AgreementReport {
  task: TaskName;
  /** Records judged correct that have a chain or completion: N of "K/N". */
  checked: number;
  /** Of those, how many the cleanser agrees with: K of "K/N". */
  agreed: number;
  /** Records judged incorrect that have text, and of those how many the cleanser also rejects. */
  incorrectChecked: number;
  incorrectAgreed: number;
  /** Records with no judgement (and not assumed correct) or no text: not counted. */
  ignored: number;
  mismatches: AgreementMismatch[];
}

export interface AgreementOptions {
  /** Count records without `initial_correct` as correct (e.g. human-written GSM8K solutions). */
  assumeCorrect?: boolean;
  /** How many mismatches to keep for display; default 20. */
  keepMismatches?: number;
}

export function checkCleansing(records: readonly TaskRecord[], taskOrName: TaskSpec | string, options: AgreementOptions = {}): AgreementReport {
  const task = resolveTask(taskOrName);
  const keep = options.keepMismatches ?? 20;
  const report: AgreementReport = {
    task: task.name,
    checked: 0,
    agreed: 0,
    incorrectChecked: 0,
    incorrectAgreed: 0,
    ignored: 0,
    mismatches: [],
  };
  for (const r of records) {
    const judged = r.initialCorrect ?? (options.assumeCorrect ? true : undefined);
    const from = r.completion !== undefined ? 'completion' : r.chain !== undefined ? 'chain' : undefined;
    if (judged === undefined || from === undefined) {
      report.ignored++;
      continue;
    }
    const text = from === 'completion' ? r.completion! : r.chain!;
    const extracted = extractAnswer(text, task, { source: from === 'completion' ? 'answer' : 'chain' });
    const gold = normalizeGold(r.answer, task);
    const match = answersMatch(extracted, gold, task);
    if (judged) {
      report.checked++;
      if (match) report.agreed++;
      else if (report.mismatches.length < keep) {
        report.mismatches.push({ id: r.id, where: r.source ? describeSource(r.source) : r.id, extracted, gold, from });
      }
    } else {
      report.incorrectChecked++;
      if (!match) report.incorrectAgreed++;
    }
  }
  return report;
}

export function formatAgreement(report: AgreementReport): string {
  return `agreement: ${report.agreed}/${report.checked}`;
}
