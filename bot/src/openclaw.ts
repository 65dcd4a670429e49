/**
 * The `openclaw` handler: runs `openclaw run <project dir> --prompt <prompt>`
 * for a project's initialization (seed 000) as an argument vector, never a
 * shell string, so a prompt cannot inject a command. Streams its output lines
 * to the task's watchers, reports the progress it prints (`progress 40` or
 * `[progress] 40%` lines), and kills it on timeout or cancel. When the run ends (done or failed),
 * its whole output is uploaded as the task's `log` artifact, and the screenshots it saved in
 * `<project dir>/.openclaw/screenshots/` during the run as `screenshot` artifacts (each one an event in
 * the job's stream). An upload that fails is reported in the log lines, never fails the run.
 *
 * Payload: {"handler":"openclaw","project_dir":"shop.example","prompt":"…","timeout_seconds":600}
 */
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { TaskContext, TaskHandler } from "./handlers";

export interface OpenClawOptions {
  /** The OpenClaw CLI (`--openclaw-bin`, default `openclaw` on PATH). */
  bin: string;
  /** Where projects live on this bot (`--projects-dir`, default ~/openclaw-projects); each one is a directory in it. */
  projectsDir: string;
  /** Upper bound of a run, whatever the payload asks (default 10 minutes, seed 000's). */
  maxTimeoutMs: number;
  /** Lines of stderr kept for the failure message. */
  stderrTailLines?: number;
}

const PROGRESS_LINE = /^\s*\[?progress\]?[:\s]+(\d{1,3})\s*%?/i;
/** Output is sent in batches: at most this often, or when this many lines are waiting. */
const LOG_FLUSH_MS = 200;
const LOG_FLUSH_LINES = 50;
/** The run's log artifact keeps at most this much output (the end is cut, and says so). */
const MAX_LOG_BYTES = 5 * 1024 * 1024;
const SCREENSHOT_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
};

/** Uploads the run's output and the screenshots it saved since `sinceMs`; returns what was stored. */
async function uploadRunFiles(ctx: TaskContext, dir: string, sinceMs: number, output: string[]) {
  const stored: { log_artifact_id: string | null; screenshot_artifact_ids: string[] } = {
    log_artifact_id: null,
    screenshot_artifact_ids: [],
  };
  const attempt = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      ctx.log("stderr", [`[clawbot] could not upload ${what}: ${(err as Error).message}`]);
    }
  };
  await attempt("the run's log", async () => {
    stored.log_artifact_id = (await ctx.upload("openclaw-run.log", Buffer.from(output.join("\n")), "text/plain; charset=utf-8", "log")).id;
  });
  const shotsDir = path.join(dir, ".openclaw", "screenshots");
  let names: string[] = [];
  try {
    names = readdirSync(shotsDir).sort();
  } catch {
    return stored; // the run saved none
  }
  for (const name of names) {
    const file = path.join(shotsDir, name);
    const type = SCREENSHOT_TYPES[path.extname(name).toLowerCase()];
    if (!type || statSync(file).mtimeMs < sinceMs) continue;
    await attempt(`screenshot ${name}`, async () => {
      stored.screenshot_artifact_ids.push((await ctx.upload(name, readFileSync(file), type, "screenshot")).id);
    });
  }
  return stored;
}

/** A directory name inside the projects directory, nothing that could climb out of it. */
function safeDir(name: unknown): string {
  if (typeof name !== "string" || !/^[a-z0-9][a-z0-9.-]{0,99}$/.test(name) || name.includes("..")) {
    throw new Error("openclaw task needs a 'project_dir' of lower-case letters, digits, dots and dashes");
  }
  return name;
}

export function openclawHandler(opts: OpenClawOptions): TaskHandler {
  return (payload, ctx) =>
    new Promise((resolve, reject) => {
      const p = payload as { project_dir?: unknown; prompt?: unknown; timeout_seconds?: unknown };
      let dir: string;
      try {
        dir = path.join(opts.projectsDir, safeDir(p?.project_dir));
      } catch (err) {
        return reject(err);
      }
      if (typeof p.prompt !== "string" || !p.prompt.trim()) return reject(new Error("openclaw task needs a 'prompt'"));
      const asked = typeof p.timeout_seconds === "number" && p.timeout_seconds > 0 ? p.timeout_seconds * 1000 : opts.maxTimeoutMs;
      const timeoutMs = Math.min(asked, opts.maxTimeoutMs);
      mkdirSync(dir, { recursive: true });
      const startedAtMs = Date.now() - 1000; // file times may be coarser than the clock
      const output: string[] = [];
      let outputBytes = 0;
      // Its own process group, so a timeout or a cancel stops everything it started, not just the CLI itself.
      const child = spawn(opts.bin, ["run", dir, "--prompt", p.prompt], {
        cwd: dir,
        shell: false,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      };
      const tailSize = opts.stderrTailLines ?? 20;
      const stderrTail: string[] = [];
      const stdoutTail: string[] = [];
      const pending: Record<"stdout" | "stderr", string[]> = { stdout: [], stderr: [] };
      const flush = () => {
        for (const stream of ["stdout", "stderr"] as const) {
          if (pending[stream].length) ctx.log(stream, pending[stream].splice(0));
        }
      };
      const timer = setInterval(flush, LOG_FLUSH_MS);
      const lines = (stream: "stdout" | "stderr") => {
        let partial = "";
        return (chunk: Buffer) => {
          const parts = (partial + chunk.toString("utf8")).split(/\r?\n/);
          partial = parts.pop() ?? "";
          for (const line of parts) {
            const m = PROGRESS_LINE.exec(line);
            if (m) ctx.progress(Math.min(100, Number(m[1])), line.trim().slice(0, 200));
            const tail = stream === "stderr" ? stderrTail : stdoutTail;
            tail.push(line);
            if (tail.length > tailSize) tail.shift();
            pending[stream].push(line);
            if (outputBytes < MAX_LOG_BYTES) {
              outputBytes += line.length + 1;
              output.push(outputBytes < MAX_LOG_BYTES ? `${stream === "stderr" ? "! " : ""}${line}` : "[clawbot] output cut here (5 MiB)");
            }
            if (pending[stream].length >= LOG_FLUSH_LINES) flush();
          }
        };
      };
      child.stdout.on("data", lines("stdout"));
      child.stderr.on("data", lines("stderr"));
      let timedOut = false;
      const deadline = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, timeoutMs);
      const onAbort = () => killGroup();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearInterval(timer);
        clearTimeout(deadline);
        ctx.signal.removeEventListener("abort", onAbort);
        flush();
      };
      child.on("error", (err) => {
        done();
        reject(new Error(`could not run ${opts.bin}: ${err.message}`));
      });
      child.on("close", async (code, signal) => {
        done();
        if (ctx.signal.aborted) return reject(new Error("cancelled"));
        const files = await uploadRunFiles(ctx, dir, startedAtMs, output);
        if (code === 0) return resolve({ exit_code: 0, project_path: dir, stdout_tail: stdoutTail.join("\n"), ...files });
        const why = timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : `exited with ${code ?? signal}`;
        const log = files.log_artifact_id ? ` (log: artifact ${files.log_artifact_id})` : "";
        reject(new Error(`openclaw ${why}: ${stderrTail.join("\n").slice(-2000)}${log}`));
      });
    });
}
