import { describe, expect, it } from 'vitest';

import { configFileJsonSchema } from '../lib/config/json-schema.js';

type Node = { properties?: Record<string, Node>; required?: string[] };

describe('config schema for files', () => {
  it('does not require what the base config supplies, and still requires what a run must say', () => {
    const schema = configFileJsonSchema() as Node;
    const required = schema.required ?? [];
    for (const defaulted of ['seed', 'device', 'report_to']) expect(required).not.toContain(defaulted);
    // The base names no task, data or models: a file must.
    for (const own of ['task', 'data', 'mentor', 'student']) expect(required).toContain(own);
    const teacher = schema.properties!.teacher!;
    expect(schema.properties!.mentor!.required ?? []).toContain('init');
    expect(teacher.required ?? []).not.toContain('concurrency');
    expect(Object.keys(teacher.properties!)).toContain('concurrency');
  });
});
