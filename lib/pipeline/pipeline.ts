/**
 * The Mentor-KD pipeline: data → collect → filter → tokenizer → train-mentor → augment →
 * train-student (per mode) → evaluate → report. Every stage writes into the run directory and is
 * skipped on rerun when its inputs are unchanged; a killed stage resumes from its own checkpoints.
 *
 * Under `mentor-kd launch` (a process group) the same pipeline runs data-parallel: rank 0 alone
 * makes the data, calls the teacher, builds the tokenizer and writes the report while the others
 * wait; training is DDP (lib/parallel) and generation (augment, evaluate) is sharded by batch, with the
 * same outputs for any number of ranks. Only rank 0 writes into the run directory.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, setNumThreads } from '../native.js';
import type { ProcessGroup } from '../parallel/process-group.js';
import { onMain } from '../parallel/sharded.js';
import { checkSharedDirectory } from '../parallel/shared-fs.js';
import { T5Model } from '../model/t5-model.js';
import { Tokenizer, buildT5Tokenizer } from '../model/tokenizer.js';
import { extractAnswer, answersMatch, normalizeGold } from '../tasks/cleansing.js';
import { createRng, hashSeed } from '../tasks/random.js';
import type { TaskRecord } from '../tasks/records.js';
import type { TeacherSample } from '../teacher/collector.js';
import { latestCheckpoint, train, type Seq2SeqExample, type TrainResult } from '../train/index.js';
import { buildSoftLabelCache, SoftLabelCache } from '../train/soft-labels.js';
import { tokenizeDataset } from '../train/data.js';
import type { ModelInit, RunConfig, StudentMode, TrainSettings } from './config.js';
import { accuracy, generateOver, splitTarget, type GeneratedRow } from './generation.js';
import { writeReport, type Chart, type ReportInput } from './report.js';
import { RunDir, writeJsonAtomic, type StageRun } from './run-dir.js';
import { loadSplits, runDataStage, type Splits } from './stages/data.js';
import { filterSamples, runCollectStage, type FilteredRationale } from './stages/teacher.js';

export interface PipelineOptions {
  /** One line per stage start/end; default console.log. */
  log?: (line: string) => void;
  /** Stop after this stage (for running stages one at a time). */
  until?: StageName;
  /**
   * Run data-parallel over this process group (every rank calls runPipeline with the same config).
   * Training stages use DDP, generation stages shard batches; rank 0 writes every file.
   */
  group?: ProcessGroup;
}

export const STAGES = ['data', 'collect', 'filter', 'tokenizer', 'train-mentor', 'augment', 'train-student', 'evaluate', 'report'] as const;
export type StageName = (typeof STAGES)[number];

export interface StudentResult {
  mode: StudentMode;
  testAccuracy: number;
  devAccuracy: number | null;
  trainExamples: number;
  steps: number;
}

export interface PipelineResult {
  runDir: string;
  task: string;
  mentor: { devAccuracy: number | null; testAccuracy: number | null };
  students: StudentResult[];
  report?: { markdown: string; html: string };
}

const target = (rationale: string, answer: string) => `${rationale} --> ${answer}`;

function subsample<T>(items: readonly T[], fraction: number, seed: number, salt: string): T[] {
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

async function initModel(init: ModelInit, tok: Tokenizer, seed: number): Promise<T5Model> {
  if ('dir' in init) {
    const m = await T5Model.load(init.dir);
    if (m.info().vocabSize < tok.vocabSize) throw new Error(`model ${init.dir} has vocab_size ${m.info().vocabSize} but the tokenizer has ${tok.vocabSize} tokens`);
    return m;
  }
  // From scratch: the vocabulary and special ids come from the tokenizer.
  const config = { model_type: 't5', decoder_start_token_id: tok.padId, pad_token_id: tok.padId, eos_token_id: tok.eosId, ...init.config, vocab_size: tok.vocabSize };
  return T5Model.fromConfig(config, { seed });
}

function trainArgs(s: TrainSettings, c: RunConfig, group: ProcessGroup | undefined) {
  return {
    epochs: s.epochs,
    batchSize: s.batchSize,
    gradientAccumulation: s.gradientAccumulation ?? 1,
    ...(group && group.worldSize > 1 ? { dist: { group } } : {}),
    lr: s.learningRate,
    schedule: s.schedule,
    warmupSteps: s.warmupSteps,
    weightDecay: s.weightDecay,
    maxGradNorm: s.gradClip,
    cpuAutocast: s.cpuAutocast ?? false,
    maxSourceLength: s.maxSourceLength,
    maxTargetLength: s.maxTargetLength,
    saveEvery: s.saveEvery,
    keepLast: s.keepLast,
    seed: c.seed,
    eval: {
      batchSize: c.evaluate.batchSize,
      maxNewTokens: c.evaluate.maxNewTokens,
      extractAnswer: (text: string) => extractAnswer(text, c.task),
      isCorrect: (p: string | undefined, gold: string) => answersMatch(p, normalizeGold(gold, c.task), c.task),
    },
  };
}

/** Copies the best (else last) checkpoint's HF model dir to `<dir>/model` and returns it. */
function publishModel(result: TrainResult, dir: string, tok: Tokenizer): string {
  const src = result.bestCheckpoint ?? result.lastCheckpoint;
  if (!src) throw new Error(`training in ${dir} produced no checkpoint`);
  const out = join(dir, 'model');
  cpSync(src, out, { recursive: true, filter: (p) => !/optimizer|rng_state|trainer_state/.test(p.slice(src.length)) });
  writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(tok.json));
  writeFileSync(join(out, 'tokenizer_config.json'), JSON.stringify(tok.config, null, 2));
  return out;
}

function lossCurve(metricsFile: string): [number, number][] {
  if (!existsSync(metricsFile)) return [];
  const pts: [number, number][] = [];
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { step?: number; loss?: number; event?: string };
    if (e.event === undefined && typeof e.step === 'number' && typeof e.loss === 'number') pts.push([e.step, e.loss]);
  }
  // Resumed runs may repeat steps: keep the last value of each.
  return [...new Map(pts).entries()].sort((a, b) => a[0] - b[0]);
}

function devCurve(metricsFile: string): [number, number][] {
  if (!existsSync(metricsFile)) return [];
  const pts = new Map<number, number>();
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { step?: number; eval_accuracy?: number };
    if (typeof e.step === 'number' && typeof e.eval_accuracy === 'number') pts.set(e.step, e.eval_accuracy);
  }
  return [...pts.entries()].sort((a, b) => a[0] - b[0]);
}

export async function runPipeline(c: RunConfig, options: PipelineOptions = {}): Promise<PipelineResult> {
  const group = options.group && options.group.worldSize > 1 ? options.group : undefined;
  const isMain = !group || group.isMain;
  const log = isMain ? (options.log ?? ((line: string) => console.log(line))) : () => undefined;
  const until = options.until;
  if (c.threads > 0) setNumThreads(c.threads);
  const run = new RunDir(c.runDir, group);
  await checkSharedDirectory(group, c.runDir, 'run directory');
  if (isMain) writeJsonAtomic(join(c.runDir, 'config.json'), c);
  // Training resumes from the stage's own checkpoints when a killed run left some.
  const resumable = async (outputDir: string) => existsSync(outputDir) && !!(await latestCheckpoint(outputDir));
  const stageLog: ReportInput['stages'] = [];
  const done = <S extends Record<string, unknown>>(name: string, r: StageRun<S>, summary: string) => {
    stageLog.push({ name, seconds: r.manifest.durationMs / 1000, skipped: r.skipped, summary });
    log(`[${name}] ${r.skipped ? '(reused) ' : ''}${summary}${r.skipped ? '' : ` — ${(r.manifest.durationMs / 1000).toFixed(1)} s`}`);
  };
  const stop = (name: StageName) => until === name;

  // 1. data
  const dataKey = { task: c.task, seed: c.seed, data: c.data };
  const data = await run.stage('data', dataKey, (dir) => runDataStage(c, dir));
  done('data', data, `train ${data.manifest.summary.train}, dev ${data.manifest.summary.dev}, test ${data.manifest.summary.test} questions`);
  const splits: Splits = loadSplits(data.dir);
  const result: PipelineResult = { runDir: c.runDir, task: c.task, mentor: { devAccuracy: null, testAccuracy: null }, students: [] };
  if (stop('data')) return result;

  // 2. collect
  const collectKey = { data: data.manifest.key, teacher: c.teacher, seed: c.seed };
  const collect = await run.stage('collect', collectKey, (dir) => runCollectStage(c, splits.train, dir, log));
  const s = collect.manifest.summary as Record<string, number>;
  done('collect', collect, `${s.samples} rationales for ${s.questions} questions (${s.requests} requests, ${s.retries} retries, ${s.cacheHits} from cache)`);
  if (stop('collect')) return result;

  // 3. filter
  const filter = await run.stage('filter', { collect: collect.manifest.key }, async (dir) => {
    const samples = JSON.parse(readFileSync(join(collect.dir, 'samples.json'), 'utf8')) as TeacherSample[];
    const { kept, questionsWithoutCorrect } = filterSamples(samples);
    writeFileSync(join(dir, 'kept.json'), JSON.stringify(kept));
    writeFileSync(join(dir, 'questions-without-correct.json'), JSON.stringify(questionsWithoutCorrect));
    return { total: samples.length, kept: kept.length, questionsWithCorrect: new Set(kept.map((k) => k.questionId)).size, questionsWithoutCorrect: questionsWithoutCorrect.length };
  });
  const f = filter.manifest.summary as Record<string, number>;
  done('filter', filter, `${c.task}: kept ${f.kept}/${f.total} teacher rationales (${f.questionsWithCorrect} questions with at least one correct, ${f.questionsWithoutCorrect} with none)`);
  const keptAll = JSON.parse(readFileSync(join(filter.dir, 'kept.json'), 'utf8')) as FilteredRationale[];
  const teacherFailed = new Set(JSON.parse(readFileSync(join(filter.dir, 'questions-without-correct.json'), 'utf8')) as string[]);
  if (stop('filter')) return result;

  // Low-resource runs use a fraction of the teacher's questions (and all their rationales).
  const teacherQuestions = subsample([...new Set(keptAll.map((k) => k.questionId))], c.student.teacherFraction, c.seed, 'teacher-fraction');
  const teacherSet = new Set(teacherQuestions);
  const kept = keptAll.filter((k) => teacherSet.has(k.questionId));
  const fractionTag = c.student.teacherFraction === 1 ? '' : `-f${c.student.teacherFraction}`;

  // 4. tokenizer
  const tokKey = { tokenizer: c.tokenizer, data: data.manifest.key, filter: filter.manifest.key };
  const tokStage = await run.stage('tokenizer', tokKey, async (dir) => {
    const tok = c.tokenizer.dir
      ? await Tokenizer.load(c.tokenizer.dir)
      : buildT5Tokenizer([...splits.train.map((r) => r.question), ...keptAll.map((k) => target(k.rationale, k.answer))], { vocabSize: c.tokenizer.vocabSize });
    await tok.save(dir);
    return { vocabSize: tok.vocabSize, built: !c.tokenizer.dir };
  });
  const tok = await Tokenizer.load(tokStage.dir);
  done('tokenizer', tokStage, `${tokStage.manifest.summary.built ? 'built' : 'loaded'} tokenizer, ${tok.vocabSize} tokens`);
  if (stop('tokenizer')) return result;

  const dev: Seq2SeqExample[] = splits.dev.map((r) => ({ id: r.id, source: r.question, target: r.answer, answer: r.answer }));
  const teacherExamples: Seq2SeqExample[] = kept.map((k) => ({ id: k.questionId, source: k.question, target: target(k.rationale, normalizeGold(k.answer, c.task)), answer: k.answer }));

  // 5. train-mentor
  const mentorName = `train-mentor${fractionTag}`;
  const mentorStage = await run.stage(mentorName, { tok: tokStage.manifest.key, filter: filter.manifest.key, fraction: c.student.teacherFraction, mentor: c.mentor, seed: c.seed, evaluate: c.evaluate }, async (dir) => {
    manualSeed(c.seed);
    const model = await initModel(c.mentor.init, tok, c.seed);
    const outputDir = join(dir, 'train');
    // A stage killed half-way continues from its last checkpoint.
    const r = await train({ model, tokenizer: tok, train: teacherExamples, dev, outputDir, resume: await resumable(outputDir), ...trainArgs(c.mentor.train, c, group) });
    await onMain(group, () => publishModel(r, dir, tok), 'publish the mentor');
    model.dispose();
    return { examples: teacherExamples.length, steps: r.globalStep, devAccuracy: r.bestMetric, seconds: r.seconds };
  }, { ranks: 'all' });
  const ms = mentorStage.manifest.summary as Record<string, number | null>;
  result.mentor.devAccuracy = ms.devAccuracy as number | null;
  done(mentorName, mentorStage, `mentor trained on ${ms.examples} teacher rationales, ${ms.steps} steps, dev accuracy ${ms.devAccuracy === null ? '–' : `${(100 * (ms.devAccuracy as number)).toFixed(1)}%`}`);
  if (stop('train-mentor')) return result;
  const mentorDir = join(mentorStage.dir, 'model');

  // 6. augment: the mentor writes rationales for every training question, filtered like the teacher's.
  const augName = `augment${fractionTag}`;
  const augStage = await run.stage(augName, { mentor: mentorStage.manifest.key, augment: c.augment, seed: c.seed }, async (dir) => {
    const mentor = await T5Model.load(mentorDir);
    const rows = await generateOver(mentor, tok, splits.train.map((r) => ({ id: r.id, question: r.question, answer: r.answer })), {
      task: c.task, batchSize: c.augment.batchSize, maxNewTokens: c.augment.maxNewTokens, maxSourceLength: c.mentor.train.maxSourceLength,
      samples: c.augment.samples, temperature: c.augment.temperature, seed: c.seed, outFile: join(dir, 'generated.jsonl'), label: 'augment', group,
    });
    mentor.dispose();
    const keptRows = rows.filter((r) => r.correct);
    if (isMain) writeFileSync(join(dir, 'kept.json'), JSON.stringify(keptRows));
    const onFailed = rows.filter((r) => teacherFailed.has(r.id));
    return {
      samples: rows.length, kept: keptRows.length, mentorAccuracy: accuracy(rows),
      questionsCovered: new Set(keptRows.map((r) => r.id)).size, teacherFailedQuestions: new Set(onFailed.map((r) => r.id)).size,
      mentorAccuracyOnTeacherFailed: onFailed.length ? accuracy(onFailed) : null,
    };
  }, { ranks: 'all' });
  const as = augStage.manifest.summary as Record<string, number | null>;
  done(augName, augStage, `mentor kept ${as.kept}/${as.samples} of its rationales (accuracy ${(100 * (as.mentorAccuracy as number)).toFixed(1)}% on its training questions` +
    `${as.mentorAccuracyOnTeacherFailed === null ? '' : `, ${(100 * (as.mentorAccuracyOnTeacherFailed as number)).toFixed(1)}% on the ${as.teacherFailedQuestions} the teacher got wrong`})`);
  if (stop('augment')) return result;
  const mentorRows = JSON.parse(readFileSync(join(augStage.dir, 'kept.json'), 'utf8')) as GeneratedRow[];
  const mentorExamples: Seq2SeqExample[] = mentorRows
    .filter((r) => r.sample < c.student.mentorSamples)
    .map((r) => {
      const { rationale } = splitTarget(r.output);
      return { id: `${r.id}#m${r.sample}`, source: r.question, target: target(rationale, normalizeGold(r.answer, c.task)), answer: r.answer };
    });

  // 7. train-student, one stage per mode
  const students: { mode: StudentMode; dir: string; metrics: string }[] = [];
  for (const mode of c.student.modes) {
    const withMentorData = mode === 'mentor-kd' || mode === 'augment-only';
    const withKd = mode === 'mentor-kd' || mode === 'kd-only';
    const examples = withMentorData ? [...teacherExamples, ...mentorExamples] : teacherExamples;
    const name = `student-${mode}${fractionTag}${withMentorData ? `-m${c.student.mentorSamples}` : ''}`;
    const key = {
      tok: tokStage.manifest.key, filter: filter.manifest.key, fraction: c.student.teacherFraction, mode, student: c.student.init, train: c.student.train, seed: c.seed, evaluate: c.evaluate,
      ...(withMentorData ? { augment: augStage.manifest.key, mentorSamples: c.student.mentorSamples } : {}),
      ...(withKd ? { mentor: mentorStage.manifest.key, lambda: c.student.lambda, tau: c.student.tau, softLabels: c.student.softLabels, topK: c.student.softLabels === 'offline' ? c.student.topK : undefined } : {}),
    };
    const st = await run.stage(name, key, async (dir) => {
      manualSeed(c.seed);
      const model = await initModel(c.student.init, tok, c.seed + 1);
      const mentor = withKd ? await T5Model.load(mentorDir) : undefined;
      let softLabels: SoftLabelCache | undefined;
      if (withKd && c.student.softLabels === 'offline') {
        const cacheDir = join(dir, 'soft-labels');
        // Built once, by rank 0; every rank then reads it.
        await onMain(group, async () => {
          // The cache is renamed into place when complete: its folder existing means done.
          if (existsSync(cacheDir)) return;
          // A build killed half-way left its temporary folder (named by that process's pid).
          for (const f of readdirSync(dir)) if (f.startsWith('soft-labels.tmp-')) rmSync(join(dir, f), { recursive: true, force: true });
          const dataset = tokenizeDataset(examples, tok, { maxSourceLength: c.student.train.maxSourceLength, maxTargetLength: c.student.train.maxTargetLength, name: 'train' });
          await buildSoftLabelCache({ mentor: mentor!, dataset, dir: cacheDir, k: c.student.topK, tau: c.student.tau, padId: tok.padId });
        }, 'build the soft-label cache');
        softLabels = await SoftLabelCache.open(cacheDir);
      }
      const outputDir = join(dir, 'train');
      const r = await train({
        model, tokenizer: tok, train: examples, dev, outputDir, resume: await resumable(outputDir), ...trainArgs(c.student.train, c, group),
        ...(withKd ? { kd: { lambda: c.student.lambda, tau: c.student.tau } } : {}),
        ...(withKd && c.student.softLabels === 'online' ? { mentor } : {}),
        ...(softLabels ? { softLabels } : {}),
      });
      await onMain(group, () => publishModel(r, dir, tok), `publish the ${mode} student`);
      model.dispose();
      mentor?.dispose();
      return { mode, examples: examples.length, steps: r.globalStep, devAccuracy: r.bestMetric, seconds: r.seconds };
    }, { ranks: 'all' });
    const ss = st.manifest.summary as unknown as Record<string, number | null>;
    done(name, st, `${mode} student on ${ss.examples} rationales, ${ss.steps} steps, dev accuracy ${ss.devAccuracy === null ? '–' : `${(100 * (ss.devAccuracy as number)).toFixed(1)}%`}`);
    students.push({ mode, dir: st.dir, metrics: join(st.dir, 'train', 'metrics.jsonl') });
    result.students.push({ mode, testAccuracy: NaN, devAccuracy: ss.devAccuracy as number | null, trainExamples: ss.examples as number, steps: ss.steps as number });
  }
  if (stop('train-student')) return result;

  // 8. evaluate: greedy decoding on the test split, per-example outputs saved.
  const evaluated = [{ label: 'mentor', dir: mentorStage.dir, key: mentorStage.manifest.key }, ...students.map((st) => ({ label: st.mode, dir: st.dir, key: run.manifest(st.dir.split('/').pop()!)!.key }))];
  for (const e of evaluated) {
    const name = `evaluate-${e.dir.split('/').pop()}`;
    const ev = await run.stage(name, { model: e.key, data: data.manifest.key, evaluate: c.evaluate }, async (dir) => {
      const model = await T5Model.load(join(e.dir, 'model'));
      const rows = await generateOver(model, tok, splits.test.map((r: TaskRecord) => ({ id: r.id, question: r.question, answer: r.answer })), {
        task: c.task, batchSize: c.evaluate.batchSize, maxNewTokens: c.evaluate.maxNewTokens, maxSourceLength: c.student.train.maxSourceLength,
        seed: c.seed, outFile: join(dir, 'predictions.jsonl'), label: `test ${e.label}`, group,
      });
      model.dispose();
      return { accuracy: accuracy(rows), correct: rows.filter((r) => r.correct).length, total: rows.length };
    }, { ranks: 'all' });
    const es = ev.manifest.summary as Record<string, number>;
    done(name, ev, `${e.label}: test accuracy ${(100 * es.accuracy!).toFixed(1)}% (${es.correct}/${es.total})`);
    if (e.label === 'mentor') result.mentor.testAccuracy = es.accuracy!;
    else result.students.find((x) => x.mode === e.label)!.testAccuracy = es.accuracy!;
  }
  if (stop('evaluate')) return result;
  if (!isMain) return result; // the report is rank 0's

  // 9. report
  const charts: Chart[] = [
    { title: 'Training loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'mentor', points: lossCurve(join(mentorStage.dir, 'train', 'metrics.jsonl')) }, ...students.map((st) => ({ name: st.mode, points: lossCurve(st.metrics) }))] },
    { title: 'Dev accuracy', xLabel: 'step', yLabel: 'accuracy', series: [{ name: 'mentor', points: devCurve(join(mentorStage.dir, 'train', 'metrics.jsonl')) }, ...students.map((st) => ({ name: st.mode, points: devCurve(st.metrics) }))] },
  ];
  const reportDir = join(c.runDir, `report${fractionTag}`);
  mkdirSync(reportDir, { recursive: true });
  result.report = writeReport(reportDir, {
    title: `Mentor-KD run: ${c.task}`,
    results: { columns: [c.task], rows: [{ label: 'mentor', values: [result.mentor.testAccuracy ?? undefined] }, ...result.students.map((st) => ({ label: st.mode, values: [st.testAccuracy] }))] },
    stages: stageLog,
    notes: [
      `teacher: ${c.teacher.url ?? 'built-in simulated teacher'} (${c.teacher.model}), ${c.teacher.samples} rationales per question; kept ${f.kept}/${f.total}`,
      `mentor rationales: ${as.kept}/${as.samples} kept; mentor accuracy on its training questions ${(100 * (as.mentorAccuracy as number)).toFixed(1)}%`,
      `KD: λ=${c.student.lambda}, τ=${c.student.tau}, soft labels ${c.student.softLabels}; teacher data fraction ${c.student.teacherFraction}; mentor rationales per question ${c.student.mentorSamples}`,
    ],
    charts,
    config: c,
  });
  log(`[report] ${result.report.html}`);
  writeJsonAtomic(join(c.runDir, `results${fractionTag}.json`), result);
  return result;
}
