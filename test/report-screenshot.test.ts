// scripts/report-screenshot.mjs: a report opened in headless Chromium and saved as PNG. Runs only
// where a Chromium is installed (Debian: apt-get install -y chromium); skipped otherwise, saying so.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { devAccuracyChart } from '../lib/report/charts.js';
import { writeReport } from '../lib/report/document.js';
// @ts-expect-error: a plain .mjs script, no type declarations
import { findChromium, reportFile, screenshot } from '../scripts/report-screenshot.mjs';

const chromium = (findChromium as () => string | undefined)();
const root = mkdtempSync(join(tmpdir(), 'mentor-kd-screenshot-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('report screenshot', () => {
  it('finds the report of a run directory, or says what is missing', () => {
    expect(() => reportFile(join(root, 'nope'))).toThrow(/no such file or directory/);
    expect(() => reportFile(root)).toThrow(/no report\/report\.html in it \(run `mentor-kd report/);
  });

  it.skipIf(!chromium)(
    `renders the report to a PNG of the requested size${chromium ? '' : ' — skipped: no chromium on PATH (apt-get install -y chromium)'}`,
    async () => {
      const out = await writeReport(root, {
        title: 'Mentor-KD run: coin_flip',
        results: { columns: ['coin_flip'], rows: [{ label: 'mentor-kd', values: [0.99] }] },
        stages: [],
        notes: ['a note'],
        charts: [
          devAccuracyChart(
            [
              {
                name: 'mentor-kd',
                points: [
                  [100, 0.5],
                  [200, 0.9],
                ],
              },
            ],
            { accuracy: 0.5, label: 'random answer (1 of 2)' },
          ),
        ],
        config: {},
      });
      expect(reportFile(root)).toBe(out.html);
      const png = (screenshot as (html: string, out: string, o: object) => string)(out.html, join(root, 'shot.png'), { width: 900, height: 700 });
      const bytes = readFileSync(png);
      expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
      // IHDR: width and height (big-endian) at bytes 16..23.
      expect([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]).toEqual([900, 700]);
      // A blank page compresses to a few kB; text, a table and a chart do not.
      expect(statSync(png).size).toBeGreaterThan(20_000);
    },
    120_000,
  );
});
