/** Argument parsers shared by the CLI's command registrars (commander). */
import { InvalidArgumentError } from 'commander';

/**
 * An integer (>= min when given), else commander's "argument … is invalid. <flag> must be an
 * integer[ >= min]". Ranges that need more than a minimum are the command's to check.
 */
export function intArg(flag: string, min?: number): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || (min !== undefined && n < min)) {
      throw new InvalidArgumentError(`${flag} must be an integer${min !== undefined ? ` >= ${min}` : ''}`);
    }
    return n;
  };
}
