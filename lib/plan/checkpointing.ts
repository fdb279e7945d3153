/** The activation-checkpointing setting as a block stride, as the native trainer reads it. */
import { ACTIVATION_CHECKPOINTING, type ActivationCheckpointing } from '../config/train-settings.js';

/** none -> 0, blocks -> 1, every-<k> -> k; an Error naming the setting otherwise. */
export function parseActivationCheckpointing(value: string): number {
  if (!ACTIVATION_CHECKPOINTING.test(value))
    throw new Error(`activationCheckpointing must be none, blocks or every-<k> (k >= 1), got ${JSON.stringify(value)}`);
  if (value === 'none') return 0;
  if (value === 'blocks') return 1;
  return Number(value.slice('every-'.length));
}

export type { ActivationCheckpointing };
