import { describe, expect, it } from "vitest";
import { deriveBotStatus } from "../../src/core/bot-status";
import { nextWakeMs, takeDue } from "../../src/core/schedule";
import { planAfterStepChange } from "../../src/core/step-plan";
import { aggregateWorkflowStatus, type StepState } from "../../src/core/workflow";

describe("bot status", () => {
  const base = { connected: false, held: false, currentTaskId: null, lastHeartbeatAtMs: null, disconnectedAtMs: null };
  const STALE = 90_000;
  it("socket means online; a fresh REST heartbeat too; stale means offline", () => {
    expect(deriveBotStatus(base, 1000, STALE)).toBe("offline");
    expect(deriveBotStatus({ ...base, connected: true }, 1000, STALE)).toBe("online");
    expect(deriveBotStatus({ ...base, lastHeartbeatAtMs: 1000 }, 1000 + STALE - 1, STALE)).toBe("online");
    expect(deriveBotStatus({ ...base, lastHeartbeatAtMs: 1000 }, 1000 + STALE, STALE)).toBe("offline");
  });
  it("a closed socket wins over an older heartbeat", () => {
    expect(deriveBotStatus({ ...base, lastHeartbeatAtMs: 1000, disconnectedAtMs: 1000 }, 1500, STALE)).toBe("offline");
    expect(deriveBotStatus({ ...base, lastHeartbeatAtMs: 2000, disconnectedAtMs: 1000 }, 2500, STALE)).toBe("online");
  });
  it("held or holding a task means busy, but only when live", () => {
    expect(deriveBotStatus({ ...base, connected: true, held: true }, 0, STALE)).toBe("busy");
    expect(deriveBotStatus({ ...base, connected: true, currentTaskId: "t" }, 0, STALE)).toBe("busy");
    expect(deriveBotStatus({ ...base, currentTaskId: "t" }, 0, STALE)).toBe("offline");
  });
});

describe("workflow planning", () => {
  const steps = (...statuses: [string, boolean][]): StepState[] =>
    statuses.map(([status, released], stepIndex) => ({ taskId: `t${stepIndex}`, stepIndex, status: status as never, released }));
  it("aggregates", () => {
    expect(aggregateWorkflowStatus(steps(["pending", false], ["pending", false]))).toBe("pending");
    expect(aggregateWorkflowStatus(steps(["assigned", true], ["pending", false]))).toBe("in_progress");
    expect(aggregateWorkflowStatus(steps(["completed", true], ["completed", true]))).toBe("completed");
    expect(aggregateWorkflowStatus(steps(["completed", true], ["failed", true]))).toBe("failed");
    expect(aggregateWorkflowStatus(steps(["cancelled", true], ["cancelled", false]))).toBe("cancelled");
  });
  it("completing a step releases the next; the last completes the workflow", () => {
    expect(planAfterStepChange(steps(["in_progress", true], ["pending", false], ["pending", false]), "t0", "completed")).toMatchObject({
      release: ["t1"],
      cancel: [],
      status: "in_progress",
    });
    expect(planAfterStepChange(steps(["completed", true], ["in_progress", true]), "t1", "completed")).toMatchObject({
      release: [],
      cancel: [],
      status: "completed",
    });
  });
  it("a failed step cancels the unstarted rest", () => {
    expect(planAfterStepChange(steps(["in_progress", true], ["pending", false], ["pending", false]), "t0", "failed")).toMatchObject({
      release: [],
      cancel: [
        { taskId: "t1", error: "an earlier step did not complete" },
        { taskId: "t2", error: "an earlier step did not complete" },
      ],
      status: "failed",
    });
  });
  it("a retry (back to pending) changes nothing else", () => {
    expect(planAfterStepChange(steps(["in_progress", true], ["pending", false]), "t0", "pending")).toMatchObject({
      release: [],
      cancel: [],
      status: "in_progress",
    });
  });
});

describe("alarm schedule", () => {
  it("arms for the earliest entry and splits due from pending", () => {
    expect(nextWakeMs({})).toBeNull();
    expect(nextWakeMs({ a: 30, b: 10, c: 20 })).toBe(10);
    expect(takeDue({ a: 30, b: 10, c: 20 }, 20)).toEqual({ due: ["b", "c"], remaining: { a: 30 } });
  });
});

import { constantTimeEqual } from "../../src/crypto/compare";

describe("constant-time compare", () => {
  it("is equality, including lengths and empty strings", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
    expect(constantTimeEqual("", "a")).toBe(false);
  });
});
