/** The one record type every loader produces and every consumer (teacher, check, training) reads. */

export interface TaskRecord {
  /** Stable within a file: the record's own id, else `{file name}#{index or line}`. */
  id: string;
  question: string;
  /** Gold answer as written in the file (booleans become "yes"/"no"). */
  answer: string;
  /** A rationale for the question (teacher, mentor or human), when the file has one. */
  chain?: string;
  /** The answer stage that followed `chain`, when the file has one. */
  completion?: string;
  /** Whether the answer extracted from `chain`/`completion` was judged equal to `answer`. */
  initialCorrect?: boolean;
  /** Where the record came from, for error messages and reports. */
  source?: RecordSource;
}

export interface RecordSource {
  file: string;
  /** 0-based position in a JSON array. */
  index?: number;
  /** 1-based line in a JSONL file. */
  line?: number;
}

/** "file.json [index 3]" / "file.jsonl:12": how records and errors name their place. */
export function describeSource(source: RecordSource): string {
  if (source.line !== undefined) return `${source.file}:${source.line}`;
  if (source.index !== undefined) return `${source.file} [index ${source.index}]`;
  return source.file;
}

/** Bad input, always naming the file and the line, index or field at fault. */
export class TaskDataError extends Error {
  readonly source: RecordSource;
  readonly field?: string;
  constructor(source: RecordSource, message: string, field?: string) {
    super(`${describeSource(source)}: ${field ? `field "${field}": ` : ''}${message}`);
    this.name = 'TaskDataError';
    this.source = source;
    if (field !== undefined) this.field = field;
  }
}
