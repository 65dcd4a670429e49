/**
 * Exponential backoff with "equal jitter" (pure), for task retries and the bot
 * client's reconnects alike: step n waits a uniformly random time in [d/2, d]
 * with d = min(max, base · 2ⁿ). Half the delay is fixed, so a retry never comes
 * at once; half is random, so many tasks (or bots) that failed together (a
 * crash) spread out instead of returning in lockstep.
 */
export interface BackoffPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Delay before step `step` (0 = the first retry). */
export function backoffDelayMs(step: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(Math.max(0, step), 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** Delay before a task's next attempt, given how many attempts have already run (≥ 1). */
export const retryDelayMs = (attemptsSoFar: number, policy: BackoffPolicy, random: () => number = Math.random): number =>
  backoffDelayMs(attemptsSoFar - 1, policy, random);
