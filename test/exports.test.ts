/**
 * The two export surfaces stay what they are declared to be:
 * - the shipped addon (build/Release/mentor_kd.node, loaded in a child process: the tests
 *   themselves run on the dev addon) exports exactly the namespaces and names the typed binding
 *   declares (NATIVE_EXPORTS, lib/native/binding.ts), and no dev hooks;
 * - lib/index.ts exports one namespace per area, whose names (values and types) equal the
 *   checked-in list test/fixtures/public-api.json. After an intended API change, regenerate it
 *   with MENTOR_KD_UPDATE_API=1 npx vitest run test/exports.test.ts and review the diff.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { NATIVE_EXPORTS } from '../lib/native/binding.js';

const root = resolve(__dirname, '..');
const shipped = join(root, 'build', 'Release', 'mentor_kd.node');
const apiFile = join(root, 'test', 'fixtures', 'public-api.json');

type Api = Record<string, { values: string[]; types: string[] }>;

/** Every namespace lib/index.ts exports, with the value and type names in it (from the type checker). */
function publicApi(): Api {
  const entry = join(root, 'lib', 'index.ts');
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const resolveAlias = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  const api: Api = {};
  for (const ns of checker.getExportsOfModule(moduleSymbol)) {
    const target = resolveAlias(ns);
    const values: string[] = [];
    const types: string[] = [];
    const members = target.flags & ts.SymbolFlags.Module ? checker.getExportsOfModule(target) : [];
    for (const m of members) ((resolveAlias(m).flags & ts.SymbolFlags.Value) !== 0 ? values : types).push(m.name);
    api[ns.name] = { values: values.sort(), types: types.sort() };
  }
  return Object.fromEntries(Object.entries(api).sort(([a], [b]) => a.localeCompare(b)));
}

describe('the shipped addon', () => {
  it.skipIf(!existsSync(shipped))('exports exactly the namespaces and names lib/native/binding.ts declares', () => {
    const script = `
      const addon = require(${JSON.stringify(shipped)});
      const out = {};
      for (const [k, v] of Object.entries(addon)) out[k] = v !== null && typeof v === 'object' ? Object.keys(v).sort() : typeof v;
      process.stdout.write(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const declared = Object.fromEntries(Object.entries(NATIVE_EXPORTS).map(([k, names]) => [k, [...names].sort()]));
    expect(got).toEqual(declared);
    expect(got).not.toHaveProperty('dev');
  });
});

describe('lib/index.ts', () => {
  it('exports one namespace per area, whose names equal test/fixtures/public-api.json', async () => {
    const api = publicApi();
    if (process.env.MENTOR_KD_UPDATE_API === '1') writeFileSync(apiFile, JSON.stringify(api, null, 2) + '\n');
    expect(Object.keys(api).sort()).toEqual(['io', 'kd', 'model', 'parallel', 'pipeline', 'runtime', 'tasks', 'teacher', 'train']);
    expect(api).toEqual(JSON.parse(readFileSync(apiFile, 'utf8')));
    // CLI command registrars are the CLI's, not the API's.
    for (const [ns, { values }] of Object.entries(api))
      expect(
        values.filter((v) => /^register\w*Commands$/.test(v)),
        ns,
      ).toEqual([]);
    // What the checker sees is what the module holds at run time.
    const mod = (await import('../lib/index.js')) as Record<string, Record<string, unknown>>;
    for (const [ns, { values }] of Object.entries(api)) expect(Object.keys(mod[ns]!).sort(), ns).toEqual(values);
  });
});
