/**
 * HF-Auto-style loading: the model family comes from config.json's model_type — t5 loads as a
 * T5Model (encoder-decoder), llama and qwen2 as a CausalLM (decoder-only).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CausalLM } from './causal-model.js';
import { T5Model } from './t5-model.js';
import type { LoadOptions } from './t5-model.js';

export type ModelFamily = 't5' | 'causal';

const FAMILIES: Record<string, ModelFamily> = { t5: 't5', llama: 'causal', qwen2: 'causal' };

/** The family of the model in `dir`, from config.json's model_type; an Error naming the file otherwise. */
export async function modelFamily(dir: string): Promise<ModelFamily> {
  const path = join(dir, 'config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read a JSON config (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  const type = (config as { model_type?: unknown } | null)?.model_type;
  if (typeof type !== 'string') throw new Error(`${path}: field 'model_type' is missing (expected one of ${Object.keys(FAMILIES).join(', ')})`);
  const family = FAMILIES[type];
  if (!family) throw new Error(`${path}: field 'model_type' = '${type}' is not supported (expected one of ${Object.keys(FAMILIES).join(', ')})`);
  return family;
}

/** Loads `dir` as the class its config.json's model_type names. */
export async function loadModel(dir: string, options: LoadOptions = {}): Promise<T5Model | CausalLM> {
  return (await modelFamily(dir)) === 't5' ? T5Model.load(dir, options) : CausalLM.load(dir, options);
}
