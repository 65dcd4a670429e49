import { describe, expect, it } from "vitest";
import { type JobStep, jobChangeOf, jobProgressOf, jobStatusOf } from "../../src/core/job";
import { initPrompt, projectSlug, projectStatusAfterJob } from "../../src/core/project";
import { sseRecord, streamMessage } from "../../src/core/stream";

const step = (status: JobStep["status"], extra: Partial<JobStep> = {}, stepIndex = 0): JobStep => ({
  taskId: `t${stepIndex}`,
  stepIndex,
  status,
  released: status !== "pending",
  attempts: status === "pending" ? 0 : 1,
  ...extra,
});

describe("job status and progress", () => {
  it("queued until a bot starts a step; running from then on, also while a step waits for its retry", () => {
    expect(jobStatusOf([step("pending", { released: true })])).toBe("queued");
    expect(jobStatusOf([step("assigned")])).toBe("queued");
    expect(jobStatusOf([step("in_progress")])).toBe("running");
    expect(jobStatusOf([step("pending", { attempts: 1 })])).toBe("running");
    expect(jobStatusOf([step("assigned", { attempts: 2 })])).toBe("running");
    expect(jobStatusOf([step("completed"), step("pending", {}, 1)])).toBe("running");
  });
  it("ends completed only when every step completed; a failed or cancelled step ends it", () => {
    expect(jobStatusOf([step("completed"), step("completed", {}, 1)])).toBe("completed");
    expect(jobStatusOf([step("completed"), step("failed", {}, 1)])).toBe("failed");
    expect(jobStatusOf([step("cancelled"), step("cancelled", {}, 1)])).toBe("cancelled");
    expect(jobStatusOf([])).toBe("queued");
  });
  it("progress: completed steps in full, the running one by what its bot reported; 100 only when all completed", () => {
    expect(jobProgressOf([step("in_progress", { progress: 50 })])).toBe(50);
    expect(jobProgressOf([step("completed"), step("in_progress", { progress: 50 }, 1), step("pending", {}, 2)])).toBe(50);
    expect(jobProgressOf([step("completed"), step("completed", {}, 1), step("completed", {}, 2)])).toBe(100);
    expect(jobProgressOf([step("in_progress", { progress: 100 })])).toBe(99);
    expect(jobProgressOf([step("completed"), step("failed", {}, 1)])).toBe(50);
    expect(jobProgressOf([step("in_progress", { progress: 250 })])).toBe(99);
    expect(jobProgressOf([])).toBe(0);
  });
  it("a job's change carries the last step's result when it completes, the step's error when it fails", () => {
    expect(jobChangeOf([step("completed")], { status: "completed", result: { a: 1 } })).toEqual({
      status: "completed",
      progress: 100,
      result: { a: 1 },
    });
    expect(jobChangeOf([step("failed")], { status: "failed", error: "boom", errorCode: "bot_error" })).toEqual({
      status: "failed",
      progress: 0,
      error: "boom",
      errorCode: "bot_error",
    });
    expect(jobChangeOf([step("in_progress")], { status: "in_progress" })).toEqual({ status: "running", progress: 0 });
  });
});

describe("stream messages", () => {
  const e = { type: "complete" as const, seq: 7, timestampMs: Date.UTC(2026, 0, 1), data: { status: "completed", progress: 100 } };
  it("are {type, seq, timestamp, data}, with status and progress on top of status and complete messages (seed 003)", () => {
    expect(streamMessage(e)).toEqual({
      type: "complete",
      seq: 7,
      timestamp: "2026-01-01T00:00:00.000Z",
      data: e.data,
      status: "completed",
      progress: 100,
    });
    expect(streamMessage({ ...e, type: "log", data: { lines: [] } })).toEqual({
      type: "log",
      seq: 7,
      timestamp: "2026-01-01T00:00:00.000Z",
      data: { lines: [] },
    });
  });
  it("seed 004's dialect names the end execution_completed; SSE records carry the seq as id", () => {
    expect(streamMessage(e, "seed004").type).toBe("execution_completed");
    expect(sseRecord(streamMessage(e))).toMatch(/^id: 7\nevent: complete\ndata: \{.*\}\n\n$/);
  });
});

describe("projects", () => {
  it("builds the prompt from the template; a slug from the domain that is always a safe directory name", () => {
    expect(initPrompt("Name {name}, {domain}: {description}", { name: "Shop", domain: "shop.example", description: null })).toBe(
      "Name Shop, shop.example: ",
    );
    expect(projectSlug("My Shop.Example.com")).toBe("my-shop.example.com");
    expect(projectSlug("../../etc")).toBe("etc");
    expect(projectSlug("..")).toBe("project");
    expect(projectSlug("///")).toBe("project");
    expect(projectStatusAfterJob("completed")).toBe("ready");
    expect(projectStatusAfterJob("cancelled")).toBe("failed");
  });
});
