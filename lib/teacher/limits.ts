/**
 * Requests-per-minute and tokens-per-minute limits as token buckets, refilled continuously and
 * holding at most `burstSeconds` of budget, so a run paces itself instead of bursting a whole
 * minute's allowance and then meeting 429s (providers enforce limits over sub-minute windows).
 */
import { sleep } from './retry.js';

export class TokenBucket {
  readonly perMinute: number;
  readonly capacity: number;
  private level: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(perMinute: number, burstSeconds = 1, now: () => number = () => performance.now()) {
    if (!(perMinute > 0)) throw new Error(`a per-minute limit must be positive, got ${perMinute}`);
    this.perMinute = perMinute;
    this.capacity = Math.max(1, (perMinute / 60) * burstSeconds);
    this.level = this.capacity;
    this.now = now;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.level = Math.min(this.capacity, this.level + ((t - this.last) * this.perMinute) / 60_000);
    this.last = t;
  }

  /** Budget available now (may be negative after `charge`). */
  available(): number {
    this.refill();
    return this.level;
  }

  /**
   * Wait, first come first served, until `cost` fits, then spend it. A cost above the capacity
   * waits for a full bucket and leaves it in debt, so a huge request still goes through.
   */
  take(cost: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        this.refill();
        const need = Math.min(cost, this.capacity);
        if (this.level >= need) {
          this.level -= cost;
          return;
        }
        await sleep(Math.max(1, Math.ceil(((need - this.level) * 60_000) / this.perMinute)), signal);
      }
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Spend (positive) or give back (negative) budget without waiting: reconciles estimates. */
  charge(delta: number): void {
    this.refill();
    this.level = Math.min(this.capacity, this.level - delta);
  }
}

export interface RateLimits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Seconds of budget a bucket may hold; default 1. */
  burstSeconds?: number;
}

/** Both limits together: `acquire` before a request with its estimated tokens, `settle` after with the real count. */
export class RateLimiter {
  private readonly requests?: TokenBucket;
  private readonly tokens?: TokenBucket;

  constructor(limits: RateLimits = {}) {
    const burst = limits.burstSeconds ?? 1;
    if (limits.requestsPerMinute !== undefined) this.requests = new TokenBucket(limits.requestsPerMinute, burst);
    if (limits.tokensPerMinute !== undefined) this.tokens = new TokenBucket(limits.tokensPerMinute, burst);
  }

  get limited(): boolean {
    return this.requests !== undefined || this.tokens !== undefined;
  }

  async acquire(estimatedTokens: number, signal?: AbortSignal): Promise<void> {
    if (this.requests) await this.requests.take(1, signal);
    if (this.tokens) await this.tokens.take(estimatedTokens, signal);
  }

  settle(estimatedTokens: number, actualTokens: number): void {
    this.tokens?.charge(actualTokens - estimatedTokens);
  }
}

/** Rough token count for budgeting before the server reports usage: ~4 characters a token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
