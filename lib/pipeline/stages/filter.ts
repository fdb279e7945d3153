/**
 * Stage `filter`: keeps the teacher rationales whose extracted answer equals the gold one. After
 * the stage, low-resource runs keep a seeded fraction of the teacher's questions (with all their
 * rationales): that choice depends on student.teacherFraction, so it is not part of the stage's key.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, hashSeed } from '../../tasks/random.js';
import type { TeacherSample } from '../../teacher/collector.js';
import type { CollectOutput } from './collect.js';
import { outcome, type StageContext, type StageOutcome } from './context.js';

export interface FilteredRationale {
  questionId: string;
  question: string;
  answer: string;
  rationale: string;
}

export interface FilterInput {
  collect: CollectOutput;
}

export interface FilterSummary {
  total: number;
  kept: number;
  questionsWithCorrect: number;
  questionsWithoutCorrect: number;
}

export interface FilterOutput extends StageOutcome<FilterSummary> {
  /** Every correct teacher rationale. */
  keptAll: FilteredRationale[];
  /** Those of the questions in the teacher-data fraction. */
  kept: FilteredRationale[];
  /** Questions the teacher answered wrongly in every sample. */
  teacherFailed: Set<string>;
}

/** Keeps the correct samples; returns the kept ones and the questions with none. */
export function filterSamples(samples: readonly TeacherSample[]): { kept: FilteredRationale[]; questionsWithoutCorrect: string[] } {
  const byQuestion = new Map<string, boolean>();
  const kept: FilteredRationale[] = [];
  for (const s of samples) {
    byQuestion.set(s.questionId, (byQuestion.get(s.questionId) ?? false) || s.correct);
    if (s.correct) kept.push({ questionId: s.questionId, question: s.question, answer: s.gold, rationale: s.rationale.trim() });
  }
  return { kept, questionsWithoutCorrect: [...byQuestion].filter(([, ok]) => !ok).map(([id]) => id) };
}

/** A seeded subset of `fraction` of the items (at least one), in their order. */
export function subsample<T>(items: readonly T[], fraction: number, seed: number, salt: string): T[] {
  if (fraction >= 1) return [...items];
  const rng = createRng(hashSeed(seed, salt));
  const idx = items.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const keep = new Set(idx.slice(0, Math.max(1, Math.round(items.length * fraction))));
  return items.filter((_, i) => keep.has(i));
}

export async function filterStage(ctx: StageContext, input: FilterInput): Promise<FilterOutput> {
  const c = ctx.config;
  const run = await ctx.run.stage('filter', { collect: input.collect.manifest.key }, async (dir): Promise<FilterSummary> => {
    const samples = JSON.parse(readFileSync(join(input.collect.dir, 'samples.json'), 'utf8')) as TeacherSample[];
    const { kept, questionsWithoutCorrect } = filterSamples(samples);
    writeFileSync(join(dir, 'kept.json'), JSON.stringify(kept));
    writeFileSync(join(dir, 'questions-without-correct.json'), JSON.stringify(questionsWithoutCorrect));
    return {
      total: samples.length,
      kept: kept.length,
      questionsWithCorrect: new Set(kept.map((k) => k.questionId)).size,
      questionsWithoutCorrect: questionsWithoutCorrect.length,
    };
  });
  const f = run.manifest.summary;
  const keptAll = JSON.parse(readFileSync(join(run.dir, 'kept.json'), 'utf8')) as FilteredRationale[];
  const teacherFailed = new Set(JSON.parse(readFileSync(join(run.dir, 'questions-without-correct.json'), 'utf8')) as string[]);
  const teacherQuestions = new Set(subsample([...new Set(keptAll.map((k) => k.questionId))], c.student.teacherFraction, c.seed, 'teacher-fraction'));
  const line = `${c.task}: kept ${f.kept}/${f.total} teacher rationales (${f.questionsWithCorrect} questions with at least one correct, ${f.questionsWithoutCorrect} with none)`;
  return { ...outcome('filter', run, line), keptAll, kept: keptAll.filter((k) => teacherQuestions.has(k.questionId)), teacherFailed };
}
