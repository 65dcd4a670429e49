/** The bot's `openclaw` handler against the stand-in CLI (standins/openclaw.mjs): success, failure, a hang past the timeout, cancel. */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { TaskContext } from "../../bot/src/handlers";
import { openclawHandler } from "../../bot/src/openclaw";

const STAND_IN = path.resolve("standins/openclaw.mjs");

function context(signal = new AbortController().signal) {
  const progress: number[] = [];
  const logs: { stream: string; line: string }[] = [];
  /** What the handler uploaded, as the coordinator would have stored it. */
  const uploads: { name: string; data: Buffer; contentType?: string; kind?: string }[] = [];
  const ctx: TaskContext = {
    taskId: "t",
    attempt: 1,
    signal,
    progress: (p) => progress.push(p),
    log: (stream, lines) => logs.push(...lines.map((line) => ({ stream, line }))),
    upload: async (name, data, contentType, kind) => {
      uploads.push({ name, data: Buffer.from(data as Uint8Array), contentType, kind });
      return { id: `artifact-${uploads.length}`, name, content_type: contentType ?? "", size: (data as Uint8Array).byteLength, sha256: "" };
    },
    inputs: [],
    download: async () => new Uint8Array(),
  };
  return { ctx, progress, logs, uploads };
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

  it("uploads the run's whole output as its log, and the screenshots it saved during the run", async () => {
    const { ctx, uploads } = context();
    // A screenshot left over from an earlier run is not this run's.
    const shots = path.join(projectsDir, "shots.example", ".openclaw", "screenshots");
    mkdirSync(shots, { recursive: true });
    writeFileSync(path.join(shots, "old.png"), "old");
    utimesSync(path.join(shots, "old.png"), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const result = (await handler()({ project_dir: "shots.example", prompt: "site [openclaw:screenshot]" }, ctx)) as Record<
      string,
      unknown
    >;
    expect(uploads.map((u) => [u.name, u.kind, u.contentType])).toEqual([
      ["openclaw-run.log", "log", "text/plain; charset=utf-8"],
      ["home.png", "screenshot", "image/png"],
    ]);
    expect(uploads[0]!.data.toString()).toMatch(
      /^openclaw stand-in: initializing .*\nprogress 10\n[\s\S]*saved a screenshot of the home page\n[\s\S]*project initialized$/,
    );
    expect(uploads[1]!.data).toEqual(readFileSync(path.join(shots, "home.png")));
    expect(result).toMatchObject({ log_artifact_id: "artifact-1", screenshot_artifact_ids: ["artifact-2"] });

    // A failed run's log is uploaded too, and named in the error; a failed upload never fails the run.
    const failing = context();
    await expect(handler()({ project_dir: "broken", prompt: "x [openclaw:fail]" }, failing.ctx)).rejects.toThrow(
      /\(log: artifact artifact-1\)/,
    );
    expect(failing.uploads[0]!.data.toString()).toContain("! error: could not clone the frontend template");
    const refusing = context();
    refusing.ctx.upload = async () => {
      throw new Error("coordinator said no");
    };
    expect(await handler()({ project_dir: "shots.example", prompt: "again [openclaw:screenshot]" }, refusing.ctx)).toMatchObject({
      exit_code: 0,
      log_artifact_id: null,
    });
    expect(refusing.logs.some((l) => l.line.includes("could not upload the run's log: coordinator said no"))).toBe(true);
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
