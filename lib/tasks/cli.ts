/** `mentor-kd tasks ...`: list the tasks, check answer cleansing on a labelled file, generate synthetic data. */
import { writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { checkCleansing, formatAgreement } from './check.js';
import { loadTaskFile, type FieldMapping, type FileFormat } from './loaders.js';
import { getTask, listTasks } from './registry.js';
import { SYNTHETIC_GENERATORS } from './synthetic.js';
import type { TaskRecord } from './records.js';
import { intArg } from '../cli-args.js';

/** "question=q,answer=a.b" → a field mapping; question and answer are required. */
export function parseFieldMapping(spec: string): FieldMapping {
  const known = new Set(['question', 'answer', 'chain', 'completion', 'initialCorrect', 'id']);
  const out: Record<string, string> = {};
  for (const pair of spec.split(',')) {
    const [key, path] = pair.split('=').map((s) => s.trim());
    if (!key || !path) throw new InvalidArgumentError(`bad field mapping "${pair}" (want name=path)`);
    if (!known.has(key)) throw new InvalidArgumentError(`unknown field "${key}" (known: ${[...known].join(', ')})`);
    out[key] = path;
  }
  if (!out.question || !out.answer) throw new InvalidArgumentError('field mapping needs question= and answer=');
  return out as unknown as FieldMapping;
}

/** Records in the Mentor-KD release format, the format `tasks check` and the loaders read back. */
export function toMentorKdJson(records: readonly TaskRecord[]): string {
  const rows = records.map((r) => {
    const row: Record<string, unknown> = { input: r.question, answer: r.answer };
    if (r.chain !== undefined) row.chain = r.chain;
    if (r.completion !== undefined) row.completion = r.completion;
    if (r.initialCorrect !== undefined) row.initial_correct = r.initialCorrect;
    return row;
  });
  return `${JSON.stringify(rows, null, 1)}\n`;
}

export function registerTaskCommands(program: Command): void {
  const tasks = program.command('tasks').description('the Mentor-KD tasks: list, check answer cleansing, generate synthetic data');

  tasks
    .command('list')
    .description('list the registered tasks and their answer formats')
    .action(() => {
      for (const t of listTasks()) {
        const format = t.kind === 'choice' ? `choice ${t.choices![0]}-${t.choices![t.choices!.length - 1]}` : t.kind;
        console.log(`${t.name.padEnd(28)} ${t.title.padEnd(28)} ${format.padEnd(12)}${t.synthetic ? ' synthetic' : ''}`);
      }
    });

  tasks
    .command('check')
    .description('answer-cleansing agreement on a labelled file; the last line is "agreement: K/N"')
    .argument('<file>', 'JSON / JSONL records with answer, chain and/or completion, initial_correct')
    .requiredOption('-t, --task <name>', 'task name (see `tasks list`)')
    .addOption(new Option('--format <format>', 'file format (default: detected)').choices(['mentor-kd', 'gsm8k', 'generic']))
    .option('--fields <mapping>', 'field mapping for other layouts, e.g. "question=q,answer=a,chain=why"', parseFieldMapping)
    .option('--root <path>', 'dot path to the record array inside a JSON document')
    .option('--skip-invalid', 'skip (and count) malformed records instead of failing')
    .option('--assume-correct', 'count records without initial_correct as correct')
    .option('--show <n>', 'mismatches to print', intArg('--show', 0), 10)
    .action(
      (
        file: string,
        opts: { task: string; format?: FileFormat; fields?: FieldMapping; root?: string; skipInvalid?: boolean; assumeCorrect?: boolean; show: number },
      ) => {
        const task = getTask(opts.task);
        const loaded = loadTaskFile(file, {
          ...(opts.format ? { format: opts.format } : {}),
          ...(opts.fields ? { fields: opts.fields } : {}),
          ...(opts.root ? { root: opts.root } : {}),
          onInvalid: opts.skipInvalid ? 'skip' : 'throw',
        });
        const report = checkCleansing(loaded.records, task, {
          assumeCorrect: Boolean(opts.assumeCorrect),
          keepMismatches: opts.show,
        });
        console.log(`file: ${file}`);
        console.log(`task: ${task.name} (${task.kind})`);
        console.log(`records: ${loaded.records.length}${loaded.skipped ? `, skipped as malformed: ${loaded.skipped}` : ''}`);
        for (const issue of loaded.issues.slice(0, opts.show)) console.log(`  skipped: ${issue}`);
        if (report.ignored) console.log(`not counted (no initial_correct or no chain/completion): ${report.ignored}`);
        if (report.incorrectChecked) {
          console.log(`judged incorrect and also rejected by the cleanser: ${report.incorrectAgreed}/${report.incorrectChecked}`);
        }
        for (const m of report.mismatches) {
          console.log(`  mismatch ${m.where}: extracted ${JSON.stringify(m.extracted ?? null)} from ${m.from}, gold ${JSON.stringify(m.gold)}`);
        }
        if (report.checked === 0) console.error('warning: no record is labelled correct (initial_correct: true); try --assume-correct');
        console.log(formatAgreement(report));
      },
    );

  tasks
    .command('generate')
    .description('generate a synthetic task (seeded) in the Mentor-KD format: [{input, answer}]')
    .addOption(new Option('-t, --task <name>', 'task').choices(Object.keys(SYNTHETIC_GENERATORS)).makeOptionMandatory())
    .option('-n, --count <n>', 'questions', intArg('--count', 0), 100)
    .option('--seed <n>', 'random seed', intArg('--seed', 0), 0)
    .option('--size <n>', 'words / people per question', intArg('--size', 1), 4)
    .option('-o, --out <file>', 'output file (default: stdout)')
    .action((opts: { task: keyof typeof SYNTHETIC_GENERATORS; count: number; seed: number; size: number; out?: string }) => {
      const records = SYNTHETIC_GENERATORS[opts.task]({ count: opts.count, seed: opts.seed, size: opts.size });
      const json = toMentorKdJson(records);
      if (opts.out) {
        writeFileSync(opts.out, json);
        console.error(`wrote ${records.length} ${opts.task} questions to ${opts.out}`);
      } else process.stdout.write(json);
    });
}
