/**
 * Walks a copy of the Mentor-KD data release (main/, aug/*, skeleton/) and measures cleansing
 * agreement per file and per task, so the cleanser can be checked against the authors' own
 * `initial_correct` labels.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { checkCleansing, type AgreementReport } from './check.js';
import { normalizeGold } from './cleansing.js';
import { loadMentorKdFile } from './loaders.js';
import { isTaskName, TASK_NAMES, type TaskName } from './registry.js';

export interface ReleaseFileAgreement extends AgreementReport {
  file: string;
  records: number;
}

export interface ReleaseTaskAgreement {
  task: TaskName;
  files: ReleaseFileAgreement[];
  checked: number;
  agreed: number;
  incorrectChecked: number;
  incorrectAgreed: number;
  /** Gold answers (all files of the task) that normalise into the task's answer format. */
  goldWellFormed: number;
  goldTotal: number;
}

const FILE_PATTERN = /^(.+?)_(?:\d+_train|train|test|rand\d+_aug\d+)\.json$/;

/** The task a release file belongs to, from its name ("asdiv_3_train.json" → asdiv). */
export function taskOfReleaseFile(name: string): TaskName | undefined {
  const m = FILE_PATTERN.exec(name);
  return m && isTaskName(m[1]!) ? m[1] : undefined;
}

function releaseFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) {
        if (name !== 'prompt') walk(path); // prompt/ holds raw teacher outputs, not records
      } else if (taskOfReleaseFile(name)) out.push(path);
    }
  };
  walk(dir);
  return out;
}

function goldWellFormed(answer: string, task: TaskName): boolean {
  const gold = normalizeGold(answer, task);
  switch (task) {
    case 'gsm8k':
    case 'asdiv':
    case 'svamp':
    case 'multistep_arithmetic':
      return /^-?\d+(?:\.\d+)?$/.test(gold) || /^-?\d+e[+-]?\d+$/.test(gold);
    case 'commonsense_qa':
      return /^[A-E]$/.test(gold);
    case 'date_understanding':
      return /^[A-F]$/.test(gold);
    case 'tracking_shuffled_objects':
      return /^[A-C]$/.test(gold);
    case 'strategy_qa':
    case 'coin_flip':
      return gold === 'yes' || gold === 'no';
    case 'last_letter_concatenation':
      return /^\p{L}+$/u.test(gold);
  }
}

/** Agreement for every task with files under `dir`, in registry order. */
export function scanMentorKdRelease(dir: string): ReleaseTaskAgreement[] {
  if (!existsSync(dir)) throw new Error(`no such folder: ${dir}`);
  const byTask = new Map<TaskName, ReleaseTaskAgreement>();
  for (const path of releaseFiles(dir)) {
    const task = taskOfReleaseFile(path.split('/').pop()!)!;
    const { records } = loadMentorKdFile(path);
    const report = checkCleansing(records, task, { keepMismatches: 5 });
    let entry = byTask.get(task);
    if (!entry) {
      entry = { task, files: [], checked: 0, agreed: 0, incorrectChecked: 0, incorrectAgreed: 0, goldWellFormed: 0, goldTotal: 0 };
      byTask.set(task, entry);
    }
    entry.files.push({ ...report, file: relative(dir, path), records: records.length });
    entry.checked += report.checked;
    entry.agreed += report.agreed;
    entry.incorrectChecked += report.incorrectChecked;
    entry.incorrectAgreed += report.incorrectAgreed;
    for (const r of records) {
      entry.goldTotal++;
      if (goldWellFormed(r.answer, task)) entry.goldWellFormed++;
    }
  }
  return TASK_NAMES.filter((t) => byTask.has(t)).map((t) => byTask.get(t)!);
}

/** A plain-text table of the scan, one line per file and a total per task. */
export function formatReleaseAgreement(tasks: readonly ReleaseTaskAgreement[]): string {
  const lines: string[] = [];
  const pct = (k: number, n: number): string => (n ? `${((100 * k) / n).toFixed(1)}%` : '-');
  for (const t of tasks) {
    lines.push(
      `${t.task}: agreement ${t.agreed}/${t.checked} (${pct(t.agreed, t.checked)}); ` +
        `judged-incorrect also rejected ${t.incorrectAgreed}/${t.incorrectChecked}; ` +
        `gold answers well-formed ${t.goldWellFormed}/${t.goldTotal}`,
    );
    for (const f of t.files) {
      if (f.checked + f.incorrectChecked === 0) {
        lines.push(`  ${f.file}: ${f.records} records, none labelled`);
        continue;
      }
      lines.push(
        `  ${f.file}: agreement ${f.agreed}/${f.checked} (${pct(f.agreed, f.checked)})` +
          (f.incorrectChecked ? `, incorrect rejected ${f.incorrectAgreed}/${f.incorrectChecked}` : ''),
      );
    }
  }
  return lines.join('\n');
}
