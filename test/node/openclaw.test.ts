/** The bot's `openclaw` handler against the stand-in CLI (standins/openclaw.mjs): success, failure, a hang past the timeout, cancel. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { TaskContext } from "../../bot/src/handlers";
import { openclawHandler } from "../../bot/src/openclaw";

const STAND_IN = path.resolve("standins/openclaw.mjs");

function context(signal = new AbortController().signal) {
  const progress: number[] = [];
  const logs: { stream: string; line: string }[] = [];
  const ctx: TaskContext = {
    taskId: "t",
    attempt: 1,
    signal,
    progress: (p) => progress.push(p),
    log: (stream, lines) => logs.push(...lines.map((line) => ({ stream, line }))),
  };
  return { ctx, progress, logs };
}

/** Processes whose command line mentions this marker (the stand-in and anything it started). */
const running = (marker: string) => {
  try {
    return execFileSync("pgrep", ["-f", marker], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
};

describe("openclaw handler", () => {
  const projectsDir = mkdtempSync(path.join(os.tmpdir(), "openclaw-projects-"));
  process.env.OPENCLAW_STANDIN_STEP_MS = "20";
  const handler = (maxTimeoutMs = 10_000) => openclawHandler({ bin: STAND_IN, projectsDir, maxTimeoutMs });

  it("runs `openclaw run <dir> --prompt <prompt>` as an argument vector: progress and output lines reach the task, the project is made", async () => {
    const { ctx, progress, logs } = context();
    const prompt = "Initialize website project. Project name: shop; $(touch /tmp/pwned) `id`";
    const result = (await handler()({ project_dir: "shop.example", prompt }, ctx)) as Record<string, unknown>;
    expect(result).toMatchObject({ exit_code: 0, project_path: path.join(projectsDir, "shop.example") });
    expect(progress).toEqual([10, 30, 50, 80, 100]);
    expect(logs.some((l) => l.stream === "stdout" && l.line === "project initialized")).toBe(true);
    // The prompt arrived as one argument, verbatim: no shell ever saw it.
    expect(readFileSync(path.join(projectsDir, "shop.example", "OPENCLAW.md"), "utf8")).toContain(prompt);
    expect(existsSync("/tmp/pwned")).toBe(false);
  });

  it("a failing run rejects with its exit code and the tail of its stderr", async () => {
    const { ctx, logs } = context();
    await expect(handler()({ project_dir: "broken", prompt: "x [openclaw:fail]" }, ctx)).rejects.toThrow(
      /exited with 3: error: could not clone the frontend template/,
    );
    expect(logs.some((l) => l.stream === "stderr")).toBe(true);
  });

  it("a run that hangs past its timeout is killed, with everything it started", async () => {
    const { ctx } = context();
    const marker = "hang-marker-timeout";
    const started = Date.now();
    await expect(handler(600)({ project_dir: "hangs", prompt: `[openclaw:hang] ${marker}` }, ctx)).rejects.toThrow(/timed out after 1s/);
    expect(Date.now() - started).toBeLessThan(3000);
    await new Promise((r) => setTimeout(r, 100));
    expect(running(marker)).toEqual([]);
  });

  it("cancel kills the run at once and rejects as cancelled", async () => {
    const abort = new AbortController();
    const { ctx, progress } = context(abort.signal);
    const marker = "hang-marker-cancel";
    const run = handler()({ project_dir: "cancelled", prompt: `[openclaw:hang] ${marker}` }, ctx);
    while (!progress.includes(50)) await new Promise((r) => setTimeout(r, 10));
    expect(running(marker).length).toBeGreaterThan(0);
    abort.abort();
    await expect(run).rejects.toThrow(/cancelled/);
    await new Promise((r) => setTimeout(r, 100));
    expect(running(marker)).toEqual([]);
  });

  it("refuses a project_dir that could leave the projects directory, and a missing prompt", async () => {
    const { ctx } = context();
    for (const project_dir of ["../etc", "/etc", "a/b", "..", "", 7]) {
      await expect(handler()({ project_dir, prompt: "p" }, ctx)).rejects.toThrow(/project_dir/);
    }
    await expect(handler()({ project_dir: "ok", prompt: "" }, ctx)).rejects.toThrow(/prompt/);
  });
});
