/**
 * Seeded generators for the two symbolic tasks (Wei et al. 2022; Kojima et al. 2022), with the
 * question wording of the paper's data, so the tool has data with no downloads; the arithmetic
 * word problems (lib/tasks/arithmetic.ts) are registered beside them.
 */
import { generateMultistepArithmetic } from './arithmetic.js';
import { createRng } from './random.js';
import type { TaskRecord } from './records.js';

// First names of mixed length and ending, as in the released Last Letter data
// ("Whitney Erika Tj Benito"); short ones keep two-letter endings in play.
export const FIRST_NAMES: readonly string[] = [
  'Aaron',
  'Abby',
  'Adam',
  'Adrian',
  'Aimee',
  'Alba',
  'Alex',
  'Alicia',
  'Alissa',
  'Amir',
  'Ana',
  'Andre',
  'Angel',
  'Anita',
  'Ariel',
  'Arun',
  'Ash',
  'Barbara',
  'Bart',
  'Belen',
  'Benito',
  'Bianca',
  'Blake',
  'Bobbie',
  'Brandon',
  'Brenda',
  'Britney',
  'Bruno',
  'Caleb',
  'Camila',
  'Carl',
  'Carmen',
  'Cecil',
  'Chanel',
  'Chase',
  'Chloe',
  'Christy',
  'Cody',
  'Connor',
  'Cruz',
  'Dale',
  'Dalton',
  'Daniel',
  'Dante',
  'Darius',
  'Dave',
  'Deb',
  'Dolly',
  'Dominic',
  'Dulce',
  'Dustin',
  'Edgar',
  'Elena',
  'Eli',
  'Elvia',
  'Emma',
  'Enrique',
  'Erik',
  'Erika',
  'Esther',
  'Ethan',
  'Eva',
  'Fabian',
  'Faye',
  'Felix',
  'Fiona',
  'Floyd',
  'Frank',
  'Gabe',
  'Genaro',
  'Gina',
  'Glen',
  'Grace',
  'Greg',
  'Gus',
  'Hazel',
  'Hector',
  'Heidi',
  'Hugo',
  'Ian',
  'Ines',
  'Irene',
  'Ivan',
  'Ivonne',
  'Jack',
  'Jade',
  'Jairo',
  'Jamal',
  'Jay',
  'Jenny',
  'Jesse',
  'Jj',
  'Joan',
  'Jody',
  'Jose',
  'Juan',
  'Julia',
  'Kai',
  'Karen',
  'Kc',
  'Keith',
  'Kenny',
  'Kiara',
  'Kim',
  'Kristin',
  'Kurt',
  'Lana',
  'Layla',
  'Leandro',
  'Lena',
  'Leo',
  'Lexie',
  'Liam',
  'Lily',
  'Lucky',
  'Luis',
  'Luiz',
  'Lynn',
  'Mabel',
  'Malik',
  'Marcia',
  'Mariah',
  'Mark',
  'Maya',
  'Meg',
  'Mia',
  'Miguel',
  'Mireya',
  'Mona',
  'Nadia',
  'Nash',
  'Neil',
  'Nia',
  'Nick',
  'Noah',
  'Nora',
  'Olga',
  'Omar',
  'Oscar',
  'Otis',
  'Owen',
  'Pablo',
  'Paige',
  'Pam',
  'Paul',
  'Penny',
  'Peyton',
  'Quinn',
  'Rafael',
  'Ramiro',
  'Raul',
  'Reyna',
  'Rex',
  'Rita',
  'Robby',
  'Rocio',
  'Rosa',
  'Ruth',
  'Sam',
  'Sandy',
  'Sara',
  'Sergio',
  'Seth',
  'Shawn',
  'Sofia',
  'Stan',
  'Sue',
  'Tara',
  'Ted',
  'Tess',
  'Tj',
  'Todd',
  'Tom',
  'Tre',
  'Uma',
  'Val',
  'Vanessa',
  'Vic',
  'Wade',
  'Whitney',
  'Will',
  'Xavier',
  'Yara',
  'Yusuf',
  'Zane',
  'Zoe',
  'Zack',
];

export interface SyntheticOptions {
  count: number;
  seed?: number;
  /** Words (Last Letter) or people (Coin Flip) per question; the paper's data uses 4. */
  size?: number;
  /** Prefix of record ids; default the task name. */
  idPrefix?: string;
}

function checkOptions(options: SyntheticOptions): { count: number; seed: number; size: number } {
  const { count, seed = 0, size = 4 } = options;
  if (!Number.isInteger(count) || count < 0) throw new Error(`count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(size) || size < 1 || size > FIRST_NAMES.length) {
    throw new Error(`size must be an integer in [1, ${FIRST_NAMES.length}], got ${size}`);
  }
  return { count, seed, size };
}

export function lastLetterQuestion(words: readonly string[]): string {
  return `Take the last letters of each words in "${words.join(' ')}" and concatenate them.`;
}

export function lastLetterAnswer(words: readonly string[]): string {
  return words.map((w) => w[w.length - 1]!).join('');
}

/** "Take the last letters of each words in "Whitney Erika Tj Benito" and concatenate them." → "yajo" */
export function generateLastLetterConcatenation(options: SyntheticOptions): TaskRecord[] {
  const { count, seed, size } = checkOptions(options);
  const rng = createRng(seed);
  const prefix = options.idPrefix ?? 'last_letter_concatenation';
  return Array.from({ length: count }, (_, i) => {
    const words = rng.sample(FIRST_NAMES, size);
    return { id: `${prefix}-${seed}-${i}`, question: lastLetterQuestion(words), answer: lastLetterAnswer(words) };
  });
}

export interface CoinFlipStep {
  person: string;
  flips: boolean;
}

export function coinFlipQuestion(steps: readonly CoinFlipStep[]): string {
  const moves = steps.map((s) => `${s.person} ${s.flips ? 'flips' : 'does not flip'} the coin.`);
  return `A coin is heads up. ${moves.join(' ')} Is the coin still heads up? Note that "flip" here means "reverse".`;
}

export function coinFlipAnswer(steps: readonly CoinFlipStep[]): 'yes' | 'no' {
  return steps.filter((s) => s.flips).length % 2 === 0 ? 'yes' : 'no';
}

/** "A coin is heads up. Whitney flips the coin. Erika does not flip the coin. ... Is the coin still heads up? ..." */
export function generateCoinFlip(options: SyntheticOptions): TaskRecord[] {
  const { count, seed, size } = checkOptions(options);
  const rng = createRng(seed);
  const prefix = options.idPrefix ?? 'coin_flip';
  return Array.from({ length: count }, (_, i) => {
    const steps = rng.sample(FIRST_NAMES, size).map((person) => ({ person, flips: rng.next() < 0.5 }));
    return { id: `${prefix}-${seed}-${i}`, question: coinFlipQuestion(steps), answer: coinFlipAnswer(steps) };
  });
}

/** Parse a Last Letter question back into its words (the simulated teacher reads questions). */
export function parseLastLetterQuestion(question: string): string[] | undefined {
  const m = /^Take the last letters of each words in "([^"]+)" and concatenate them\.?$/.exec(question.trim());
  return m ? m[1]!.split(/\s+/).filter(Boolean) : undefined;
}

/** Parse a Coin Flip question back into its steps. */
export function parseCoinFlipQuestion(question: string): CoinFlipStep[] | undefined {
  const q = question.trim();
  if (!q.startsWith('A coin is heads up.') || !q.includes('Is the coin still heads up?')) return undefined;
  const body = q.slice('A coin is heads up.'.length, q.indexOf('Is the coin still heads up?'));
  const steps: CoinFlipStep[] = [];
  for (const m of body.matchAll(/([^.]+?) (flips|does not flip) the coin\./g)) {
    steps.push({ person: m[1]!.trim(), flips: m[2] === 'flips' });
  }
  return steps.length > 0 ? steps : undefined;
}

export const SYNTHETIC_GENERATORS = {
  last_letter_concatenation: generateLastLetterConcatenation,
  coin_flip: generateCoinFlip,
  multistep_arithmetic: generateMultistepArithmetic,
} as const;
