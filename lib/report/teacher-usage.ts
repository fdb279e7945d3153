/**
 * The teacher's token use and its cost, from the collect stage's completion cache (one line per
 * answered request, with the usage the API reported): what this run's rationales cost to make.
 */
import { existsSync, readFileSync } from 'node:fs';
import { costUsd, pricingFor, type Pricing, type TokenUsage } from '../teacher/usage.js';

export interface TeacherUsage extends TokenUsage {
  model: string;
  requests: number;
  /** USD at the model's list price (lib/teacher/usage.ts), or null when no price is known for it. */
  costUsd: number | null;
  pricing: Pricing | null;
}

export function teacherUsage(cacheFile: string, model: string): TeacherUsage | null {
  if (!existsSync(cacheFile)) return null;
  const usage: TokenUsage = { promptTokens: 0, completionTokens: 0 };
  let requests = 0;
  for (const line of readFileSync(cacheFile, 'utf8').split('\n')) {
    if (!line) continue;
    let e: { usage?: Partial<TokenUsage> };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue; // a torn last line (killed mid-write) is not an answered request
    }
    requests++;
    usage.promptTokens += e.usage?.promptTokens ?? 0;
    usage.completionTokens += e.usage?.completionTokens ?? 0;
  }
  const pricing = pricingFor(model) ?? null;
  return { model, requests, ...usage, costUsd: pricing ? (costUsd(usage, pricing) ?? null) : null, pricing };
}
