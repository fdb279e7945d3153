/**
 * LoRA's settings under PEFT's LoraConfig names (r, lora_alpha, lora_dropout, target_modules),
 * with PEFT's defaults (r 8, lora_alpha 8, lora_dropout 0; target_modules q, v: PEFT's default for
 * T5), and the trainable-parameter count they imply. A training setting (`lora` in train() and in
 * mentor.train / student.train of a run config); native/t5/lora.h implements the adapters.
 */
import { z } from 'zod';

/** T5's linear layers an adapter can go on (wi for relu feed-forwards; wi_0, wi_1 for gated ones). */
export const LORA_TARGET_MODULES = ['q', 'k', 'v', 'o', 'wi', 'wi_0', 'wi_1', 'wo'] as const;
export type LoraTargetModule = (typeof LORA_TARGET_MODULES)[number];

const shown = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
const moduleList = LORA_TARGET_MODULES.join(', ');

export const loraSettingsSchema = z.strictObject({
  /** The adapters' rank. */
  r: z
    .int({ error: (iss) => `must be an integer >= 1, got ${shown(iss.input)}` })
    .min(1, { error: (iss) => `must be an integer >= 1, got ${shown(iss.input)}` })
    .default(8),
  /** Scale of the adapters' output: lora_alpha / r. */
  lora_alpha: z
    .number({ error: (iss) => `must be > 0, got ${shown(iss.input)}` })
    .refine((x) => Number.isFinite(x) && x > 0, { error: (iss) => `must be > 0, got ${shown(iss.input)}` })
    .default(8),
  /** Dropout on the adapters' input only (the base layer sees x as it is). */
  lora_dropout: z
    .number({ error: (iss) => `must be in [0, 1), got ${shown(iss.input)}` })
    .refine((x) => x >= 0 && x < 1, { error: (iss) => `must be in [0, 1), got ${shown(iss.input)}` })
    .default(0),
  /** Which linear layers get adapters, in every encoder and decoder block (self and cross attention). */
  target_modules: z
    .array(z.enum(LORA_TARGET_MODULES, { error: (iss) => `must name T5 linear layers (${moduleList}), got ${shown(iss.input)}` }), {
      error: `must be a list of module names (${moduleList})`,
    })
    .min(1, { error: `must list one or more of ${moduleList}` })
    .refine((m) => new Set(m).size === m.length, { error: 'lists a module twice' })
    .default(['q', 'v']),
});
export type LoraSettingsInput = z.input<typeof loraSettingsSchema>;
export type LoraSettings = z.output<typeof loraSettingsSchema>;

/** The config.json fields the count reads (HF T5's names). */
export interface LoraModelConfig {
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_heads: number;
  num_layers: number;
  num_decoder_layers?: number;
  feed_forward_proj?: string;
}

/** Why `lora` cannot go on a model of `config` ('' when it can), naming `field`. */
export function loraMismatch(lora: LoraSettings, config: LoraModelConfig, field: string): string {
  const gated = (config.feed_forward_proj ?? 'relu').startsWith('gated-');
  for (const m of lora.target_modules) {
    if (gated && m === 'wi')
      return `${field}.target_modules: this model has no 'wi' (its feed_forward_proj ${config.feed_forward_proj} is gated: wi_0 and wi_1)`;
    if (!gated && (m === 'wi_0' || m === 'wi_1'))
      return `${field}.target_modules: this model has no '${m}' (its feed_forward_proj ${config.feed_forward_proj ?? 'relu'} is not gated: wi)`;
  }
  return '';
}

/**
 * Trainable parameters under LoRA: r·(in + out) per adapted layer. Attention layers (q, k, v, o)
 * occur once per encoder block and twice per decoder block (self and cross attention), the
 * feed-forward ones once per block.
 */
export function loraParameterCount(lora: LoraSettings, c: LoraModelConfig): number {
  const D = c.d_model,
    I = c.num_heads * c.d_kv,
    F = c.d_ff;
  const Le = c.num_layers,
    Ld = c.num_decoder_layers ?? c.num_layers;
  const shape: Record<LoraTargetModule, [number, number]> = {
    q: [D, I],
    k: [D, I],
    v: [D, I],
    o: [I, D],
    wi: [D, F],
    wi_0: [D, F],
    wi_1: [D, F],
    wo: [F, D],
  };
  let n = 0;
  for (const m of lora.target_modules) {
    const [inF, outF] = shape[m];
    const layers = m.length === 1 ? Le + 2 * Ld : Le + Ld;
    n += layers * lora.r * (inF + outF);
  }
  return n;
}
