/**
 * Replays recorded teacher outputs (the release's `prompt/{task}_6.json`: question → up to 6
 * completions): the rationale for sample s of a question is output (h + s) mod k, h a hash of
 * the server seed and the question, so samples of one question differ and a seed fixes them.
 */
import { loadTeacherOutputs } from '../../tasks/loaders.js';
import { hashSeed } from '../../tasks/random.js';
import { isTaskName, type TaskName } from '../../tasks/registry.js';
import { basename } from 'node:path';

export class ReplayBook {
  readonly task: TaskName;
  private readonly byQuestion = new Map<string, string[]>();

  constructor(task: TaskName, entries: Iterable<{ question: string; outputs: readonly string[] }>) {
    this.task = task;
    for (const e of entries) this.byQuestion.set(e.question.trim(), e.outputs.slice());
  }

  /** Load a recorded-outputs file; the task defaults to the file name's prefix (`last_letter_concatenation_6.json`). */
  static fromFile(file: string, task?: string): ReplayBook {
    const name = task ?? /^(.+?)_\d+\.json$/.exec(basename(file))?.[1];
    if (!name || !isTaskName(name)) {
      throw new Error(`${file}: cannot tell the task from the file name; pass it (--replay-task)`);
    }
    return new ReplayBook(name, loadTeacherOutputs(file).entries);
  }

  get size(): number {
    return this.byQuestion.size;
  }

  has(question: string): boolean {
    return this.byQuestion.has(question.trim());
  }

  /** The recorded rationale for this sample, or undefined (unknown question, or none recorded). */
  rationale(question: string, serverSeed: number, sampleSeed: number): string | undefined {
    const outputs = this.byQuestion.get(question.trim());
    if (!outputs || outputs.length === 0) return undefined;
    const index = ((hashSeed(serverSeed, question.trim()) + sampleSeed) >>> 0) % outputs.length;
    return outputs[index];
  }
}
