/**
 * The built-in teacher replaying the release's recorded gpt-3.5-turbo-instruct outputs
 * (prompt/{task}_6.json) through the collector; skipped, with the reason printed, without the data.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCorrect, loadTeacherOutputs } from '../lib/tasks/index.js';
import { collectRationales, ReplayBook, startTeacherServer, TeacherClient } from '../lib/teacher/index.js';

const dataDir = process.env.MENTOR_KD_DATA ?? '/work/shared/data/mentor-kd';
const present = existsSync(join(dataDir, 'prompt'));
if (!present) console.log(`skipping the replay-of-release checks: no Mentor-KD data at ${dataDir} (set MENTOR_KD_DATA)`);

describe.skipIf(!present)('replaying the released teacher outputs', () => {
  for (const task of ['tracking_shuffled_objects', 'last_letter_concatenation'] as const) {
    it(`${task}: samples are the recorded outputs, judged as the cleanser judges them`, async () => {
      const file = join(dataDir, 'prompt', `${task}_6.json`);
      const entries = loadTeacherOutputs(file)
        .entries.filter((e) => e.outputs.length >= 3)
        .slice(0, 30);
      const server = await startTeacherServer({ seed: 1, replay: ReplayBook.fromFile(file) });
      try {
        const client = new TeacherClient({ model: 'gpt-3.5-turbo-instruct', baseURL: server.url, api: 'completions' });
        const result = await collectRationales({
          task,
          questions: entries.map((e, i) => ({ id: String(i), question: e.question, answer: e.label! })),
          teacher: client,
          samples: 3,
          concurrency: 16,
        });
        client.close();
        expect(result.failures).toEqual([]);
        expect(result.samples).toHaveLength(90);
        for (const s of result.samples) {
          const recorded = entries[Number(s.questionId)]!;
          expect(recorded.outputs).toContain(s.rationale);
          expect(s.correct).toBe(isCorrect(s.rationale, recorded.label!, task));
        }
        const perQuestion = new Map<string, Set<string>>();
        for (const s of result.samples) perQuestion.set(s.questionId, (perQuestion.get(s.questionId) ?? new Set()).add(s.rationale));
        for (const set of perQuestion.values()) expect(set.size).toBe(3); // three distinct recordings per question
        const correct = result.samples.filter((s) => s.correct).length;
        console.log(`${task}: replayed teacher correct on ${correct}/90 samples`);
      } finally {
        await server.close();
      }
    });
  }
});
