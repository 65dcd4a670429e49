/**
 * Task handlers. A task's payload may name its handler (`{"handler":"shell",…}`);
 * otherwise the bot's default handler runs it.
 */
import { spawn } from "node:child_process";

export interface TaskContext {
  taskId: string;
  attempt: number;
  /** Aborted when the coordinator cancels the task (timeout, operator). */
  signal: AbortSignal;
  progress(percent: number, message?: string): void;
}

export type TaskHandler = (payload: unknown, ctx: TaskContext) => Promise<unknown>;

/** Returns the payload it was given (after an optional `delay_ms`, for tests and benchmarks). */
export const echoHandler: TaskHandler = async (payload, ctx) => {
  const delayMs = typeof (payload as { delay_ms?: unknown })?.delay_ms === "number" ? (payload as { delay_ms: number }).delay_ms : 0;
  if (delayMs > 0) {
    ctx.progress(50, "waiting");
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, Math.min(delayMs, 600_000));
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new Error("cancelled"));
      });
    });
  }
  return { echo: payload };
};

export interface ShellOptions {
  /** Executable names the bot may run. Empty: shell tasks are refused. */
  allow: string[];
  timeoutMs: number;
  maxOutputBytes: number;
}

/**
 * Runs an allow-listed executable with an argument vector, never through a
 * shell string, so a payload cannot inject `; rm -rf /`.
 * Payload: {"handler":"shell","command":"uname","args":["-a"],"cwd"?: "/tmp"}.
 */
export function shellHandler(opts: ShellOptions): TaskHandler {
  return (payload, ctx) =>
    new Promise((resolve, reject) => {
      const p = payload as { command?: unknown; args?: unknown; cwd?: unknown };
      if (typeof p?.command !== "string" || !p.command) return reject(new Error("shell task needs a string 'command'"));
      if (!opts.allow.includes(p.command)) return reject(new Error(`command '${p.command}' is not allow-listed on this bot`));
      const args = Array.isArray(p.args) ? p.args.map(String) : [];
      const child = spawn(p.command, args, {
        cwd: typeof p.cwd === "string" ? p.cwd : undefined,
        shell: false,
        stdio: ["ignore", "pipe", "pipe"],
        signal: ctx.signal,
        timeout: opts.timeoutMs,
      });
      // Each stream keeps its first `maxOutputBytes` bytes; the rest is read and dropped.
      const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const size = { stdout: 0, stderr: 0 };
      const collect = (key: "stdout" | "stderr") => (chunk: Buffer) => {
        const room = opts.maxOutputBytes - size[key];
        if (room <= 0) return;
        const part = chunk.subarray(0, room);
        kept[key].push(part);
        size[key] += part.length;
      };
      child.stdout.on("data", collect("stdout"));
      child.stderr.on("data", collect("stderr"));
      const text = (key: "stdout" | "stderr") => Buffer.concat(kept[key]).toString("utf8");
      const out = () => ({ stdout: text("stdout"), stderr: text("stderr") });
      child.on("error", (err) => reject(err));
      child.on("close", (code, signal) => {
        if (code === 0) resolve({ exit_code: 0, ...out() });
        else reject(new Error(`command exited with ${code ?? signal}: ${out().stderr.slice(0, 500)}`));
      });
    });
}
