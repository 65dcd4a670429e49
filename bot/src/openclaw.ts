/**
 * The `openclaw` handler: runs `openclaw run <project dir> --prompt <prompt>`
 * for a project's initialization (seed 000) as an argument vector, never a
 * shell string, so a prompt cannot inject a command. Streams its output lines
 * to the task's watchers, reports the progress it prints (`progress 40` or
 * `[progress] 40%` lines), and kills it on timeout or cancel.
 *
 * Payload: {"handler":"openclaw","project_dir":"shop.example","prompt":"…","timeout_seconds":600}
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { TaskHandler } from "./handlers";

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
      child.on("close", (code, signal) => {
        done();
        if (ctx.signal.aborted) return reject(new Error("cancelled"));
        if (code === 0) return resolve({ exit_code: 0, project_path: dir, stdout_tail: stdoutTail.join("\n") });
        const why = timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : `exited with ${code ?? signal}`;
        reject(new Error(`openclaw ${why}: ${stderrTail.join("\n").slice(-2000)}`));
      });
    });
}
