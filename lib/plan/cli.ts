/**
 * `mentor-kd plan`: per-rank memory of a training run, by part, and whether it fits.
 *   plan --config run.yaml                       the mentor and the student stages of a run
 *   plan --model DIR | --preset flan-t5-base     one model, with --batch --source-len --target-len
 *        --ranks --dtype --bf16 --checkpointing --sharding  (defaults: train()'s)
 *   --memory 24GiB                               default: the memory available now
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../config/load.js';
import { SHARDING, TRAIN_DEFAULTS, activationCheckpointingSchema, resolveBf16, type ActivationCheckpointing, type Sharding } from '../config/train-settings.js';
import type { ModelInit } from '../config/schema.js';
import { availableMemoryBytes } from './available.js';
import { parseBytes } from './bytes.js';
import { estimateMemory, type PlanModelConfig } from './estimate.js';
import { MODEL_PRESETS } from './presets.js';
import { describePlan } from './report.js';
import { loraSettingsSchema, type LoraSettings } from '../model/lora-settings.js';

interface PlanOptions {
  config?: string;
  model?: string;
  preset?: string;
  batch?: string;
  sourceLen?: string;
  targetLen?: string;
  ranks: string;
  dtype: string;
  bf16?: boolean;
  checkpointing?: string;
  sharding?: string;
  memory?: string;
  lora?: string | boolean;
  loraR?: string;
}

/** --lora [modules] and --lora-r: LoRA's settings (PEFT's defaults for what is not given), or undefined. */
function loraOption(o: PlanOptions): LoraSettings | undefined {
  if (o.lora === undefined) {
    if (o.loraR !== undefined) throw new Error('plan: --lora-r needs --lora');
    return undefined;
  }
  const input = {
    ...(typeof o.lora === 'string' ? { target_modules: o.lora.split(',').map((m) => m.trim()) } : {}),
    ...(o.loraR !== undefined ? { r: Number(o.loraR) } : {}),
  };
  const parsed = loraSettingsSchema.safeParse(input);
  if (!parsed.success) throw new Error(`plan: --lora: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  return parsed.data;
}

function count(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`plan: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** A model directory's config.json, or an Error naming the file. */
export function readModelConfig(dir: string): PlanModelConfig {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`plan: ${file} is missing (a HF T5 model directory has one)`);
  }
  return JSON.parse(text) as PlanModelConfig;
}

function initConfig(init: ModelInit, vocabSize: number, where: string): PlanModelConfig {
  if ('model_name_or_path' in init) {
    if (!init.model_name_or_path.startsWith('/'))
      throw new Error(`plan: ${where}.init.model_name_or_path ${init.model_name_or_path} is a Hub id: download it first (plan reads config.json)`);
    return readModelConfig(init.model_name_or_path);
  }
  return { vocab_size: vocabSize, ...(init.config as Partial<PlanModelConfig>) } as PlanModelConfig;
}

export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('per-rank memory of training (weights, gradients, AdamW state, activations) and whether it fits')
    .option('--config <file>', 'a run configuration: plans its mentor and student training stages')
    .option('--model <dir>', 'a HF T5 model directory (its config.json)')
    .option('--preset <name>', `a model preset: ${Object.keys(MODEL_PRESETS).join(', ')}`)
    .option('--batch <n>', `per_device_train_batch_size (default ${TRAIN_DEFAULTS.per_device_train_batch_size})`)
    .option('--source-len <n>', `maxSourceLength (default ${TRAIN_DEFAULTS.maxSourceLength})`)
    .option('--target-len <n>', `maxTargetLength (default ${TRAIN_DEFAULTS.maxTargetLength})`)
    .option('--ranks <n>', 'data-parallel ranks (each holds a replica; bytes are per rank)', '1')
    .option('--dtype <dtype>', 'weight dtype: float32 | bfloat16', 'float32')
    .option('--bf16', 'bf16 autocast (activations in bf16)')
    .option('--checkpointing <mode>', `activationCheckpointing: none | blocks | every-<k> (default ${TRAIN_DEFAULTS.activationCheckpointing})`)
    .option('--sharding <stage>', `train.sharding: none | zero1 | zero2 (default ${TRAIN_DEFAULTS.sharding}; needs --ranks > 1 to divide)`)
    .option('--memory <size>', 'memory per rank to fit in, e.g. 24GiB (default: available now)')
    .option('--lora [modules]', 'LoRA: adapters only are trained (modules: comma-separated, default q,v)')
    .option('--lora-r <n>', "LoRA's rank r (default 8)")
    .action((o: PlanOptions) => {
      const sources = [o.config, o.model, o.preset].filter((x) => x !== undefined).length;
      if (sources !== 1) throw new Error('plan: give exactly one of --config, --model, --preset');
      if (o.dtype !== 'float32' && o.dtype !== 'bfloat16') throw new Error(`plan: --dtype must be float32 or bfloat16, got ${JSON.stringify(o.dtype)}`);
      const ranks = count('--ranks', o.ranks, 1);
      const available = availableMemoryBytes();
      const memory = o.memory !== undefined ? parseBytes(o.memory, 'plan: --memory') : available;
      if (memory === undefined) throw new Error('plan: the available memory is unknown here: give --memory');
      const memoryWhat = o.memory !== undefined ? '--memory' : 'available now';
      let checkpointing: ActivationCheckpointing | undefined;
      if (o.checkpointing !== undefined) {
        const parsed = activationCheckpointingSchema.safeParse(o.checkpointing);
        if (!parsed.success) throw new Error(`plan: --checkpointing must be none, blocks or every-<k> (k >= 1), got ${JSON.stringify(o.checkpointing)}`);
        checkpointing = parsed.data;
      }
      if (o.sharding !== undefined && !(SHARDING as readonly string[]).includes(o.sharding))
        throw new Error(`plan: --sharding must be one of ${SHARDING.join(', ')}, got ${JSON.stringify(o.sharding)}`);
      const sharding = o.sharding as Sharding | undefined;
      const lora = loraOption(o);
      const plans: { title: string; input: Parameters<typeof estimateMemory>[0] }[] = [];
      if (o.config) {
        const c = resolveConfig({ config: o.config });
        const device = (c as { device?: string }).device ?? 'cpu';
        for (const stage of ['mentor', 'student'] as const) {
          const t = c[stage].train;
          plans.push({
            title: `${stage} (${o.config})`,
            input: {
              config: initConfig(c[stage].init, c.tokenizer.vocabSize, stage),
              batch: count('--batch', o.batch, t.per_device_train_batch_size),
              sourceLength: count('--source-len', o.sourceLen, t.maxSourceLength),
              targetLength: count('--target-len', o.targetLen, t.maxTargetLength),
              ranks,
              dtype: o.dtype,
              bf16: o.bf16 ?? resolveBf16(t.bf16, device),
              activationCheckpointing: checkpointing ?? t.activationCheckpointing,
              sharding: sharding ?? t.sharding,
              lora: lora ?? t.lora,
            },
          });
        }
      } else {
        const preset = o.preset !== undefined ? MODEL_PRESETS[o.preset as keyof typeof MODEL_PRESETS] : undefined;
        if (o.preset !== undefined && !preset)
          throw new Error(`plan: unknown --preset ${JSON.stringify(o.preset)} (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
        plans.push({
          title: o.preset ?? o.model!,
          input: {
            config: preset ?? readModelConfig(o.model!),
            batch: count('--batch', o.batch, TRAIN_DEFAULTS.per_device_train_batch_size),
            sourceLength: count('--source-len', o.sourceLen, TRAIN_DEFAULTS.maxSourceLength),
            targetLength: count('--target-len', o.targetLen, TRAIN_DEFAULTS.maxTargetLength),
            ranks,
            dtype: o.dtype,
            bf16: o.bf16 ?? false,
            activationCheckpointing: checkpointing ?? TRAIN_DEFAULTS.activationCheckpointing,
            sharding: sharding ?? TRAIN_DEFAULTS.sharding,
            lora,
          },
        });
      }
      let fitsAll = true;
      for (const p of plans) {
        const e = estimateMemory(p.input);
        const i = p.input;
        console.log(
          describePlan(
            `${p.title}: batch ${i.batch}, ${i.sourceLength}/${i.targetLength} tokens, ${i.ranks} rank(s), ${i.dtype}${i.bf16 ? ' + bf16 autocast' : ''}, checkpointing ${i.activationCheckpointing}${i.sharding && i.sharding !== 'none' ? `, sharding ${i.sharding}` : ''}${i.lora ? `, LoRA r=${i.lora.r} on ${i.lora.target_modules.join(',')}` : ''}`,
            e,
            memory,
            memoryWhat,
          ),
        );
        if (e.totalBytes > memory) fitsAll = false;
      }
      if (!fitsAll) process.exitCode = 1;
    });
}
