/**
 * Cleansing agreement on every task of the Mentor-KD data release:
 *   npx tsx scripts/check-cleansing.ts [DIR]     (default $MENTOR_KD_DATA or /work/shared/data/mentor-kd)
 * For each labelled record judged correct, the answer extracted from its answer stage
 * (`completion`) when present, else its `chain`, must equal the gold answer.
 */
import { existsSync } from 'node:fs';
import { formatReleaseAgreement, scanMentorKdRelease } from '../lib/tasks/release.js';

const dir = process.argv[2] ?? process.env.MENTOR_KD_DATA ?? '/work/shared/data/mentor-kd';
if (!existsSync(dir)) {
  console.error(`no data at ${dir}: pass the folder of the Mentor-KD release (github 2hojae/mentor-kd, data/)`);
  process.exit(2);
}
const tasks = scanMentorKdRelease(dir);
console.log(formatReleaseAgreement(tasks));
const checked = tasks.reduce((s, t) => s + t.checked, 0);
const agreed = tasks.reduce((s, t) => s + t.agreed, 0);
console.log(`agreement: ${agreed}/${checked}`);
