/**
 * `npm start` as a newcomer runs it: it starts everything and prints where; it
 * calls the cron handler on schedule; Ctrl-C stops every process it started;
 * and after it is killed with SIGKILL (its children survive, holding their
 * ports), the next `npm start` stops the leftovers and comes up.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/coordinator";
import { until } from "../../scripts/lib/harness";
import { stopLeftovers } from "../../scripts/lib/leftovers";

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const runs: Run[] = [];
const stateDirs: string[] = [];

/** `npm start` in a process group of its own, as a terminal runs it. */
function npmStart(env: Record<string, string>): Run {
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
async function upAndHealthy(run: Run, what: string, health: () => Promise<boolean>) {
  await until(what, 120_000, async () => run.output().includes("ClawBot Coordinator is running") && (await health())).catch((err) => {
    throw new Error(`${(err as Error).message}; its output ends:\n${run.output().slice(-3000)}`);
  });
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on("error", () => resolve(false));
  });

/** Processes whose command line mentions `text` (our state dir is in every one we start). */
function processesMentioning(text: string): string[] {
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

afterAll(async () => {
  // Whatever a failed run left: npm start's own groups, then the groups it recorded.
  for (const r of runs) {
    try {
      process.kill(-r.child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of stateDirs) await stopLeftovers(path.join(dir, "npm-start.pids"), () => {});
});

describe("npm start", () => {
  it("runs the cron on schedule, survives a kill -9 of an earlier run, and Ctrl-C leaves nothing behind", async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), "cbc-npm-start-"));
    stateDirs.push(stateDir);
    // Four consecutive free ports (the coordinator, stand-ins, relay, local VPS), below Linux's ephemeral range
    // (32768+): a port the kernel hands out for some outgoing connection could otherwise be taken between our
    // check and npm start's listen (seen once in CI: EADDRINUSE on port+1).
    let port = 0;
    for (let i = 0; i < 50 && !port; i++) {
      const p = 20_000 + Math.floor(Math.random() * 12_000);
      if (!(await Promise.all([0, 1, 2, 3].map((d) => portOpen(p + d)))).some(Boolean)) port = p;
    }
    expect(port).toBeGreaterThan(0);
    const env = { PORT: String(port), CLAWBOT_STATE_DIR: stateDir, CRON_INTERVAL_S: "1" };
    const health = async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.status === 200;

    const first = npmStart(env);
    await upAndHealthy(first, "first npm start is up", health);
    // The cron handler runs on schedule (here every second): the sweeper logs each run.
    await until("two sweeps", 20_000, async () => (first.output().match(/"msg":"sweep finished"/g) ?? []).length >= 2);
    const recorded = JSON.parse(readFileSync(path.join(stateDir, "npm-start.pids"), "utf8")) as { pgid: number }[];
    expect(recorded.length).toBeGreaterThanOrEqual(2);

    // kill -9 of npm start itself (its whole group, as when its terminal dies): its children live on and hold the port.
    process.kill(-first.child.pid!, "SIGKILL");
    await first.exited;
    expect(await health()).toBe(true);
    expect(processesMentioning(stateDir).length).toBeGreaterThan(0);

    // The next npm start stops them and comes up on the same ports.
    const second = npmStart(env);
    await upAndHealthy(second, "second npm start is up", health);
    expect(second.output()).toContain("left running by an earlier npm start");
    for (const { pgid } of recorded)
      expect(existsSync(`/proc/${pgid}`) && readFileSync(`/proc/${pgid}/cmdline`, "utf8").length > 0).toBe(false);

    // Ctrl-C: the terminal sends SIGINT to the foreground group; everything stops and the ports are free.
    process.kill(-second.child.pid!, "SIGINT");
    await Promise.race([second.exited, new Promise((_, reject) => setTimeout(() => reject(new Error("npm start did not exit")), 30_000))]);
    await until("ports free", 10_000, async () => !(await Promise.all([0, 1, 2, 3].map((d) => portOpen(port + d)))).some(Boolean));
    await until("no process left", 10_000, async () => processesMentioning(stateDir).length === 0);
    expect(existsSync(path.join(stateDir, "npm-start.pids"))).toBe(false);
  }, 300_000);
});
