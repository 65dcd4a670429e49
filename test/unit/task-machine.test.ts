import { describe, expect, it } from "vitest";
import { retryDelayMs } from "../../src/core/backoff";
import {
  botMayReport,
  canApply,
  resultMayBeWrittenBehind,
  type TaskState,
  type TaskStatus,
  taskDeadlineMs,
  transitionTask,
} from "../../src/core/task-machine";

const backoff = { baseDelayMs: 1000, maxDelayMs: 8000 };
const task = (over: Partial<TaskState> = {}): TaskState => ({
  status: "pending",
  botId: null,
  previousBotId: null,
  attempts: 0,
  maxAttempts: 3,
  startedAtMs: null,
  ...over,
});
const NOW = 1_000_000;

describe("task state machine", () => {
  it("allows exactly the documented transitions", () => {
    const table: Record<TaskStatus, string[]> = {
      pending: ["assign", "cancel"],
      assigned: ["start", "complete", "fail", "cancel"],
      in_progress: ["complete", "fail", "cancel"],
      completed: [],
      failed: [],
      cancelled: [],
    };
    for (const [status, allowed] of Object.entries(table)) {
      for (const action of ["assign", "start", "complete", "fail", "cancel"] as const) {
        expect(canApply(status as TaskStatus, action), `${action} from ${status}`).toBe(allowed.includes(action));
      }
    }
  });

  it("assign counts an attempt and records the bot and time", () => {
    const r = transitionTask(task(), { kind: "assign", botId: "b1" }, NOW, backoff);
    expect(r.ok && r.transition).toEqual({
      patch: {
        status: "assigned",
        botId: "b1",
        previousBotId: null,
        assignedAtMs: NOW,
        startedAtMs: null,
        attempts: 1,
        progress: null,
        progressMessage: null,
      },
      events: ["task_assigned"],
      releasedBotId: null,
    });
  });

  it("complete from assigned records the start first and frees the bot", () => {
    const r = transitionTask(task({ status: "assigned", botId: "b1", attempts: 1 }), { kind: "complete", result: { x: 1 } }, NOW, backoff);
    if (!r.ok) throw new Error(r.message);
    expect(r.transition.events).toEqual(["task_started", "task_completed"]);
    expect(r.transition.patch).toMatchObject({ status: "completed", startedAtMs: NOW, completedAtMs: NOW, result: { x: 1 } });
    expect(r.transition.releasedBotId).toBe("b1");
  });

  it("complete from in_progress keeps the original start", () => {
    const r = transitionTask(
      task({ status: "in_progress", botId: "b1", attempts: 1, startedAtMs: 5 }),
      { kind: "complete", result: null },
      NOW,
      backoff,
    );
    expect(r.ok && r.transition.patch.startedAtMs).toBe(5);
    expect(r.ok && r.transition.events).toEqual(["task_completed"]);
  });

  it("a failure with attempts left re-queues with backoff; without, it is final", () => {
    const retry = transitionTask(
      task({ status: "in_progress", botId: "b1", attempts: 1 }),
      { kind: "fail", code: "timeout", error: "slow", retry: true },
      NOW,
      backoff,
      () => 0,
    );
    if (!retry.ok) throw new Error(retry.message);
    expect(retry.transition.patch).toMatchObject({
      status: "pending",
      botId: null,
      previousBotId: "b1",
      runAfterMs: NOW + 500,
      errorCode: "timeout",
    });
    expect(retry.transition.events).toEqual(["task_retry_scheduled"]);

    const last = transitionTask(
      task({ status: "in_progress", botId: "b1", attempts: 3 }),
      { kind: "fail", code: "bot_lost", error: "gone", retry: true },
      NOW,
      backoff,
    );
    expect(last.ok && last.transition.patch).toMatchObject({ status: "failed", failedAtMs: NOW, errorCode: "bot_lost" });

    const noRetry = transitionTask(
      task({ status: "assigned", botId: "b1", attempts: 1 }),
      { kind: "fail", code: "bot_error", error: "x", retry: false },
      NOW,
      backoff,
    );
    expect(noRetry.ok && noRetry.transition.patch.status).toBe("failed");
  });

  it("accepts a late result from the bot that held a re-queued task, and from no one else", () => {
    const requeued = task({ status: "pending", previousBotId: "b1", attempts: 1, errorCode: "bot_lost" } as Partial<TaskState>);
    const late = { kind: "complete", result: { ok: 1 }, reporterBotId: "b1" } as const;
    expect(botMayReport(requeued, "b1", late)).toBe(true);
    const r = transitionTask(requeued, late, NOW, backoff);
    if (!r.ok) throw new Error(r.message);
    expect(r.transition.patch).toMatchObject({
      status: "completed",
      botId: "b1",
      previousBotId: null,
      completedAtMs: NOW,
      result: { ok: 1 },
      error: null,
      errorCode: null,
    });
    expect(r.transition.events).toEqual(["task_completed"]);
    expect(r.transition.releasedBotId).toBeNull(); // b1 was freed at the re-queue; it may hold another task now

    // Another bot, an operator without a reporter, a late failure, or a task already given to someone else: refused.
    const other = { ...late, reporterBotId: "b2" };
    expect(botMayReport(requeued, "b2", other)).toBe(false);
    expect(transitionTask(requeued, other, NOW, backoff).ok).toBe(false);
    expect(transitionTask(requeued, { kind: "complete", result: 1 }, NOW, backoff).ok).toBe(false);
    const lateFail = { kind: "fail", code: "bot_error", error: "x", retry: true } as const;
    expect(botMayReport(requeued, "b1", lateFail)).toBe(false);
    const reassigned = transitionTask(requeued, { kind: "assign", botId: "b2" }, NOW, backoff);
    expect(reassigned.ok && reassigned.transition.patch.previousBotId).toBeNull();
    expect(botMayReport(task({ status: "assigned", botId: "b2", attempts: 2 }), "b1", late)).toBe(false);
  });

  it("refuses illegal transitions with a clear message", () => {
    const r = transitionTask(task({ status: "completed" }), { kind: "cancel", reason: "x" }, NOW, backoff);
    expect(r).toEqual({
      ok: false,
      code: "invalid_transition",
      message: "cannot cancel a task that is completed (allowed from: pending, assigned, in_progress)",
    });
  });

  it("cancel of a pending task frees no bot; of a held task frees its bot", () => {
    const pending = transitionTask(task(), { kind: "cancel", reason: "x" }, NOW, backoff);
    expect(pending.ok && pending.transition.releasedBotId).toBeNull();
    const held = transitionTask(task({ status: "assigned", botId: "b9", attempts: 1 }), { kind: "cancel", reason: "x" }, NOW, backoff);
    expect(held.ok && held.transition.releasedBotId).toBe("b9");
  });

  it("deadline counts from start, else from assignment", () => {
    expect(taskDeadlineMs({ assignedAtMs: 100, startedAtMs: null, timeoutSeconds: 2 })).toBe(2100);
    expect(taskDeadlineMs({ assignedAtMs: 100, startedAtMs: 500, timeoutSeconds: 2 })).toBe(2500);
    expect(taskDeadlineMs({ assignedAtMs: null, startedAtMs: null, timeoutSeconds: 2 })).toBeNull();
  });
});

describe("retry backoff", () => {
  it("doubles per attempt, is capped, and jitters within [d/2, d]", () => {
    expect(retryDelayMs(1, backoff, () => 0)).toBe(500);
    expect(retryDelayMs(1, backoff, () => 1)).toBe(1000);
    expect(retryDelayMs(2, backoff, () => 1)).toBe(2000);
    expect(retryDelayMs(3, backoff, () => 1)).toBe(4000);
    expect(retryDelayMs(10, backoff, () => 1)).toBe(8000);
    expect(retryDelayMs(1000, backoff, () => 0.5)).toBe(6000);
  });
});

describe("a result written behind (acknowledged before D1 has it)", () => {
  const held = task({ status: "in_progress", botId: "b1", attempts: 1, startedAtMs: NOW - 10 });
  const success = { kind: "complete", result: { ok: 1 }, reporterBotId: "b1" } as const;
  const may = (t: TaskState, standalone: boolean, botId: string, action: Parameters<typeof transitionTask>[1]) =>
    resultMayBeWrittenBehind(t, standalone, botId, action, NOW, backoff);

  it("only for a standalone task's success reported by its holder, from assigned or in progress", () => {
    expect(may(held, true, "b1", success)).toBe(true);
    expect(may({ ...held, status: "assigned", startedAtMs: null }, true, "b1", success)).toBe(true);
  });

  it("never for a job's or workflow's step, a failure, another bot, a late result or a finished task", () => {
    expect(may(held, false, "b1", success)).toBe(false); // the step moves its job: written first
    expect(may(held, true, "b1", { kind: "fail", code: "bot_error", error: "no", retry: true })).toBe(false);
    expect(may(held, true, "b2", { ...success, reporterBotId: "b2" })).toBe(false);
    const requeued = task({ status: "pending", botId: null, previousBotId: "b1", attempts: 1 });
    expect(may(requeued, true, "b1", success)).toBe(false); // a late result: D1 decides it first
    expect(may({ ...held, status: "completed" }, true, "b1", success)).toBe(false);
  });
});
