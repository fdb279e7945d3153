#!/usr/bin/env node
// A screenshot of a run's HTML report in headless Chromium, to look at what a user sees.
//
//   node scripts/report-screenshot.mjs <run-dir | report.html> [out.png] [--width 1200] [--height 2400] [--chromium PATH]
//
// Default output: docs/img/report.png. Needs Debian's `chromium` (apt-get install -y chromium) or
// a Chrome/Chromium on PATH (or given by --chromium); the page is a local file with no scripts or
// network, so --headless --screenshot is enough (no driver, no browser download).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

/** The first Chromium/Chrome on PATH; undefined when none. */
export function findChromium() {
  for (const name of CANDIDATES) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

/** The report.html of a run directory (`<dir>/report/report.html`) or the file itself. */
export function reportFile(target) {
  const p = resolve(target);
  if (!existsSync(p)) throw new Error(`${p}: no such file or directory`);
  if (statSync(p).isFile()) return p;
  for (const f of [join(p, 'report', 'report.html'), join(p, 'report.html')]) if (existsSync(f)) return f;
  throw new Error(`${p}: no report/report.html in it (run \`mentor-kd report ${target}\` first)`);
}

/** Renders `html` into `out` (PNG) at width × height CSS pixels; returns out. */
export function screenshot(html, out, { width = 1200, height = 2400, chromium = findChromium(), timeoutMs = 120_000 } = {}) {
  if (!chromium) throw new Error('no Chromium found on PATH: apt-get install -y chromium, or pass --chromium <executable>');
  mkdirSync(dirname(resolve(out)), { recursive: true });
  // A throwaway profile: no first-run state, no lock shared with a running browser.
  const profile = mkdtempSync(join(tmpdir(), 'mentor-kd-chromium-'));
  try {
    const r = spawnSync(
      chromium,
      [
        '--headless',
        '--no-sandbox', // root in containers; the page is our own local file
        '--disable-gpu',
        '--hide-scrollbars',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        `--screenshot=${resolve(out)}`,
        pathToFileURL(html).href,
      ],
      { encoding: 'utf8', timeout: timeoutMs },
    );
    if (r.error) throw new Error(`${chromium}: ${r.error.message}`);
    if (r.status !== 0 || !existsSync(out))
      throw new Error(`${chromium} exited with ${r.status}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
    return resolve(out);
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

function main(argv) {
  const args = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--chromium') {
      opts.chromium = argv[++i];
      if (!opts.chromium || !existsSync(opts.chromium)) throw new Error(`--chromium: ${opts.chromium ?? '(missing)'} does not exist`);
    } else if (a === '--width' || a === '--height') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 100 || v > 20000) throw new Error(`${a} must be an integer in [100, 20000], got ${argv[i]}`);
      opts[a.slice(2)] = v;
    } else if (a === '-h' || a === '--help') {
      console.log('usage: node scripts/report-screenshot.mjs <run-dir | report.html> [out.png] [--width 1200] [--height 2400] [--chromium PATH]');
      return;
    } else args.push(a);
  }
  if (args.length < 1 || args.length > 2)
    throw new Error('usage: node scripts/report-screenshot.mjs <run-dir | report.html> [out.png] [--width N] [--height N]');
  const html = reportFile(args[0]);
  const out = screenshot(html, args[1] ?? join(dirname(new URL(import.meta.url).pathname), '..', 'docs', 'img', 'report.png'), opts);
  console.log(`${out} (${html})`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`report-screenshot: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
