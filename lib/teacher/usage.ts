/** Token usage and its cost in USD. */

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** USD per million tokens. */
export interface Pricing {
  inputPerMillion: number;
  outputPerMillion: number;
}

/**
 * List prices (USD / 1M tokens) of a few teacher models, as published at the time of writing;
 * they change — pass your own `Pricing` (CLI: --price-input/--price-output) for real accounting.
 */
export const KNOWN_PRICING: Readonly<Record<string, Pricing>> = {
  'gpt-3.5-turbo-instruct': { inputPerMillion: 1.5, outputPerMillion: 2.0 },
  'gpt-3.5-turbo': { inputPerMillion: 0.5, outputPerMillion: 1.5 },
  'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 },
  'gpt-4o': { inputPerMillion: 2.5, outputPerMillion: 10.0 },
};

export function pricingFor(model: string): Pricing | undefined {
  return KNOWN_PRICING[model];
}

export function costUsd(usage: TokenUsage, pricing: Pricing | undefined): number | undefined {
  if (!pricing) return undefined;
  return (usage.promptTokens * pricing.inputPerMillion + usage.completionTokens * pricing.outputPerMillion) / 1e6;
}

export function addUsage(into: TokenUsage, more: TokenUsage): void {
  into.promptTokens += more.promptTokens;
  into.completionTokens += more.completionTokens;
}
