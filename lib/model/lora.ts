/**
 * LoRA on a native T5Model, in Hugging Face PEFT's format (native/t5/lora.h):
 * - addLora(): adapters on the target modules (A kaiming-uniform, B zero), base weights frozen;
 *   train() then updates the adapters only, and its checkpoints hold adapter_config.json +
 *   adapter_model.safetensors (PEFT's key names) besides the optimizer and RNG state.
 * - mergeLora(): base + adapter directory -> a plain HF model directory with W + B·A·lora_alpha/r
 *   (`mentor-kd model merge-lora`).
 * Inference with an adapted model (generation for augmentation and evaluation, soft labels) runs
 * on a merged copy of the weights: generate() and the generation engine merge before decoding,
 * and T5Model.load() of an adapter directory loads its base with the adapters merged in.
 */
import { copyFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { callNative } from '../native/index.js';
import { T5Model } from './t5-model.js';
import { loraMismatch, loraSettingsSchema, type LoraModelConfig, type LoraSettings, type LoraSettingsInput } from './lora-settings.js';
import { describeIssues } from '../config/train-settings.js';

/** The adapters attached to a model (PEFT's names), or null. */
export interface LoraInfo {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
}

interface AdaptedInfo {
  lora: LoraInfo | null;
  numTrainableParameters: number;
}

/** The model's adapters, or null when it has none. */
export function loraInfo(model: T5Model): LoraInfo | null {
  return (model.native.info() as unknown as AdaptedInfo).lora;
}

/** What an optimizer updates: the adapters' parameters under LoRA, else every parameter. */
export function trainableParameterCount(model: T5Model): number {
  return (model.native.info() as unknown as AdaptedInfo).numTrainableParameters;
}

/** The adapters' tensor names, as adapter_model.safetensors holds them. */
export function loraParameterNames(model: T5Model): string[] {
  return model.native.loraParameterNames();
}

/**
 * Attaches new adapters (PEFT's init, drawn from `seed`) and freezes the base. Errors are one line
 * naming `field` (e.g. `mentor.train.lora.r must be an integer >= 1, got 0`), before any work.
 */
export function addLora(model: T5Model, settings: LoraSettingsInput, seed: number, field = 'lora'): LoraSettings {
  const parsed = loraSettingsSchema.safeParse(settings);
  if (!parsed.success) throw new Error(describeIssues(parsed.error, field).replace(`${field}: `, `${field}.`));
  const why = loraMismatch(parsed.data, model.config() as unknown as LoraModelConfig, field);
  if (why) throw new Error(why);
  if (loraInfo(model)) throw new Error(`${field}: this model already has LoRA adapters`);
  model.native.addLora({ ...parsed.data, seed, field });
  return parsed.data;
}

/** Attaches the adapters of a PEFT adapter directory (adapter_config.json + adapter_model.safetensors). */
export async function loadLora(model: T5Model, dir: string): Promise<void> {
  await callNative(() => model.native.loadLora(dir));
}

/** Writes the model's adapters as a PEFT adapter directory. */
export async function saveLora(model: T5Model, dir: string): Promise<void> {
  await callNative(() => model.native.saveLora(dir));
}

/** A copy of the model (its dtype) with the adapters merged in, W + B·A·lora_alpha/r; none attached. */
export async function mergedModel(model: T5Model): Promise<T5Model> {
  return T5Model.fromNative(await callNative(() => model.native.merged()));
}

export interface MergeLoraOptions {
  /** The base model directory (the adapter's base_model_name_or_path is not needed). */
  base: string;
  /** A PEFT LoRA adapter directory, e.g. a LoRA training checkpoint. */
  adapter: string;
  /** Where the merged HF model directory goes. */
  output: string;
  dtype?: 'float32' | 'bfloat16';
  maxShardBytes?: number;
}

/** Tokenizer files a model directory may carry along. */
const SIDE_FILES = /^(tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|spiece\.model|added_tokens\.json)$/;

/**
 * base + adapter -> a plain HF model directory (W + B·A·lora_alpha/r in fp32, then the dtype),
 * loadable as any other. Returns the adapters' settings.
 */
export async function mergeLora(o: MergeLoraOptions): Promise<LoraInfo> {
  if (!existsSync(join(o.adapter, 'adapter_config.json')))
    throw new Error(`merge-lora: ${o.adapter} has no adapter_config.json (not a PEFT adapter directory)`);
  const base = await T5Model.load(o.base, { dtype: o.dtype ?? 'float32' });
  try {
    await loadLora(base, o.adapter);
    const info = loraInfo(base)!;
    const merged = await callNative(() => base.native.merged());
    try {
      await callNative(() => merged.save(o.output, { maxShardBytes: o.maxShardBytes ?? 0 }));
    } finally {
      merged.dispose();
    }
    for (const src of [o.base, o.adapter])
      for (const f of await readdir(src)) if (SIDE_FILES.test(f) && !existsSync(join(o.output, f))) await copyFile(join(src, f), join(o.output, f));
    return info;
  } finally {
    base.dispose();
  }
}
