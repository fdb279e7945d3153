/**
 * The JSON Schema of a config *file* (`mentor-kd config schema`): the run schema with every field
 * that baseConfig() supplies made optional, since a file is layered over the base (lib/config/load.ts).
 * What stays required is what a real run must say itself (task, data, teacher, models).
 */
import { baseConfig } from './defaults.js';
import { runConfigJsonSchema } from './schema.js';

type SchemaNode = { type?: unknown; properties?: Record<string, SchemaNode>; required?: string[]; [key: string]: unknown };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Drops from `required` the keys the defaults give, walking nested objects alongside the defaults
 * (children first: an object the defaults only start, like `mentor: { train: {} }`, stays required
 * while a field inside it does).
 */
function relaxDefaulted(node: SchemaNode, defaults: unknown): void {
  if (!isRecord(defaults) || !node.properties) return;
  for (const [key, child] of Object.entries(node.properties)) relaxDefaulted(child, defaults[key]);
  if (!node.required) return;
  const stillRequired = (k: string) => defaults[k] === undefined || (node.properties?.[k]?.required?.length ?? 0) > 0;
  const required = node.required.filter(stillRequired);
  if (required.length > 0) node.required = required;
  else delete node.required;
}

export function configFileJsonSchema(): Record<string, unknown> {
  const schema = runConfigJsonSchema() as SchemaNode;
  relaxDefaulted(schema, baseConfig());
  return schema;
}
