/**
 * End to end: `wrangler dev` + several real bot processes. A workflow and 200
 * tasks go through; every task completes exactly once, including across a
 * kill -9 of the coordinator in the middle of the run.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, mapLimit, spawnBot, startHarness, until } from "../../scripts/lib/harness";

const BOTS = 4;
const TASKS = 200;
const CAP = "e2e";

describe("fleet end to end", () => {
  let h: Harness;
  const bots: ChildProcess[] = [];

  beforeAll(async () => {
    h = await startHarness({ BOT_RECONNECT_GRACE_S: "5", RETRY_BASE_DELAY_MS: "200", RETRY_MAX_DELAY_MS: "1000", LOG_LEVEL: "info" });
    for (let i = 0; i < BOTS; i++)
      bots.push(spawnBot(h.coordinator.url, `e2e-bot-${i}`, [CAP], ["--heartbeat-s", "5"], `${h.persistDir}/bot-${i}.log`));
    await until("all bots online", 30_000, async () => {
      const res = await h.api("GET", `/api/v1/bots?capability=${CAP}&status=online`);
      return res.body.length === BOTS;
    });
  });

  afterAll(async () => {
    for (const b of bots) b.kill("SIGTERM");
    await h?.stop();
  });

  it("runs a workflow in order and 200 tasks exactly once, surviving a coordinator crash", async () => {
    const wf = await h.api("POST", "/api/v1/workflows", {
      name: "e2e pipeline",
      capability: CAP,
      task_payloads: [{ step: "build" }, { step: "test" }, { step: "deploy" }],
    });
    expect(wf.status).toBe(201);
    expect((await h.api("POST", `/api/v1/workflows/${wf.body.id}/start`)).status).toBe(200);

    const ids: string[] = [];
    const create = (n: number) =>
      h
        // The first half takes 250 ms each (over 6 s of work for four bots), so work is in flight when the coordinator dies.
        .api("POST", "/api/v1/tasks", { payload: { n, delay_ms: n < TASKS / 2 ? 250 : 0 }, capability: CAP, idempotency_key: `e2e-${n}` })
        .then((r) => {
          expect(r.status).toBe(201);
          ids.push(r.body.id);
        });
    await mapLimit(
      Array.from({ length: TASKS / 2 }, (_, n) => n),
      10,
      create,
    );

    // Crash the coordinator mid-run (with tasks held by bots and tasks still queued); bots reconnect to the restarted one.
    // Held = bots holding a task, read in one query (two status lists read one after the other can both miss
    // a task that moved from assigned to in_progress between them: it failed that way with every bot busy).
    const held = (await h.api("GET", `/api/v1/bots?capability=${CAP}&limit=200`)).body.filter((b: any) => b.current_task_id).length;
    const queued = (await h.api("GET", "/api/v1/tasks?limit=200&status=pending")).body.length;
    expect(held, "tasks running on bots at the kill").toBeGreaterThan(0);
    expect(queued, "tasks still queued at the kill").toBeGreaterThan(0);
    await h.coordinator.kill();
    await h.restart();
    await mapLimit(
      Array.from({ length: TASKS / 2 }, (_, n) => n + TASKS / 2),
      10,
      create,
    );

    let unfinished: any[] = [];
    await until(
      "every task completed",
      120_000,
      async () => {
        // Crons do not fire under wrangler dev: run the sweeper like `npm start` does.
        await fetch(`${h.coordinator.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`).catch(() => undefined);
        unfinished = [];
        for (const status of ["pending", "assigned", "in_progress"])
          unfinished.push(...(await h.api("GET", `/api/v1/tasks?limit=200&status=${status}`)).body);
        return unfinished.length === 0;
      },
      1000,
    ).catch((err) => {
      const sample = unfinished
        .slice(0, 5)
        .map((t) => ({ id: t.id, status: t.status, waiting_for: t.waiting_for, bot: t.bot_id, attempts: t.attempts, wf: t.workflow_id }));
      throw new Error(`${err.message}; ${unfinished.length} unfinished, e.g. ${JSON.stringify(sample)}; log: ${h.logFile}`);
    });

    const tasks = await mapLimit(ids, 10, async (id) => (await h.api("GET", `/api/v1/tasks/${id}`)).body);
    expect(tasks.filter((t) => t.status !== "completed").map((t) => `${t.id}:${t.status}:${t.error}`)).toEqual([]);
    const completions = await mapLimit(
      ids,
      10,
      async (id) => (await h.api("GET", `/api/v1/tasks/${id}/events`)).body.filter((e: any) => e.type === "task_completed").length,
    );
    const notOnce = ids.map((id, i) => ({ id, completions: completions[i] })).filter((c) => c.completions !== 1);
    if (notOnce.length) {
      const ev = (await h.api("GET", `/api/v1/tasks/${notOnce[0]!.id}/events`)).body;
      throw new Error(
        `${notOnce.length} tasks not completed exactly once: ${JSON.stringify(notOnce.slice(0, 3))}; events: ${JSON.stringify(ev)}`,
      );
    }
    for (const t of tasks) expect(t.result).toEqual({ echo: t.payload });
    expect(new Set(tasks.map((t) => t.bot_id)).size).toBeGreaterThan(1); // work was spread over the fleet

    const flow = await h.api("GET", `/api/v1/workflows/${wf.body.id}/tasks`);
    expect(flow.body.workflow.status).toBe("completed");
    const steps = flow.body.tasks;
    expect(steps.map((t: any) => t.payload.step)).toEqual(["build", "test", "deploy"]);
    for (let i = 1; i < steps.length; i++)
      expect(Date.parse(steps[i].assigned_at)).toBeGreaterThanOrEqual(Date.parse(steps[i - 1].completed_at));

    // The bots are back online after the crash.
    await until(
      "bots online after restart",
      30_000,
      async () => (await h.api("GET", `/api/v1/bots?capability=${CAP}&status=online`)).body.length === BOTS,
    );
  }, 240_000); // every task (120 s) + bots back online (30 s) + two batches and a restart

  it("without the cron: a held task still times out after a crash, from its bot object's own alarm", async () => {
    // Nothing in this test calls the scheduled handler: only the Durable Object's persisted alarm can act.
    const solo = spawnBot(h.coordinator.url, "e2e-solo", ["e2e-solo"], ["--heartbeat-s", "5"], `${h.persistDir}/bot-solo.log`);
    bots.push(solo);
    await until(
      "solo bot online",
      30_000,
      async () => (await h.api("GET", "/api/v1/bots?capability=e2e-solo&status=online")).body.length === 1,
    );
    const task = (
      await h.api("POST", "/api/v1/tasks", { payload: { delay_ms: 60_000 }, capability: "e2e-solo", timeout_seconds: 4, max_attempts: 1 })
    ).body;
    await until("task running", 10_000, async () => (await h.api("GET", `/api/v1/tasks/${task.id}`)).body.status === "in_progress");
    // The coordinator dies, then the bot (so nobody reconnects and re-arms anything by talking to the object).
    await h.coordinator.kill();
    solo.kill("SIGKILL");
    await h.restart();
    const timedOut = await until(
      "the deadline alarm fired after the restart",
      30_000,
      async () => {
        const t = (await h.api("GET", `/api/v1/tasks/${task.id}`)).body;
        return t.status === "failed" ? t : null;
      },
      500,
    );
    expect(timedOut).toMatchObject({ status: "failed", error_code: "timeout" });
  }, 90_000); // bot online (30 s) + running (10 s) + the alarm after a restart (30 s)
});
