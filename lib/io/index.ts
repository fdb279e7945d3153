/** File formats: safetensors read and write (HF's tensor files), through the native reader/writer. */
export { readSafetensors, writeSafetensors } from '../model/safetensors.js';
export type { SafetensorsContents } from '../model/safetensors.js';
