/**
 * `npm start` as a newcomer runs it: it starts everything and prints where; it
 * calls the cron handler on schedule; Ctrl-C stops every process it started;
 * and after it is killed with SIGKILL (its children survive, holding their
 * ports), the next `npm start` stops the leftovers and comes up.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { until } from "../../scripts/lib/harness";
import { cleanUpRuns, freePortBlock, npmStart, portOpen, processesMentioning, stateDirs, upAndHealthy } from "../helpers/npm-start";

afterAll(cleanUpRuns);

describe("npm start", () => {
  it("runs the cron on schedule, survives a kill -9 of an earlier run, and Ctrl-C leaves nothing behind", async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), "cbc-npm-start-"));
    stateDirs.push(stateDir);
    const port = await freePortBlock();
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
