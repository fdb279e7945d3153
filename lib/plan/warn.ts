/**
 * The warning train() logs before a run whose planned peak exceeds the memory available now
 * (CPU models: an accelerator's memory is not this process's). Lengths are the longest the data
 * holds after truncation: batches are padded to their longest example, so no step needs more.
 */
import type { ActivationCheckpointing, Sharding } from '../config/train-settings.js';
import { availableMemoryBytes } from './available.js';
import { formatBytes } from './bytes.js';
import { estimateMemory, type PlanModelConfig } from './estimate.js';
import type { LoraSettings } from '../model/lora-settings.js';

export interface TrainingShape {
  batch: number;
  longestSource: number;
  longestTarget: number;
  ranks: number;
  bf16: boolean;
  activationCheckpointing: ActivationCheckpointing;
  sharding?: Sharding;
  lora?: LoraSettings;
}

/**
 * The plan counts tensors; a CPU process's resident memory is higher by what its allocator keeps of
 * freed blocks: under bin/mentor-kd's settings at most 1.19 times the plan in docs/memory.md's
 * measurements (flan-t5-small to -large, full fine-tuning, LoRA, checkpointing, 2 ranks with each
 * sharding stage). The warning holds the plan to that bound, with a margin, so that it speaks
 * before the kernel's OOM killer does.
 */
export const CPU_RESIDENT_HEADROOM = 1.25;

/** A one-line warning, or null when the plan fits (or the memory is unknown). */
export function trainingMemoryWarning(config: PlanModelConfig, shape: TrainingShape, available = availableMemoryBytes()): string | null {
  if (available === undefined || shape.longestSource < 1 || shape.longestTarget < 1) return null;
  const e = estimateMemory({
    config,
    batch: shape.batch,
    sourceLength: shape.longestSource,
    targetLength: shape.longestTarget,
    ranks: shape.ranks,
    bf16: shape.bf16,
    activationCheckpointing: shape.activationCheckpointing,
    sharding: shape.sharding,
    lora: shape.lora,
  });
  const resident = e.totalBytes * CPU_RESIDENT_HEADROOM;
  if (resident <= available) return null;
  const hint =
    shape.activationCheckpointing === 'none'
      ? 'set activationCheckpointing: blocks, or lower per_device_train_batch_size / maxSourceLength'
      : 'lower per_device_train_batch_size or maxSourceLength / maxTargetLength';
  return (
    `mentor-kd: warning: training may not fit in memory: the plan needs ${formatBytes(e.totalBytes)} per rank ` +
    `(up to ${formatBytes(resident)} resident: glibc keeps freed blocks) ` +
    `(activations ${formatBytes(e.activationBytes)} at batch ${shape.batch}, ${shape.longestSource}/${shape.longestTarget} tokens) ` +
    `but ${formatBytes(available)} is available; ${hint} (mentor-kd plan shows the parts)`
  );
}
