/**
 * Distilling step-by-step (Hsieh et al., "Distilling Step-by-Step! Outperforming Larger Language
 * Models with Less Training Data and Smaller Model Sizes", Findings of ACL 2023, arXiv 2305.02301):
 * rationale generation as a second task beside answering. Every (question, rationale) gives two
 * rows with task prefixes, drawn into the same batch:
 *
 *   `[label] {question}`     → `--> {answer}`   (the answer alone; the arrow keeps answer extraction one rule)
 *   `[rationale] {question}` → `{rationale}`
 *
 * and the loss is L = L_label + λ·L_rationale, each task's CE a mean over its own target tokens
 * (the authors' TaskPrefixTrainer: alpha·label_loss + (1 − alpha)·rationale_loss of two HF mean
 * losses; alpha = 1/(1+λ), so the paper's λ = 1 is their recommended alpha = 0.5). Here the means
 * are over the step's tokens of each task (all its micro-batches, not a mean of micro-batch means),
 * normalised by the weights' sum: L = (L_label + λ·L_rationale) / (1 + λ). At test time only the
 * label task runs: the question with the `[label]` prefix, answered without a rationale.
 */
import { collate, type CollatedBatch } from './batches.js';
import type { Seq2SeqExample, TokenizedExample } from './data.js';
import { targetTokens, type CollateRows, type RowObjective } from './example-groups.js';

export const STEP_BY_STEP_TASKS = ['label', 'rationale'] as const;
export type StepByStepTask = (typeof STEP_BY_STEP_TASKS)[number];

/** The source of a question for a task: `[label] {question}`. */
export const taskPrefixed = (task: StepByStepTask, question: string): string => `[${task}] ${question}`;

/** The label task's target: the answer after the Fine-tune-CoT arrow, with no rationale before it. */
export const labelTarget = (answer: string): string => `--> ${answer}`;

export interface RationaleExample {
  /** The question's id (rows of one rationale are grouped under `{id}#{k}`). */
  id: string;
  question: string;
  rationale: string;
  /** The answer as the target writes it (normalised gold). */
  answer: string;
}

/** The two task rows of every rationale, grouped so that they share a batch. */
export function stepByStepExamples(rationales: readonly RationaleExample[]): Seq2SeqExample[] {
  return rationales.flatMap((r, k) => {
    const group = `${r.id}#${k}`;
    return [
      { id: r.id, group, task: 'label', source: taskPrefixed('label', r.question), target: labelTarget(r.answer), answer: r.answer },
      { id: r.id, group, task: 'rationale', source: taskPrefixed('rationale', r.question), target: r.rationale, answer: r.answer },
    ];
  });
}

/** The per-task weights of step-by-step's loss: label 1, rationale λ. */
export function stepByStepTaskWeights(rationaleWeight: number): Record<StepByStepTask, number> {
  if (!(Number.isFinite(rationaleWeight) && rationaleWeight >= 0)) throw new Error(`rationale_weight must be a finite number >= 0, got ${rationaleWeight}`);
  return { label: 1, rationale: rationaleWeight };
}

/**
 * One micro-batch per task of a drawn batch; weigh() then gives each micro-batch of task t the CE
 * weight (w_t / Σw)·N / n_t, with n_t the step's target tokens of task t and N all of them: the
 * native step divides Σ weight·CE-sum by N, which leaves Σ_t (w_t / Σw)·mean_t. Σw runs over the
 * tasks present in the step.
 */
export function stepByStepObjective(padId: number, weights: Readonly<Record<string, number>>, collateRows: CollateRows = collate): RowObjective {
  for (const [task, w] of Object.entries(weights))
    if (!(Number.isFinite(w) && w >= 0)) throw new Error(`taskWeights.${task} must be a finite number >= 0, got ${w}`);
  return {
    collate(rows: readonly TokenizedExample[]): CollatedBatch[] {
      const byTask = new Map<string, TokenizedExample[]>();
      for (const r of rows) {
        const task = r.example.task;
        if (task === undefined || !Object.hasOwn(weights, task))
          throw new Error(
            `train: example ${r.index} has task ${JSON.stringify(task)}, but taskWeights weighs only ${Object.keys(weights).join(', ')} (every row needs one of them)`,
          );
        let list = byTask.get(task);
        if (!list) byTask.set(task, (list = []));
        list.push(r);
      }
      return [...byTask].map(([task, list]) => ({ ...collateRows(list, padId), task }));
    },
    weigh(batches: CollatedBatch[]): void {
      const perTask = new Map<string, number>();
      for (const b of batches) perTask.set(b.task!, (perTask.get(b.task!) ?? 0) + targetTokens(b));
      const total = [...perTask.values()].reduce((a, n) => a + n, 0);
      const weightSum = [...perTask.keys()].reduce((a, t) => a + weights[t]!, 0);
      for (const b of batches) {
        const n = perTask.get(b.task!)!;
        b.ceWeight = weightSum > 0 && n > 0 ? ((weights[b.task!]! / weightSum) * total) / n : 0;
      }
    },
  };
}
