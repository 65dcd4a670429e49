/** `npm start` as a terminal runs it, for the e2e tests that start the whole system. */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import path from "node:path";
import { ROOT } from "../../scripts/lib/coordinator";
import { until } from "../../scripts/lib/harness";
import { stopLeftovers } from "../../scripts/lib/leftovers";
import { removeRunDir } from "../../scripts/lib/run-state";

export interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export const runs: Run[] = [];
export const stateDirs: string[] = [];

/** `npm start` in a process group of its own, as a terminal runs it. */
export function npmStart(env: Record<string, string>): Run {
  const child = spawn("npm", ["start"], { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout!.on("data", (d) => (text += d));
  child.stderr!.on("data", (d) => (text += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const run = { child, output: () => text, exited };
  runs.push(run);
  return run;
}

/** Waits until a run printed its banner and answers /health; a timeout shows what the run printed. */
export async function upAndHealthy(run: Run, what: string, health: () => Promise<boolean>) {
  await until(what, 120_000, async () => run.output().includes("ClawBot Coordinator is running") && (await health())).catch((err) => {
    throw new Error(`${(err as Error).message}; its output ends:\n${run.output().slice(-3000)}`);
  });
}

export const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on("error", () => resolve(false));
  });

/** Processes whose command line mentions `text` (our state dir is in every one we start). */
export function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmd.includes(text) && Number(pid) !== process.pid) found.push(`${pid}: ${cmd.slice(0, 120)}`);
    } catch {
      // gone
    }
  }
  return found;
}

/**
 * Four consecutive free ports (the coordinator, stand-ins, relay, local VPS), below Linux's ephemeral range
 * (32768+): a port the kernel hands out for some outgoing connection could otherwise be taken between our
 * check and npm start's listen (seen once in CI: EADDRINUSE on port+1).
 */
export async function freePortBlock(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20_000 + Math.floor(Math.random() * 12_000);
    if (!(await Promise.all([0, 1, 2, 3].map((d) => portOpen(p + d)))).some(Boolean)) return p;
  }
  throw new Error("no four consecutive free ports");
}

/** Whatever a failed run left: npm start's own groups, then the groups it recorded. */
export async function cleanUpRuns(): Promise<void> {
  for (const r of runs) {
    try {
      process.kill(-r.child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of stateDirs) {
    await stopLeftovers(path.join(dir, "npm-start.pids"), () => {});
    removeRunDir(dir); // its state (D1, objects, R2, the local bot's projects) is the run's alone
  }
}
