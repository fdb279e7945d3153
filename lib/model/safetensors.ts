/** Native safetensors reader/writer, for tooling and tests. */
import { callNative, native } from '../native/loader.js';
import type { SafetensorsContents } from '../native/binding.js';
import type { Tensor } from './tensor.js';

export type { SafetensorsContents } from '../native/binding.js';

export function readSafetensors(path: string): Promise<SafetensorsContents> {
  return callNative(() => native().io.readSafetensors(path));
}

export function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  return callNative(() => native().io.writeSafetensors(path, tensors, metadata));
}
