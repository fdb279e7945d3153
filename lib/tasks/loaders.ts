/**
 * Loaders for question/answer files: the Mentor-KD release format, GSM8K's original JSONL, the
 * teacher-output files of the release (`prompt/{task}_6.json`) and any JSON/JSONL with a field
 * mapping. A malformed record is an error naming the file and line or index; it is skipped only
 * when the caller asks (`onInvalid: 'skip'`), and then counted and described in `issues`.
 */
import { readFileSync, statSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { basename, extname } from 'node:path';
import { TaskDataError, type RecordSource, type TaskRecord } from './records.js';

export interface TaskLoadOptions {
  /** 'throw' (default): the first malformed record is an error; 'skip': count and go on. */
  onInvalid?: 'throw' | 'skip';
}

export interface LoadResult {
  records: TaskRecord[];
  /** How many records were skipped as malformed (only with `onInvalid: 'skip'`). */
  skipped: number;
  /** One message per skipped record, each naming file and line/index. */
  issues: string[];
}

/** Dot paths into each raw record, e.g. `{ question: 'question.stem', answer: 'answerKey' }`. */
export interface FieldMapping {
  question: string;
  answer: string;
  chain?: string;
  completion?: string;
  initialCorrect?: string;
  id?: string;
}

export interface GenericLoadOptions extends TaskLoadOptions {
  fields: FieldMapping;
  /** Default: by extension (.jsonl → jsonl, else json). */
  format?: 'json' | 'jsonl';
  /** Dot path to the array inside a JSON document, e.g. "examples". */
  root?: string;
}

export type FileFormat = 'mentor-kd' | 'gsm8k' | 'generic';

export interface TaskFileOptions extends TaskLoadOptions {
  /** Default: detected from the file's extension and first record. */
  format?: FileFormat;
  /** Needed for (and implies) the generic format. */
  fields?: FieldMapping;
  root?: string;
}

const MENTOR_KD_FIELDS: FieldMapping = {
  question: 'input',
  answer: 'answer',
  chain: 'chain',
  completion: 'completion',
  initialCorrect: 'initial_correct',
  id: 'id',
};

// ---------------------------------------------------------------------------------------------
// Raw reading

interface RawItem {
  value: unknown;
  source: RecordSource;
}

/**
 * The file as UTF-8 text. Bytes that are not UTF-8 are an error naming the file and line (and the
 * byte's column) instead of silently becoming U+FFFD in a question; a leading BOM is dropped.
 */
export function readText(file: string): string {
  let bytes: Buffer;
  try {
    // A FIFO or device would block the read (or never end): only regular files are data.
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    bytes = readFileSync(file);
  } catch (err) {
    throw new TaskDataError({ file }, `cannot read: ${(err as Error).message}`);
  }
  return decodeUtf8(file, bytes);
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence, or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined) return i;
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** Strict UTF-8 decoding of `bytes` read from `file`; throws a TaskDataError naming the line at fault. */
export function decodeUtf8(file: string, bytes: Uint8Array): string {
  if (!isUtf8(bytes)) {
    const at = Math.max(0, firstInvalidUtf8(bytes));
    let line = 1;
    let lineStart = 0;
    for (let k = bytes.indexOf(0x0a); k >= 0 && k < at; k = bytes.indexOf(0x0a, k + 1)) {
      line++;
      lineStart = k + 1;
    }
    throw new TaskDataError(
      { file, line },
      `not valid UTF-8 text: byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at byte ${at - lineStart + 1} of the line (re-encode the file as UTF-8)`,
    );
  }
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Line and column of a JSON.parse error, when V8 reports a position. */
function jsonErrorPlace(text: string, err: Error): { line: number; column: number } | undefined {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return undefined;
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return { line, column: pos - before.lastIndexOf('\n') };
}

function parseJsonDocument(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const place = jsonErrorPlace(text, err as Error);
    const source: RecordSource = place ? { file, line: place.line } : { file };
    throw new TaskDataError(source, `invalid JSON${place ? ` at column ${place.column}` : ''}: ${(err as Error).message}`);
  }
}

function getPath(value: unknown, path: string): unknown {
  let cur: unknown = value;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function readJsonArray(file: string, root: string | undefined): RawItem[] {
  const doc = parseJsonDocument(file, readText(file));
  const array = root ? getPath(doc, root) : doc;
  if (!Array.isArray(array)) {
    throw new TaskDataError({ file }, root ? `"${root}" is not an array` : 'expected a JSON array of records');
  }
  return array.map((value, index) => ({ value, source: { file, index } }));
}

/**
 * JSONL: one JSON value per line; blank lines are not records. A line that does not parse is a
 * malformed record like any other (it may be skipped on request).
 */
function readJsonLines(file: string, options: TaskLoadOptions, issues: string[]): RawItem[] {
  const items: RawItem[] = [];
  const lines = readText(file).split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const source = { file, line: i + 1 };
    try {
      items.push({ value: JSON.parse(line), source });
    } catch (err) {
      const error = new TaskDataError(source, `invalid JSON: ${(err as Error).message}`);
      if (options.onInvalid !== 'skip') throw error;
      issues.push(error.message);
    }
  });
  return items;
}

// ---------------------------------------------------------------------------------------------
// Field validation

function requireString(raw: Record<string, unknown>, path: string, source: RecordSource): string {
  const v = getPath(raw, path);
  if (v === undefined || v === null) throw new TaskDataError(source, 'missing', path);
  if (typeof v !== 'string') throw new TaskDataError(source, `must be a string, got ${typeName(v)}`, path);
  if (v.trim() === '') throw new TaskDataError(source, 'is empty', path);
  return v;
}

function optionalString(raw: Record<string, unknown>, path: string | undefined, source: RecordSource): string | undefined {
  if (!path) return undefined;
  const v = getPath(raw, path);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new TaskDataError(source, `must be a string, got ${typeName(v)}`, path);
  return v;
}

function answerField(raw: Record<string, unknown>, path: string, source: RecordSource): string {
  const v = getPath(raw, path);
  if (v === undefined || v === null) throw new TaskDataError(source, 'missing', path);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw new TaskDataError(source, `must be a string, number or boolean, got ${typeName(v)}`, path);
  if (v.trim() === '') throw new TaskDataError(source, 'is empty', path);
  return v;
}

function optionalBoolean(raw: Record<string, unknown>, path: string | undefined, source: RecordSource): boolean | undefined {
  if (!path) return undefined;
  const v = getPath(raw, path);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new TaskDataError(source, `must be a boolean, got ${typeName(v)}`, path);
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`.slice(0, 60);
}

function defaultId(source: RecordSource): string {
  const name = basename(source.file);
  return source.line !== undefined ? `${name}:${source.line}` : `${name}#${source.index ?? 0}`;
}

function mapRecord(item: RawItem, fields: FieldMapping): TaskRecord {
  const { value, source } = item;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TaskDataError(source, `expected an object, got ${typeName(value)}`);
  }
  const raw = value as Record<string, unknown>;
  const record: TaskRecord = {
    id: defaultId(source),
    question: requireString(raw, fields.question, source),
    answer: answerField(raw, fields.answer, source),
    source,
  };
  const id = fields.id ? getPath(raw, fields.id) : undefined;
  if (typeof id === 'string' || typeof id === 'number') record.id = String(id);
  const chain = optionalString(raw, fields.chain, source);
  if (chain !== undefined) record.chain = chain;
  const completion = optionalString(raw, fields.completion, source);
  if (completion !== undefined) record.completion = completion;
  const initialCorrect = optionalBoolean(raw, fields.initialCorrect, source);
  if (initialCorrect !== undefined) record.initialCorrect = initialCorrect;
  return record;
}

function mapAll(items: RawItem[], fields: FieldMapping, options: TaskLoadOptions, issues: string[]): LoadResult {
  const records: TaskRecord[] = [];
  for (const item of items) {
    try {
      records.push(mapRecord(item, fields));
    } catch (err) {
      if (options.onInvalid !== 'skip' || !(err instanceof TaskDataError)) throw err;
      issues.push(err.message);
    }
  }
  return { records, skipped: issues.length, issues };
}

// ---------------------------------------------------------------------------------------------
// Public loaders

/** The Mentor-KD release: a JSON array of `{input, answer, chain?, completion?, initial_correct?}`. */
export function loadMentorKdFile(file: string, options: TaskLoadOptions = {}): LoadResult {
  return mapAll(readJsonArray(file, undefined), MENTOR_KD_FIELDS, options, []);
}

/** Any JSON array (optionally under `root`) or JSONL file, through a field mapping. */
export function loadGenericFile(file: string, options: GenericLoadOptions): LoadResult {
  const format = options.format ?? (extname(file).toLowerCase() === '.jsonl' ? 'jsonl' : 'json');
  const issues: string[] = [];
  const items = format === 'jsonl' ? readJsonLines(file, options, issues) : readJsonArray(file, options.root);
  return mapAll(items, options.fields, options, issues);
}

const GSM8K_FINAL = /####\s*(.+?)\s*$/;

/**
 * GSM8K as released by OpenAI: JSONL of `{question, answer}` where the answer is a worked
 * solution ending in `#### N`. The solution becomes `chain` (calculator annotations `<<..>>`
 * removed), N (commas removed) the gold answer.
 */
export function loadGsm8kJsonl(file: string, options: TaskLoadOptions = {}): LoadResult {
  const issues: string[] = [];
  const items = readJsonLines(file, options, issues);
  const records: TaskRecord[] = [];
  for (const item of items) {
    try {
      const base = mapRecord(item, { question: 'question', answer: 'answer' });
      const m = GSM8K_FINAL.exec(base.answer);
      if (!m) throw new TaskDataError(item.source, 'does not end with "#### <number>"', 'answer');
      const gold = m[1]!.replace(/,/g, '');
      if (!/^-?\d+(?:\.\d+)?$/.test(gold)) {
        throw new TaskDataError(item.source, `final answer "${m[1]}" after #### is not a number`, 'answer');
      }
      const chain = base.answer
        .slice(0, m.index)
        .replace(/<<[^>]*>>/g, '')
        .trim();
      records.push({ ...base, answer: gold, chain });
    } catch (err) {
      if (options.onInvalid !== 'skip' || !(err instanceof TaskDataError)) throw err;
      issues.push(err.message);
    }
  }
  return { records, skipped: issues.length, issues };
}

/** Guess a file's format from its extension and first record. */
export function detectFormat(file: string): FileFormat {
  const text = readText(file);
  if (extname(file).toLowerCase() === '.jsonl') {
    const first = text.split('\n').find((l) => l.trim() !== '');
    if (first === undefined) return 'generic';
    let value: unknown;
    try {
      value = JSON.parse(first);
    } catch {
      return 'generic';
    }
    const rec = value as Record<string, unknown>;
    if (typeof rec?.question === 'string' && typeof rec?.answer === 'string' && rec.answer.includes('####')) return 'gsm8k';
    return 'generic';
  }
  return 'mentor-kd';
}

/**
 * Load any supported file. Without `format`: `.jsonl` with GSM8K's `####` answers → gsm8k,
 * other `.jsonl` → generic (fields default to the Mentor-KD names), `.json` → Mentor-KD.
 */
export function loadTaskFile(file: string, options: TaskFileOptions = {}): LoadResult {
  const format = options.format ?? (options.fields ? 'generic' : detectFormat(file));
  switch (format) {
    case 'gsm8k':
      return loadGsm8kJsonl(file, options);
    case 'mentor-kd':
      if (extname(file).toLowerCase() !== '.jsonl') return loadMentorKdFile(file, options);
      return loadGenericFile(file, { onInvalid: options.onInvalid ?? 'throw', fields: MENTOR_KD_FIELDS, format: 'jsonl' });
    case 'generic': {
      const generic: GenericLoadOptions = { onInvalid: options.onInvalid ?? 'throw', fields: options.fields ?? MENTOR_KD_FIELDS };
      if (options.root !== undefined) generic.root = options.root;
      return loadGenericFile(file, generic);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Teacher outputs (the release's prompt/{task}_6.json)

export interface TeacherOutputs {
  question: string;
  outputs: string[];
  label?: string;
  source: RecordSource;
}

/**
 * Raw teacher outputs, `[{instruction, output: string[], label}]`: what `teacher serve --replay`
 * plays back. Questions with no outputs are kept (the server answers them with an error).
 */
export function loadTeacherOutputs(file: string, options: TaskLoadOptions = {}): { entries: TeacherOutputs[]; skipped: number; issues: string[] } {
  const issues: string[] = [];
  const entries: TeacherOutputs[] = [];
  for (const item of readJsonArray(file, undefined)) {
    try {
      const { value, source } = item;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new TaskDataError(source, `expected an object, got ${typeName(value)}`);
      }
      const raw = value as Record<string, unknown>;
      const question = requireString(raw, 'instruction', source);
      const output = raw.output;
      if (!Array.isArray(output)) throw new TaskDataError(source, `must be an array of strings, got ${typeName(output)}`, 'output');
      output.forEach((o, k) => {
        if (typeof o !== 'string') throw new TaskDataError(source, `element ${k} must be a string, got ${typeName(o)}`, 'output');
      });
      const entry: TeacherOutputs = { question, outputs: output as string[], source };
      const label = optionalString(raw, 'label', source);
      if (label !== undefined) entry.label = label;
      entries.push(entry);
    } catch (err) {
      if (options.onInvalid !== 'skip' || !(err instanceof TaskDataError)) throw err;
      issues.push(err.message);
    }
  }
  return { entries, skipped: issues.length, issues };
}
