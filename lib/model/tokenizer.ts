/**
 * Tokenizer for HF model directories — T5's Unigram and the byte-level BPE of Llama 3 / Qwen2 —:
 * tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, HF's own pure-JS
 * implementation, so ids match the Python tokenizer.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { padBatch, tensor, type Tensor } from './tensor.js';

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
  /** Where the padding goes: right (default; training batches) or left (decoder-only generation prompts). */
  paddingSide?: 'right' | 'left';
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
    const eos = hf.token_to_id(tokenName(config.eos_token, '</s>'));
    // Byte-level BPE tokenizers (Llama 3, some Qwen2) often have no pad token: pad with EOS then, as
    // HF generation does (padding is masked out, so its id never matters to the model).
    const noPad = (config.pad_token === undefined || config.pad_token === null) && hf.token_to_id('<pad>') === undefined;
    const pad = noPad ? eos : hf.token_to_id(tokenName(config.pad_token, '<pad>'));
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

  /** [B, L] ids and attention mask, right-padded unless paddingSide is 'left'. */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): { inputIds: Tensor<Int32Array>; attentionMask: Tensor<Int32Array> } {
    const rows = texts.map((t) => this.encode(t, options));
    if (options.paddingSide === 'left') {
      const L = Math.max(1, ...rows.map((r) => r.length));
      const ids = new Int32Array(rows.length * L).fill(this.padId);
      const mask = new Int32Array(rows.length * L);
      rows.forEach((r, i) => {
        ids.set(r, (i + 1) * L - r.length);
        mask.fill(1, (i + 1) * L - r.length, (i + 1) * L);
      });
      return { inputIds: tensor(ids, [rows.length, L]), attentionMask: tensor(mask, [rows.length, L]) };
    }
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

export interface BuildT5TokenizerOptions {
  vocabSize?: number;
  /** Fewest occurrences for a word to become a whole piece (default 2). */
  minCount?: number;
  /**
   * Words never made whole pieces, so they are written letter by letter wherever they appear
   * (`"Abby",` too: a corpus word is left out when any of its letter runs is one of these). A model
   * trained from scratch sees only its tokens: for a task about spelling (Last Letter), a name
   * that is one token hides the letters the answer is made of.
   */
  spell?: Iterable<string>;
}

/** A word's runs of letters: `"Abby",` → ["Abby"]. */
const LETTER_RUNS = /\p{L}+/gu;

/**
 * Builds a T5-style Unigram tokenizer (Metaspace pre-tokenizer, "</s>" appended) from a corpus:
 * specials, every character seen, then the most frequent words as whole pieces (but the words to
 * `spell`). For tasks with no pretrained tokenizer at hand (synthetic data, tests); the result is a
 * regular tokenizer.json that HF's Python tokenizers loads too.
 */
export function buildT5Tokenizer(corpus: Iterable<string>, options: BuildT5TokenizerOptions = {}): Tokenizer {
  const vocabSize = options.vocabSize ?? 1000;
  const minCount = options.minCount ?? 2;
  const spell = new Set(options.spell ?? []);
  const spelt = (word: string) => spell.size > 0 && (word.match(LETTER_RUNS) ?? []).some((run) => spell.has(run));
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
    if (n < minCount || seen.has(w) || spelt(w)) continue;
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

/** GPT-2's byte -> printable character map (what ByteLevel pre-tokenizers and decoders use). */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + extra++);
  return map;
}

/** GPT-2's pre-tokenizer pattern, which HF's ByteLevel pre-tokenizer applies when use_regex is true. */
const BYTE_LEVEL_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Builds a byte-level BPE tokenizer (the Llama 3 / Qwen2 kind: GPT-2 byte map, ByteLevel
 * pre-tokenizer and decoder, any text encodable, no unknown token) from a corpus: the 256 byte
 * symbols, then the most frequent merges (pairs seen at least twice) up to vocabSize in all, then
 * the special tokens `<|endoftext|>` (EOS and padding), `<|im_start|>` and `<|im_end|>`. For
 * from-scratch demo models; the result is written in HF's tokenizer.json format (loading it in the
 * Python library is not tested here).
 */
export function buildByteLevelBpeTokenizer(corpus: Iterable<string>, options: { vocabSize?: number } = {}): Tokenizer {
  const vocabSize = options.vocabSize ?? 1000;
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 256 + specials.length) {
    throw new Error(`buildByteLevelBpeTokenizer: vocabSize must be an integer >= ${256 + specials.length} (256 bytes + specials), got ${vocabSize}`);
  }
  const byteChar = bytesToUnicode();
  const encoder = new TextEncoder();
  // Each distinct pre-token as its byte symbols, with its count.
  const counts = new Map<string, number>();
  for (const text of corpus) for (const m of text.matchAll(BYTE_LEVEL_SPLIT)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const words = [...counts].map(([w, n]) => ({ symbols: Array.from(encoder.encode(w), (b) => byteChar[b]!), n }));
  const vocab: Record<string, number> = {};
  byteChar.forEach((c, i) => (vocab[c] = i));
  const merges: string[] = [];
  const budget = vocabSize - specials.length;
  while (256 + merges.length < budget) {
    const pairs = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = `${w.symbols[i]} ${w.symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + w.n);
      }
    let best: string | undefined;
    let bestN = 1; // a pair seen once saves nothing
    for (const [k, n] of pairs) {
      if (n > bestN || (n === bestN && best !== undefined && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push(best);
    vocab[a + b] = 256 + merges.length - 1;
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
    }
  }
  const first = 256 + merges.length;
  const added = specials.map((content, i) => ({ id: first + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  for (const t of added) vocab[t.content] = t.id;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const config = {
    eos_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    bos_token: null,
    model_max_length: 32768,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return Tokenizer.fromJSON(json, config, 'built tokenizer');
}
