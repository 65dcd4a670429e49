/**
 * Bot health (pure). A bot's finished attempts and reconnects over a sliding
 * window make a score from 0 to 1; below a threshold (with enough attempts to
 * judge) the bot is quarantined — offered no work — until its score is back
 * above the threshold plus a margin, which happens as its bad attempts leave
 * the window (a quarantined bot gets no new ones) or when an admin clears it.
 *
 *   reliability = (completed + PRIOR) / (attempts + PRIOR)   success rate, smoothed toward healthy
 *   timeouts    = timed-out attempts / attempts               a timeout costs more than an error
 *   speed       = 1 - mean run time / mean timeout            a bot that runs close to its deadlines
 *   stability   = 1 / (1 + reconnects / 3)                    a flapping connection (connects after the first)
 *   score       = reliability × (1 − ½·timeouts) × (0.8 + 0.2·speed) × (0.5 + 0.5·stability)
 */
export type AttemptOutcome = "completed" | "failed" | "timeout" | "lost";

export interface Attempt {
  atMs: number;
  outcome: AttemptOutcome;
  /** How long the attempt ran (start, or assignment, to its end). */
  runMs: number;
  timeoutMs: number;
}

export interface HealthHistory {
  attempts: Attempt[];
  /** When its socket connected (the first in the window is not a reconnect). */
  connectsAtMs: number[];
}

export interface HealthPolicy {
  windowMs: number;
  /** Quarantined below this score... */
  quarantineBelow: number;
  /** ...once the window holds at least this many attempts. */
  minAttempts: number;
}

export const DEFAULT_HEALTH_POLICY: HealthPolicy = { windowMs: 30 * 60_000, quarantineBelow: 0.3, minAttempts: 5 };
/** Released only above threshold + this, so a bot at the edge does not flap in and out. */
export const RECOVERY_MARGIN = 0.1;
/** Attempts and reconnects kept at most (the newest). */
export const MAX_HISTORY = 100;
const PRIOR = 2;

export interface Health {
  score: number;
  attempts: number;
  completed: number;
  timeouts: number;
  reconnects: number;
  meanRunMs: number | null;
}

/** The history without what left the window (and at most MAX_HISTORY of each). */
export function withinWindow(h: HealthHistory, nowMs: number, policy: HealthPolicy): HealthHistory {
  const since = nowMs - policy.windowMs;
  return {
    attempts: h.attempts.filter((a) => a.atMs > since).slice(-MAX_HISTORY),
    connectsAtMs: h.connectsAtMs.filter((t) => t > since).slice(-MAX_HISTORY),
  };
}

export function healthOf(h: HealthHistory, nowMs: number, policy: HealthPolicy): Health {
  const { attempts, connectsAtMs } = withinWindow(h, nowMs, policy);
  const reconnects = Math.max(0, connectsAtMs.length - 1);
  const n = attempts.length;
  const done = attempts.filter((a) => a.outcome === "completed");
  const timeouts = attempts.filter((a) => a.outcome === "timeout").length;
  const reliability = (done.length + PRIOR) / (n + PRIOR);
  const timeoutRate = n === 0 ? 0 : timeouts / n;
  const meanRunMs = done.length === 0 ? null : done.reduce((s, a) => s + a.runMs, 0) / done.length;
  const meanTimeoutMs = done.length === 0 ? 0 : done.reduce((s, a) => s + a.timeoutMs, 0) / done.length;
  const speed = meanRunMs === null || meanTimeoutMs <= 0 ? 1 : Math.min(1, Math.max(0, 1 - meanRunMs / meanTimeoutMs));
  const stability = 1 / (1 + reconnects / 3);
  const score = reliability * (1 - 0.5 * timeoutRate) * (0.8 + 0.2 * speed) * (0.5 + 0.5 * stability);
  return { score: round2(score), attempts: n, completed: done.length, timeouts, reconnects, meanRunMs };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Whether the bot is quarantined after this evaluation. */
export function quarantineAfter(wasQuarantined: boolean, health: Health, policy: HealthPolicy): boolean {
  if (wasQuarantined) return health.score < policy.quarantineBelow + RECOVERY_MARGIN;
  return health.attempts >= policy.minAttempts && health.score < policy.quarantineBelow;
}

/** When the window next changes (its oldest entry leaves): the time to look again; null if it is empty. */
export function nextChangeMs(h: HealthHistory, policy: HealthPolicy): number | null {
  const oldest = Math.min(...h.attempts.map((a) => a.atMs), ...h.connectsAtMs);
  return Number.isFinite(oldest) ? oldest + policy.windowMs + 1 : null;
}

/**
 * The attempt a release ended, for its bot's health: completed, or failed by
 * the bot's error, a timeout or the bot's loss. A cancel or an unassign
 * (never the bot's doing) is null: it does not count.
 */
export function endedAttempt(
  before: { assignedAtMs: number | null; startedAtMs: number | null; timeoutSeconds: number },
  after: { status: string; errorCode: string | null },
  nowMs: number,
): Attempt | null {
  const outcome: AttemptOutcome | null =
    after.status === "completed"
      ? "completed"
      : after.status === "cancelled" || !after.errorCode
        ? null
        : after.errorCode === "timeout"
          ? "timeout"
          : after.errorCode === "bot_lost"
            ? "lost"
            : "failed";
  if (!outcome) return null;
  const since = before.startedAtMs ?? before.assignedAtMs ?? nowMs;
  return { atMs: nowMs, outcome, runMs: Math.max(0, nowMs - since), timeoutMs: before.timeoutSeconds * 1000 };
}
