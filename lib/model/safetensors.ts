/** Native safetensors reader/writer, for tooling and tests. */
import { callNative, native } from '../native.js';
import type { Tensor } from './tensor.js';

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export function readSafetensors(path: string): Promise<SafetensorsContents> {
  return callNative(() => native().readSafetensors(path) as Promise<SafetensorsContents>);
}

export function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  return callNative(() => native().writeSafetensors(path, tensors, metadata) as Promise<void>);
}
