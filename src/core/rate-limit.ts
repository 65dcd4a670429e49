/**
 * Token buckets (pure): a bucket holds up to `burst` tokens and refills at
 * `ratePerSecond`; a request takes `cost` tokens or is refused with the time
 * until enough have refilled. "Tasks per minute" is a bucket of that many
 * tokens refilling at n/60 per second.
 */
export interface BucketLimit {
  ratePerSecond: number;
  burst: number;
}

export interface BucketState {
  tokens: number;
  atMs: number;
}

export type TakeResult = { allowed: true; state: BucketState } | { allowed: false; state: BucketState; retryAfterMs: number };

/** The bucket refilled up to `nowMs` (a new bucket starts full). */
export function refill(state: BucketState | undefined, limit: BucketLimit, nowMs: number): BucketState {
  if (!state) return { tokens: limit.burst, atMs: nowMs };
  const elapsedS = Math.max(0, nowMs - state.atMs) / 1000;
  return { tokens: Math.min(limit.burst, state.tokens + elapsedS * limit.ratePerSecond), atMs: nowMs };
}

/** Takes `cost` tokens, or says how long until they are there (never, for a cost above the burst: then the refusal is final). */
export function take(state: BucketState | undefined, limit: BucketLimit, cost: number, nowMs: number): TakeResult {
  const now = refill(state, limit, nowMs);
  if (now.tokens >= cost) return { allowed: true, state: { tokens: now.tokens - cost, atMs: nowMs } };
  const missing = Math.min(cost, limit.burst) - now.tokens;
  return { allowed: false, state: now, retryAfterMs: Math.max(1, Math.ceil((missing / limit.ratePerSecond) * 1000)) };
}

/** Gives back what a take that was later undone had taken (never above the burst). */
export function giveBack(state: BucketState | undefined, limit: BucketLimit, cost: number, nowMs: number): BucketState {
  const now = refill(state, limit, nowMs);
  return { tokens: Math.min(limit.burst, now.tokens + cost), atMs: nowMs };
}

/** A per-minute count as a bucket. */
export const perMinute = (n: number): BucketLimit => ({ ratePerSecond: n / 60, burst: n });
