/**
 * Task handlers. A task's payload may name its handler (`{"handler":"shell",…}`);
 * otherwise the bot's default handler runs it.
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";

import type { Readable } from "node:stream";
import type { AssignedArtifact } from "../../src/contracts/ws";
import type { ArtifactKind, UploadedArtifact } from "./artifacts";

export interface TaskContext {
  taskId: string;
  attempt: number;
  /** Aborted when the coordinator cancels the task (timeout, operator). */
  signal: AbortSignal;
  progress(percent: number, message?: string): void;
  /** Output lines for the task's watchers (a job's `log` events). */
  log(stream: "stdout" | "stderr", lines: string[]): void;
  /** Stores a file for this task's job (a screenshot is also an event of the job's stream). */
  upload(name: string, data: Uint8Array | Readable, contentType?: string, kind?: ArtifactKind): Promise<UploadedArtifact>;
  /** The job's input files, with their signed download URLs (see `download`). */
  inputs: AssignedArtifact[];
  /** Fetches one of `inputs`. */
  download(input: AssignedArtifact): Promise<Uint8Array>;
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

/** One allowed command: the executable, and the pattern every one of its arguments must match in full. */
export interface ShellRule {
  command: string;
  /** null: the command takes no arguments. */
  args: RegExp | null;
}

/**
 * Parses `--allow-shell` entries: `uname` (no arguments), `git:status|log|diff`
 * (each argument must be one of those), `ls:-l|/srv/[a-z]+` (a regular
 * expression, anchored at both ends). Entries are separated by commas.
 */
export function parseShellRules(spec: string): ShellRule[] {
  return spec
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const colon = entry.indexOf(":");
      if (colon < 0) return { command: entry, args: null };
      return { command: entry.slice(0, colon), args: new RegExp(`^(?:${entry.slice(colon + 1)})$`) };
    });
}

export interface ShellOptions {
  /** What the bot may run. Empty: shell tasks are refused. */
  allow: ShellRule[];
  timeoutMs: number;
  maxOutputBytes: number;
  /** The one directory commands run in (created if missing); a task cannot choose another. */
  workDir: string;
}

/**
 * What a command sees of the bot's environment: a PATH and a locale, nothing
 * else, so the bot's token, the OpenRouter key and any other secret of the
 * bot's process never reach a task's command.
 */
function minimalEnv(workDir: string): NodeJS.ProcessEnv {
  // (cast: the Worker's generated types widen ProcessEnv with its own vars)
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8", HOME: workDir } as unknown as NodeJS.ProcessEnv;
}

/**
 * Runs an allow-listed executable with allowed arguments as an argument
 * vector, never through a shell string, so a payload cannot inject `; rm -rf /`;
 * in the bot's work directory, with a minimal environment.
 * Payload: {"handler":"shell","command":"uname","args":["-a"]}.
 */
export function shellHandler(opts: ShellOptions): TaskHandler {
  return (payload, ctx) =>
    new Promise((resolve, reject) => {
      const p = payload as { command?: unknown; args?: unknown; cwd?: unknown };
      if (typeof p?.command !== "string" || !p.command) return reject(new Error("shell task needs a string 'command'"));
      const rule = opts.allow.find((r) => r.command === p.command);
      if (!rule) return reject(new Error(`command '${p.command}' is not allow-listed on this bot`));
      if (p.cwd !== undefined) return reject(new Error("shell tasks run in the bot's work directory; 'cwd' is not accepted"));
      const args = Array.isArray(p.args) ? p.args.map(String) : [];
      const refused = args.find((a) => !rule.args?.test(a));
      if (refused !== undefined)
        return reject(new Error(`argument '${refused.slice(0, 100)}' is not allowed for '${rule.command}' on this bot`));
      mkdirSync(opts.workDir, { recursive: true });
      const child = spawn(p.command, args, {
        cwd: opts.workDir,
        env: minimalEnv(opts.workDir),
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
