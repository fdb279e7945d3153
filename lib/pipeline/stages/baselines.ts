/**
 * The paper's baselines as student modes (docs/experiments.md, "The paper's baselines"): what
 * each trains on, the loss options train() takes for it, and how its stage is named and keyed.
 *
 * - `step-by-step` (Hsieh et al. 2023; lib/train/step-by-step.ts): the teacher's kept rationales,
 *   each as a `[label]` row (answer only) and a `[rationale]` row (rationale only); tested on the
 *   `[label]` task, answering without a rationale.
 * - `mcc-kd` (Chen et al. 2023; lib/train/mcc-kd.ts): `rationales_per_question` distinct
 *   rationales for every question the teacher answered correctly at least once — its kept
 *   rationales first, then the mentor's kept augmentations (the paper samples them all from the
 *   teacher; here the teacher gives teacher.samples per question and the mentor fills the rest) —
 *   in the Fine-tune-CoT target, grouped so a question's rationales share a batch.
 */
import { MCC_KD_DEFAULTS, STEP_BY_STEP_DEFAULTS, type RunConfig } from '../../config/schema.js';
import { normalizeGold } from '../../tasks/cleansing.js';
import type { TaskRecord } from '../../tasks/records.js';
import type { Seq2SeqExample } from '../../train/index.js';
import { stepByStepExamples, stepByStepTaskWeights, taskPrefixed } from '../../train/step-by-step.js';
import type { RowObjectiveOptions } from '../../train/row-objective.js';
import { splitTarget } from '../generation.js';
import type { AugmentOutput } from './augment.js';
import type { FilteredRationale } from './filter.js';
import { target } from './shared.js';

export const BASELINE_MODES = ['step-by-step', 'mcc-kd'] as const;
export type BaselineMode = (typeof BASELINE_MODES)[number];

export const isBaselineMode = (mode: string): mode is BaselineMode => (BASELINE_MODES as readonly string[]).includes(mode);

export interface BaselineData {
  train: Seq2SeqExample[];
  dev: Seq2SeqExample[];
  /** train()'s loss options for the mode. */
  options: RowObjectiveOptions;
  /** The stage name's suffix for the mode's settings: `-rw0.5`, `-k3-a0.1`. */
  tag: string;
  /** What the mode adds to the student's stage key. */
  key: Record<string, unknown>;
  /** Appended to the student's label when its settings are not the defaults: ` [consistency_weight 0]`. */
  labelNote: string;
  /** What test questions are prefixed with ('' for none): step-by-step answers as the `[label]` task. */
  questionPrefix: string;
}

export function baselineData(
  mode: BaselineMode,
  c: RunConfig,
  kept: readonly FilteredRationale[],
  augment: AugmentOutput,
  dev: readonly TaskRecord[],
): BaselineData {
  const gold = (answer: string) => normalizeGold(answer, c.task);
  if (mode === 'step-by-step') {
    const w = c.student.stepByStep.rationale_weight;
    const prefix = taskPrefixed('label', '');
    return {
      train: stepByStepExamples(kept.map((k) => ({ id: k.questionId, question: k.question, rationale: k.rationale, answer: gold(k.answer) }))),
      dev: dev.map((r) => ({ id: r.id, source: prefix + r.question, target: r.answer, answer: r.answer })),
      options: { taskWeights: stepByStepTaskWeights(w) },
      tag: w === STEP_BY_STEP_DEFAULTS.rationale_weight ? '' : `-rw${w}`,
      key: { stepByStep: c.student.stepByStep },
      labelNote: w === STEP_BY_STEP_DEFAULTS.rationale_weight ? '' : ` [rationale_weight ${w}]`,
      questionPrefix: prefix,
    };
  }
  const { rationales_per_question: k, consistency_weight: alpha } = c.student.mccKd;
  return {
    train: mccKdExamples(kept, augment, k, gold),
    dev: dev.map((r) => ({ id: r.id, source: r.question, target: r.answer, answer: r.answer })),
    options: { consistency: { weight: alpha } },
    tag: `-k${k}-a${alpha}`,
    key: { mccKd: c.student.mccKd, augment: augment.manifest.key },
    labelNote:
      k === MCC_KD_DEFAULTS.rationales_per_question && alpha === MCC_KD_DEFAULTS.consistency_weight
        ? ''
        : ` [${k} rationales per question, consistency_weight ${alpha}]`,
    questionPrefix: '',
  };
}

/** Up to `perQuestion` distinct rationales per question with a kept teacher rationale: the teacher's, then the mentor's. */
export function mccKdExamples(
  kept: readonly FilteredRationale[],
  augment: Pick<AugmentOutput, 'keptRows'>,
  perQuestion: number,
  gold: (answer: string) => string,
): Seq2SeqExample[] {
  const byQuestion = new Map<string, { question: string; answer: string; rationales: string[] }>();
  for (const k of kept) {
    let q = byQuestion.get(k.questionId);
    if (!q) byQuestion.set(k.questionId, (q = { question: k.question, answer: k.answer, rationales: [] }));
    if (q.rationales.length < perQuestion && !q.rationales.includes(k.rationale)) q.rationales.push(k.rationale);
  }
  for (const r of augment.keptRows) {
    const q = byQuestion.get(r.id);
    const rationale = splitTarget(r.output).rationale;
    if (q && q.rationales.length < perQuestion && rationale && !q.rationales.includes(rationale)) q.rationales.push(rationale);
  }
  return [...byQuestion].flatMap(([id, q]) => {
    const answer = gold(q.answer);
    return q.rationales.map((rationale) => ({
      id,
      group: id,
      source: q.question,
      target: target(rationale, answer),
      answer: q.answer,
      consistencyAnswer: answer,
    }));
  });
}
