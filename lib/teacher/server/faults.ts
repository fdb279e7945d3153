/**
 * Fault injection for the built-in teacher server: each request independently draws at most one
 * fault. Rates are probabilities; their sum must not exceed 1.
 */
import type { Rng } from '../../tasks/random.js';

export type FaultKind = 'rate_limited' | 'server_error' | 'dropped' | 'malformed' | 'slow';

export interface FaultRates {
  /** 429 with Retry-After. */
  rateLimited?: number;
  /** 500. */
  serverError?: number;
  /** The connection is closed with no (or half a) response. */
  dropped?: number;
  /** 200 with a body that is not valid JSON. */
  malformed?: number;
  /** A normal response after `slowMs` extra. */
  slow?: number;
  /** Sent as `retry-after-ms` (and `Retry-After`, rounded up to seconds) with 429s; default 100. */
  retryAfterMs?: number;
  /** Extra delay of slow responses; default 2000. */
  slowMs?: number;
}

const ORDER: Array<[FaultKind, keyof FaultRates]> = [
  ['rate_limited', 'rateLimited'],
  ['server_error', 'serverError'],
  ['dropped', 'dropped'],
  ['malformed', 'malformed'],
  ['slow', 'slow'],
];

export function validateFaults(f: FaultRates): void {
  let sum = 0;
  for (const [, field] of ORDER) {
    const v = f[field] ?? 0;
    if (!(v >= 0 && v <= 1)) throw new Error(`fault rate ${field} must be in [0, 1], got ${v}`);
    sum += v;
  }
  if (sum > 1 + 1e-9) throw new Error(`fault rates sum to ${sum}, more than 1`);
  for (const field of ['retryAfterMs', 'slowMs'] as const) {
    const v = f[field];
    if (v !== undefined && !(v >= 0)) throw new Error(`${field} must be >= 0, got ${v}`);
  }
}

/** An even split of a total fault rate over the five kinds (the CLI's --fault-rate). */
export function evenFaults(total: number): FaultRates {
  const each = total / ORDER.length;
  return { rateLimited: each, serverError: each, dropped: each, malformed: each, slow: each };
}

export function drawFault(f: FaultRates, rng: Rng): FaultKind | undefined {
  let u = rng.next();
  for (const [kind, field] of ORDER) {
    const p = f[field] ?? 0;
    if (u < p) return kind;
    u -= p;
  }
  return undefined;
}
