/** Stage `tokenizer`: the configured tokenizer.json, or one built from the training questions and the kept teacher rationales. */
import { Tokenizer, buildT5Tokenizer } from '../../model/tokenizer.js';
import { outcome, type StageContext, type StageOutcome } from './context.js';
import type { DataOutput } from './data.js';
import type { FilterOutput } from './filter.js';
import { target } from './shared.js';

export interface TokenizerInput {
  data: DataOutput;
  filter: FilterOutput;
}

export interface TokenizerSummary {
  vocabSize: number;
  /** False when loaded from tokenizer.dir. */
  built: boolean;
}

export interface TokenizerOutput extends StageOutcome<TokenizerSummary> {
  tokenizer: Tokenizer;
}

export async function tokenizerStage(ctx: StageContext, input: TokenizerInput): Promise<TokenizerOutput> {
  const c = ctx.config;
  const key = { tokenizer: c.tokenizer, data: input.data.manifest.key, filter: input.filter.manifest.key };
  const run = await ctx.run.stage('tokenizer', key, async (dir): Promise<TokenizerSummary> => {
    const texts = () => [...input.data.splits.train.map((r) => r.question), ...input.filter.keptAll.map((k) => target(k.rationale, k.answer))];
    const tok = c.tokenizer.dir ? await Tokenizer.load(c.tokenizer.dir) : buildT5Tokenizer(texts(), { vocabSize: c.tokenizer.vocabSize });
    await tok.save(dir);
    return { vocabSize: tok.vocabSize, built: !c.tokenizer.dir };
  });
  const tokenizer = await Tokenizer.load(run.dir);
  return { ...outcome('tokenizer', run, `${run.manifest.summary.built ? 'built' : 'loaded'} tokenizer, ${tokenizer.vocabSize} tokens`), tokenizer };
}
