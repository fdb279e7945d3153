/**
 * TensorBoard event files (`events.out.tfevents.*`), written directly: no maintained npm package
 * writes them without TensorFlow.js's native binary, and the format is small. A file is a sequence
 * of records — uint64 length, masked CRC-32C of the length, the bytes of one `Event` protobuf, masked
 * CRC-32C of the bytes — the first event carrying `file_version: "brain.Event:2"`, each later one a
 * `Summary` of scalar values (tag, simple_value) at a step. TensorBoard and tensorboardX read these
 * files as their own. Every record is appended whole with one write, so an interrupted run leaves
 * complete records. `readEvents` decodes a file back (CRCs checked), for tests and tools.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// ---- CRC-32C (Castagnoli), as TFRecord uses it

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant (so CRCs of CRCs stay well spread). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

// ---- protobuf, the few wire types an Event needs

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64 negatives as two's complement
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

const lengthDelimited = (field: number, bytes: Uint8Array): number[] => [(field << 3) | 2, ...varint(bytes.length), ...bytes];

function float64(field: number, x: number): number[] {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return [(field << 3) | 1, ...b];
}

function float32(field: number, x: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return [(field << 3) | 5, ...b];
}

/** Event { wall_time = 1 (double); step = 2 (int64); file_version = 3 (string) | summary = 5 (Summary) }. */
function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalars?: Record<string, number> }): Uint8Array {
  const bytes: number[] = [...float64(1, e.wallTime)];
  if (e.step !== undefined) bytes.push((2 << 3) | 0, ...varint(e.step));
  if (e.fileVersion !== undefined) bytes.push(...lengthDelimited(3, Buffer.from(e.fileVersion)));
  if (e.scalars) {
    // Summary { repeated Value value = 1 }, Value { string tag = 1; float simple_value = 2 }.
    const summary: number[] = [];
    for (const [tag, v] of Object.entries(e.scalars))
      summary.push(...lengthDelimited(1, Uint8Array.from([...lengthDelimited(1, Buffer.from(tag)), ...float32(2, v)])));
    bytes.push(...lengthDelimited(5, Uint8Array.from(summary)));
  }
  return Uint8Array.from(bytes);
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
function record(data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(data.length));
  const crcs = Buffer.alloc(8);
  crcs.writeUInt32LE(maskedCrc32c(head), 0);
  crcs.writeUInt32LE(maskedCrc32c(data), 4);
  return Buffer.concat([head, crcs.subarray(0, 4), data, crcs.subarray(4)]);
}

/** Scalars into one event file under `logdir` (created), as TensorBoard's SummaryWriter does. */
export class TensorBoardWriter {
  readonly file: string;

  constructor(
    readonly logdir: string,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {
    mkdirSync(logdir, { recursive: true });
    const t = this.now();
    this.file = join(logdir, `events.out.tfevents.${Math.floor(t)}.${hostname()}.${process.pid}`);
    appendFileSync(this.file, record(encodeEvent({ wallTime: t, fileVersion: 'brain.Event:2' })));
  }

  /** Scalars at one step, in one event (non-finite values are left out: TensorBoard cannot plot them). */
  addScalars(step: number, scalars: Record<string, number>): void {
    const finite = Object.fromEntries(Object.entries(scalars).filter(([, v]) => Number.isFinite(v)));
    if (Object.keys(finite).length) appendFileSync(this.file, record(encodeEvent({ wallTime: this.now(), step, scalars: finite })));
  }
}

// ---- reading back

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Record<string, number>;
}

function readVarint(b: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= b.length) throw new Error('truncated varint');
    const byte = b[pos++]!;
    v |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [v, pos];
    shift += 7n;
  }
}

/** The fields of one protobuf message: field number → values (numbers, or bytes for length-delimited). */
function fields(b: Uint8Array): [number, number | bigint | Uint8Array][] {
  const out: [number, number | bigint | Uint8Array][] = [];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 0;
  while (pos < b.length) {
    const [tag, p] = readVarint(b, pos);
    pos = p;
    const field = Number(tag >> 3n);
    switch (Number(tag & 7n)) {
      case 0: {
        const [v, q] = readVarint(b, pos);
        out.push([field, v]);
        pos = q;
        break;
      }
      case 1:
        out.push([field, view.getFloat64(pos, true)]);
        pos += 8;
        break;
      case 2: {
        const [len, q] = readVarint(b, pos);
        out.push([field, b.subarray(q, q + Number(len))]);
        pos = q + Number(len);
        break;
      }
      case 5:
        out.push([field, view.getFloat32(pos, true)]);
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type in field ${field}`);
    }
  }
  return out;
}

/** Every event of a tfevents file; a bad CRC or a torn record is an Error naming the file and offset. */
export function readEvents(file: string): DecodedEvent[] {
  const b = readFileSync(file);
  const events: DecodedEvent[] = [];
  let pos = 0;
  while (pos < b.length) {
    if (pos + 12 > b.length) throw new Error(`${file}: torn record at byte ${pos}`);
    const len = Number(b.readBigUInt64LE(pos));
    if (b.readUInt32LE(pos + 8) !== maskedCrc32c(b.subarray(pos, pos + 8))) throw new Error(`${file}: bad length CRC at byte ${pos}`);
    const data = b.subarray(pos + 12, pos + 12 + len);
    if (data.length !== len || pos + 16 + len > b.length) throw new Error(`${file}: torn record at byte ${pos}`);
    if (b.readUInt32LE(pos + 12 + len) !== maskedCrc32c(data)) throw new Error(`${file}: bad data CRC at byte ${pos}`);
    const e: DecodedEvent = { wallTime: 0, step: 0, scalars: {} };
    for (const [f, v] of fields(data)) {
      if (f === 1) e.wallTime = v as number;
      else if (f === 2) e.step = Number(v as bigint);
      else if (f === 3) e.fileVersion = Buffer.from(v as Uint8Array).toString();
      else if (f === 5)
        for (const [vf, value] of fields(v as Uint8Array)) {
          if (vf !== 1) continue;
          let tag = '';
          let x = NaN;
          for (const [k, y] of fields(value as Uint8Array)) {
            if (k === 1) tag = Buffer.from(y as Uint8Array).toString();
            else if (k === 2) x = y as number;
          }
          e.scalars[tag] = x;
        }
    }
    events.push(e);
    pos += 16 + len;
  }
  return events;
}
