import { describe, expect, it } from "vitest";
import { type Attempt, DEFAULT_HEALTH_POLICY, healthOf, nextChangeMs, quarantineAfter, RECOVERY_MARGIN } from "../../src/core/health";

const policy = DEFAULT_HEALTH_POLICY;
const attempt = (atMs: number, outcome: Attempt["outcome"], runMs = 1000, timeoutMs = 300_000): Attempt => ({
  atMs,
  outcome,
  runMs,
  timeoutMs,
});
const many = (n: number, outcome: Attempt["outcome"], fromMs = 0) => Array.from({ length: n }, (_, i) => attempt(fromMs + i, outcome));

describe("bot health score", () => {
  it("a new bot, and one that always succeeds quickly, is healthy", () => {
    expect(healthOf({ attempts: [], connectsAtMs: [] }, 0, policy).score).toBe(1);
    expect(healthOf({ attempts: many(20, "completed"), connectsAtMs: [] }, 100, policy).score).toBe(1);
  });

  it("failures lower it, timeouts more than errors", () => {
    const errors = healthOf({ attempts: [...many(5, "completed"), ...many(5, "failed", 10)], connectsAtMs: [] }, 100, policy);
    const timeouts = healthOf({ attempts: [...many(5, "completed"), ...many(5, "timeout", 10)], connectsAtMs: [] }, 100, policy);
    expect(errors.score).toBeCloseTo(7 / 12, 2);
    expect(timeouts.score).toBeLessThan(errors.score);
    expect(timeouts).toMatchObject({ attempts: 10, completed: 5, timeouts: 5 });
  });

  it("slow runs (close to their deadline) and reconnects lower it a little", () => {
    const slow = healthOf({ attempts: [attempt(1, "completed", 270_000, 300_000)], connectsAtMs: [] }, 10, policy);
    expect(slow.score).toBeCloseTo(0.82, 2);
    expect(slow.meanRunMs).toBe(270_000);
    const flapping = healthOf({ attempts: [], connectsAtMs: [1, 2, 3, 4] }, 10, policy);
    expect(flapping.score).toBe(0.75);
    expect(flapping.reconnects).toBe(3);
    expect(healthOf({ attempts: [], connectsAtMs: [1] }, 10, policy).reconnects).toBe(0); // the first connect
  });

  it("the window slides: what is older than it counts no more", () => {
    const history = { attempts: many(6, "failed", 0), connectsAtMs: [] };
    expect(healthOf(history, 1000, policy).score).toBe(0.25);
    expect(healthOf(history, policy.windowMs + 10, policy).score).toBe(1);
    expect(nextChangeMs(history, policy)).toBe(policy.windowMs + 1);
    expect(nextChangeMs({ attempts: [], connectsAtMs: [] }, policy)).toBeNull();
  });

  it("quarantine: below the threshold with enough attempts; released only above threshold + margin", () => {
    const bad = healthOf({ attempts: many(6, "failed"), connectsAtMs: [] }, 10, policy);
    expect(quarantineAfter(false, bad, policy)).toBe(true);
    const fewButBad = healthOf({ attempts: many(2, "failed"), connectsAtMs: [] }, 10, policy);
    expect(fewButBad.score).toBeLessThan(policy.quarantineBelow + 0.3);
    expect(quarantineAfter(false, { ...fewButBad, score: 0.1, attempts: policy.minAttempts - 1 }, policy)).toBe(false);
    const edge = { ...bad, score: policy.quarantineBelow + RECOVERY_MARGIN / 2 };
    expect(quarantineAfter(true, edge, policy)).toBe(true); // not yet
    expect(quarantineAfter(false, edge, policy)).toBe(false);
    expect(quarantineAfter(true, { ...bad, score: policy.quarantineBelow + RECOVERY_MARGIN }, policy)).toBe(false);
  });
});
