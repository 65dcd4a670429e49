/** Exponential backoff with full jitter for task retries (pure). */
export interface BackoffPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Delay before the next attempt, given how many attempts have already run (≥ 1).
 * Half the delay is fixed and half is jitter, so retries of many tasks that
 * failed together (a bot crash) spread out without ever retrying instantly.
 */
export function retryDelayMs(attemptsSoFar: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.max(0, attemptsSoFar - 1);
  const capped = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(exponent, 30));
  return Math.round(capped / 2 + (capped / 2) * random());
}
