/**
 * Tokenizer for T5 model directories: tokenizer.json (+ tokenizer_config.json) through
 * @huggingface/tokenizers, HF's own pure-JS implementation, so ids match the Python tokenizer.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { padBatch, type Tensor } from './tensor.js';

/** A special token from tokenizer_config.json: a string or HF's AddedToken object `{content}`. */
function tokenName(v: unknown, fallback: string): string {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return fallback;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(JSON.stringify(v)).slice(0, 40)}`;
}

/**
 * HF's Metaspace replacement is one character (a `char` in the Rust tokenizers). The JS library
 * accepts any string, and a replacement of thousands of characters (found by the fuzzer) makes
 * encoding a short text take seconds: refused, naming the field.
 */
function checkMetaspace(node: unknown, path: string, source: string, depth = 0): void {
  if (node === null || typeof node !== 'object' || depth > 16) return;
  if (Array.isArray(node)) {
    node.forEach((x, i) => checkMetaspace(x, `${path}[${i}]`, source, depth + 1));
    return;
  }
  const o = node as Record<string, unknown>;
  if (o.type === 'Metaspace' && (typeof o.replacement !== 'string' || [...o.replacement].length !== 1)) {
    const got = typeof o.replacement === 'string' ? `${[...o.replacement].length} characters` : JSON.stringify(o.replacement);
    throw new Error(`${source}: field "${path}.replacement" must be one character (HF's Metaspace takes a char), got ${got}`);
  }
  for (const key of ['pretokenizers', 'decoders']) if (key in o) checkMetaspace(o[key], `${path}.${key}`, source, depth + 1);
}

/**
 * A JSON object read from `path`: an Error naming the file when it cannot be read, is not a regular
 * file (a FIFO would block the read forever), is larger than `maxBytes`, is not UTF-8, does not
 * parse, or is not an object.
 */
async function readJsonObject(path: string, maxBytes = 1 << 30): Promise<Record<string, unknown>> {
  let bytes: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > maxBytes) throw new Error(`${st.size} bytes is more than the ${maxBytes} allowed`);
    bytes = await readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new Error(`${path}: not valid UTF-8 text`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path}: expected a JSON object, got ${describeJson(value)}`);
  return value as Record<string, unknown>;
}

export interface EncodeBatchOptions {
  /** Truncate each sequence to this many tokens (keeping the final EOS). */
  maxLength?: number;
  addSpecialTokens?: boolean;
}

export class Tokenizer {
  readonly padId: number;
  readonly eosId: number;
  readonly vocabSize: number;

  private constructor(
    private readonly hf: HfTokenizer,
    readonly json: Record<string, unknown>,
    readonly config: Record<string, unknown>,
  ) {
    const pad = hf.token_to_id(tokenName(config.pad_token, '<pad>'));
    const eos = hf.token_to_id(tokenName(config.eos_token, '</s>'));
    if (pad === undefined || eos === undefined) {
      throw new Error(
        `no ${pad === undefined ? 'pad' : 'eos'} token ("${tokenName(pad === undefined ? config.pad_token : config.eos_token, pad === undefined ? '<pad>' : '</s>')}") in the vocabulary`,
      );
    }
    this.padId = pad;
    this.eosId = eos;
    this.vocabSize = hf.get_vocab(true).size;
  }

  /**
   * Loads tokenizer.json and tokenizer_config.json (optional) from a HF model directory. Every
   * failure (missing, not a regular file, not UTF-8, not JSON, not a JSON object, a special token
   * that is not a string or not in the vocabulary) is an Error naming the file.
   */
  static async load(dir: string): Promise<Tokenizer> {
    if (typeof dir !== 'string' || dir === '')
      throw new Error(`tokenizer: the model directory must be a non-empty path, got ${JSON.stringify(dir) ?? String(dir)}`);
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) {
      throw new Error(`${path}: not found (a HF model directory needs tokenizer.json; slow SentencePiece-only tokenizers are not supported)`);
    }
    const json = await readJsonObject(path);
    const cfgPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgPath) ? await readJsonObject(cfgPath) : {};
    for (const key of ['pad_token', 'eos_token'] as const) {
      const v = config[key];
      // HF writes special tokens as a string or as an AddedToken object {content: "..."}.
      if (v !== undefined && v !== null && typeof v !== 'string' && typeof (v as { content?: unknown }).content !== 'string') {
        throw new Error(`${cfgPath}: field "${key}" must be a token string, got ${JSON.stringify(v)}`);
      }
    }
    return Tokenizer.fromJSON(json, config, path);
  }

  static fromJSON(json: Record<string, unknown>, config: Record<string, unknown> = {}, source = 'tokenizer.json'): Tokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: expected a JSON object, got ${describeJson(json)}`);
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new Error(`${source}: tokenizer_config must be a JSON object, got ${describeJson(config)}`);
    }
    checkMetaspace(json.pre_tokenizer, 'pre_tokenizer', source);
    checkMetaspace(json.decoder, 'decoder', source);
    try {
      const tok = new Tokenizer(new HfTokenizer(json, config), json, config);
      // Some malformed files build and only fail on first use (a pre-tokenizer without its fields):
      // a probe round trip here makes that a load error naming the file, not a TypeError mid-run.
      tok.decode(tok.encode('probe 0 a, b.'));
      return tok;
    } catch (e) {
      throw new Error(`${source}: cannot build the tokenizer (${(e as Error).message})`, { cause: e });
    }
  }

  /** Writes tokenizer.json and tokenizer_config.json into a model directory. */
  async save(dir: string): Promise<void> {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(this.json));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(this.config, null, 2));
  }

  /** Token ids; T5's post-processor appends </s> unless addSpecialTokens is false. */
  encode(text: string, options: { addSpecialTokens?: boolean; maxLength?: number } = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    const max = options.maxLength;
    if (max === undefined || ids.length <= max) return ids;
    const cut = ids.slice(0, max);
    if (ids[ids.length - 1] === this.eosId) cut[max - 1] = this.eosId;
    return cut;
  }

  /** Right-padded [B, L] ids and attention mask. */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): { inputIds: Tensor<Int32Array>; attentionMask: Tensor<Int32Array> } {
    const rows = texts.map((t) => this.encode(t, options));
    const { ids, mask } = padBatch(rows, this.padId);
    return { inputIds: ids, attentionMask: mask };
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }
}

/**
 * Builds a T5-style Unigram tokenizer (Metaspace pre-tokenizer, "</s>" appended) from a corpus:
 * specials, every character seen, then the most frequent words as whole pieces. For tasks with no
 * pretrained tokenizer at hand (synthetic data, tests); the result is a regular tokenizer.json that
 * HF's Python tokenizers loads too.
 */
export function buildT5Tokenizer(corpus: Iterable<string>, options: { vocabSize?: number; minCount?: number } = {}): Tokenizer {
  const vocabSize = options.vocabSize ?? 1000;
  const minCount = options.minCount ?? 2;
  const words = new Map<string, number>();
  const chars = new Map<string, number>();
  let total = 0;
  for (const text of corpus) {
    for (const w of text.split(/\s+/).filter(Boolean)) {
      const piece = '\u2581' + w;
      words.set(piece, (words.get(piece) ?? 0) + 1);
      for (const ch of w) chars.set(ch, (chars.get(ch) ?? 0) + 1);
      total++;
    }
  }
  const specials = ['<pad>', '</s>', '<unk>'];
  const logp = (n: number) => Math.log(n / Math.max(1, total));
  const vocab: [string, number][] = specials.map((s) => [s, 0]);
  vocab.push(['\u2581', logp(total)]);
  for (const [ch, n] of [...chars].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) vocab.push([ch, logp(n) - 10]);
  const seen = new Set(vocab.map((v) => v[0]));
  for (const [w, n] of [...words].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) {
    if (vocab.length >= vocabSize) break;
    if (n < minCount || seen.has(w)) continue;
    vocab.push([w, logp(n)]);
    seen.add(w);
  }
  const added = specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true, prepend_scheme: 'always' }],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true, prepend_scheme: 'always' },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
  const config = { eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>', model_max_length: 512, tokenizer_class: 'T5Tokenizer' };
  return Tokenizer.fromJSON(json, config, 'built tokenizer');
}
