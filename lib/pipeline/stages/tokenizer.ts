/**
 * Stage `tokenizer`: the configured tokenizer.json, or one built from the training questions and the
 * kept teacher rationales — T5's Unigram kind, or, when a from-scratch model is decoder-only, a
 * byte-level BPE (the Llama 3 / Qwen2 kind) learnt from the same text with the plain `Q: … A:`
 * prompts around the questions. Without tokenizer.dir, a causal model directory brings its own
 * tokenizer (as HF's AutoTokenizer from the model path).
 */
import { PromptFormat } from '../../model/chat-template.js';
import { Tokenizer, buildByteLevelBpeTokenizer, buildT5Tokenizer } from '../../model/tokenizer.js';
import { wordsToSpell } from '../../tasks/spelling.js';
import type { ModelDescription } from '../model-family.js';
import { outcome, type StageContext, type StageOutcome } from './context.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import { target } from './shared.js';

export interface TokenizerInput {
  data: DataOutput;
  filter: FilterOutput;
  /** The run's two models as described before building them (lib/pipeline/model-family.ts). */
  models?: { mentor: ModelDescription; student: ModelDescription };
}

export interface TokenizerSummary {
  vocabSize: number;
  /** False when loaded from tokenizer.dir (or a causal model's directory). */
  built: boolean;
  /** What was built: T5's Unigram, or a byte-level BPE for decoder-only models (absent in older runs: unigram). */
  kind?: 'unigram' | 'byte-level-bpe';
  /** The causal model directory it was loaded from (tokenizer.dir unset). */
  from?: string;
}

export interface TokenizerOutput extends StageOutcome<TokenizerSummary> {
  tokenizer: Tokenizer;
}

/** Where the run's tokenizer comes from: tokenizer.dir, a causal model directory, or built (of which kind). */
function tokenizerSource(c: StageContext['config'], models: TokenizerInput['models']): { dir?: string; build?: 'unigram' | 'byte-level-bpe' } {
  if (c.tokenizer.dir) return { dir: c.tokenizer.dir };
  const all = models ? [models.mentor, models.student] : [];
  const causalDir = all.find((m) => m.family === 'causal' && m.dir && m.tokenizerFile);
  if (causalDir) return { dir: causalDir.dir! };
  return { build: all.some((m) => m.family === 'causal' && !m.dir) ? 'byte-level-bpe' : 'unigram' };
}

export async function tokenizerStage(ctx: StageContext, input: TokenizerInput): Promise<TokenizerOutput> {
  const c = ctx.config;
  const source = tokenizerSource(c, input.models);
  // T5 runs keep their stage key; a causal source is part of it.
  const causal = source.build === 'byte-level-bpe' || (source.dir !== undefined && source.dir !== c.tokenizer.dir);
  // A built Unigram spells the words a task's answers are made of (Last Letter's names); other tasks keep their key.
  const spell = source.build === 'unigram' ? wordsToSpell(c.task, input.data.splits.train) : [];
  const key = {
    tokenizer: c.tokenizer,
    data: input.data.manifest.key,
    filter: input.filter.manifest.key,
    ...(causal ? { source } : {}),
    ...(spell.length ? { spell: 'task-words' } : {}),
  };
  const run = await ctx.run.stage('tokenizer', key, async (dir): Promise<TokenizerSummary> => {
    const targets = () => input.filter.keptAll.map((k) => target(k.rationale, k.answer));
    if (source.dir) {
      const tok = await Tokenizer.load(source.dir);
      await tok.save(dir);
      return { vocabSize: tok.vocabSize, built: false, ...(causal ? { from: source.dir } : {}) };
    }
    const questions = input.data.splits.train.map((r) => r.question);
    const tok =
      source.build === 'byte-level-bpe'
        ? buildByteLevelBpeTokenizer([...questions.map((q) => PromptFormat.plain().format(q)), ...targets()], { vocabSize: c.tokenizer.vocabSize })
        : buildT5Tokenizer([...questions, ...targets()], { vocabSize: c.tokenizer.vocabSize, spell });
    await tok.save(dir);
    return { vocabSize: tok.vocabSize, built: true, ...(source.build === 'byte-level-bpe' ? { kind: source.build } : {}) };
  });
  const tokenizer = await Tokenizer.load(run.dir);
  const s = run.manifest.summary;
  const what = s.built ? `built ${s.kind === 'byte-level-bpe' ? 'byte-level BPE ' : ''}tokenizer` : `loaded tokenizer${s.from ? ` from ${s.from}` : ''}`;
  return { ...outcome('tokenizer', run, `${what}, ${tokenizer.vocabSize} tokens`), tokenizer };
}
