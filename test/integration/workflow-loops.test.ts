/**
 * Looping workflows through real bot sockets: `repeat_until` with
 * `max_iterations`, `on_failure: goto <step>` (forward and back), `for_each`
 * over an earlier result with a parallelism limit; every run is its own task
 * (the bot never sees a task id twice), every decision is in the job's
 * stream, and a definition that could loop without bound is a 400.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, type BotSocket, expectError, get, post, StreamSocket, uniqueCapability } from "../helpers/api";
import { connectedBot, createWorkflow } from "../helpers/workflows";

/** [step_index, iteration, item_index, status, error_code] of every run of a job, in order. */
const runsOf = async (jobId: string) =>
  (
    await env.DB.prepare(
      "SELECT step_index, iteration, item_index, status, error_code FROM tasks WHERE job_id = ? ORDER BY step_index, iteration, item_index",
    )
      .bind(jobId)
      .all()
  ).results.map((r: any) => [r.step_index, r.iteration, r.item_index, r.status, r.error_code]);

/** The next task_assigned any of `bots` gets, and which bot got it. */
async function firstAssigned(bots: BotSocket[], timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const bot of bots) {
      const i = bot.inbox.findIndex((m) => m.type === "task_assigned");
      if (i >= 0) return { bot, msg: bot.inbox.splice(i, 1)[0] };
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no task_assigned within ${timeoutMs} ms`);
}

const jobStatus = async (id: string) => (await get(`/api/v1/jobs/${id}`)).body.status;

describe("looping workflows", () => {
  it("repeat_until: the step runs again, as a new task, until its condition holds; then the run goes on", async () => {
    const cap = uniqueCapability("repeat");
    const id = await createWorkflow(cap, [
      { payload: { poll: true, item: "kept" }, repeat_until: "steps[0].result.ready == true", max_iterations: 5 },
      { payload: { next: true }, when: "steps[0].iterations == 2" },
    ]);
    const job = (await post(`/api/v1/workflows/${id}/execute`)).body;
    const watcher = await StreamSocket.open(job.websocket_url);
    const sock = await connectedBot(cap);

    const first = await sock.next("task_assigned");
    expect(first.payload.task_payload).toEqual({ poll: true, item: "kept" });
    await sock.complete(first.payload.task_id, { ready: false });
    const repeat = await watcher.waitFor("the repeat", (m) => m.type === "decision" && m.data.decision === "repeat");
    expect(repeat.data).toEqual({ step_index: 0, decision: "repeat", when: "steps[0].result.ready == true", iteration: 1 });
    expect(await jobStatus(job.id)).toBe("running");

    const second = await sock.next("task_assigned");
    expect(second.payload.task_id).not.toBe(first.payload.task_id);
    expect(second.payload.task_payload).toEqual({ poll: true, item: "kept" }); // a repeated step's payload as it was
    await sock.complete(second.payload.task_id, { ready: true });
    await watcher.waitFor("the loop's end", (m) => m.type === "decision" && m.data.decision === "repeat_until_met");

    const third = await sock.next("task_assigned");
    expect(third.payload.task_payload).toEqual({ next: true });
    await sock.complete(third.payload.task_id, { finished: 1 });
    const complete = await watcher.waitFor("the end", (m) => m.type === "complete");
    expect(complete.data).toMatchObject({ status: "completed", progress: 100, result: { finished: 1 } });
    expect(await runsOf(job.id)).toEqual([
      [0, 0, null, "completed", null],
      [0, 1, null, "completed", null],
      [1, 0, null, "completed", null],
    ]);
    const result = (await get(`/api/v1/jobs/${job.id}/result`)).body;
    expect(result.steps.map((s: any) => [s.step_index, s.iteration, s.result])).toEqual([
      [0, 0, { ready: false }],
      [0, 1, { ready: true }],
      [1, 0, { finished: 1 }],
    ]);
    const task = (await get(`/api/v1/tasks/${second.payload.task_id}`)).body;
    expect(task).toMatchObject({ iteration: 1, repeat_until: "steps[0].result.ready == true", max_iterations: 5, step_index: 0 });
    watcher.close();
    sock.close();
  });

  it("repeat_until that never holds: after max_iterations runs the step fails (max_iterations) and the run with it", async () => {
    const cap = uniqueCapability("spent");
    const id = await createWorkflow(cap, [
      { payload: {}, repeat_until: "steps[0].result.ok", max_iterations: 2 },
      { payload: { never: true } },
    ]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const sock = await connectedBot(cap);
    await sock.complete((await sock.next("task_assigned")).payload.task_id, { ok: false });
    await sock.complete((await sock.next("task_assigned")).payload.task_id, { ok: false });
    await expect.poll(() => jobStatus(job.id), { timeout: 5000 }).toBe("failed");
    expect((await get(`/api/v1/jobs/${job.id}`)).body).toMatchObject({
      error_code: "max_iterations",
      error: "repeat_until steps[0].result.ok was still false after 2 iterations",
    });
    expect(await runsOf(job.id)).toEqual([
      [0, 0, null, "completed", null],
      [0, 1, null, "failed", "max_iterations"],
      [1, 0, null, "cancelled", "cancelled"],
    ]);
    // Each run's history ends with why: the last run completed, then failed its loop; the next step was cancelled.
    const steps = (await get(`/api/v1/jobs/${job.id}/result`)).body.steps;
    const historyOf = async (i: number) =>
      (await get(`/api/v1/tasks/${steps[i].task_id}/events`)).body.map((e: any) => [e.type, e.data.error_code ?? null]);
    expect((await historyOf(1)).slice(-2)).toEqual([
      ["task_completed", null],
      ["task_failed", "max_iterations"],
    ]);
    expect(await historyOf(2)).toEqual([
      ["task_created", null],
      ["task_cancelled", "cancelled"],
    ]);
    sock.close();
  });

  it("goto back: a failing step sends the run to an earlier step, which runs again; the retry can succeed", async () => {
    const cap = uniqueCapability("goto");
    const id = await createWorkflow(cap, [
      { payload: { build: true } },
      { payload: { test: true }, on_failure: "goto 0", max_iterations: 3 },
    ]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const watcher = await StreamSocket.open(job.websocket_url);
    const sock = await connectedBot(cap);
    const seen: string[] = [];
    for (const outcome of [true, false, true, true]) {
      const assigned = await sock.next("task_assigned");
      seen.push(assigned.payload.task_id);
      await sock.complete(assigned.payload.task_id, { n: seen.length }, outcome);
    }
    await expect.poll(() => jobStatus(job.id), { timeout: 5000 }).toBe("completed");
    expect(new Set(seen).size).toBe(4); // every run a task of its own
    const goto = watcher.log.find((m: any) => m.type === "decision" && m.data.decision === "goto");
    expect(goto.data).toEqual({ step_index: 1, decision: "goto", to_step: 0, iteration: 1 });
    expect(await runsOf(job.id)).toEqual([
      [0, 0, null, "completed", null],
      [0, 1, null, "completed", null],
      [1, 0, null, "failed", "bot_error"],
      [1, 1, null, "completed", null],
    ]);
    expect((await get(`/api/v1/jobs/${job.id}`)).body).toMatchObject({ status: "completed", progress: 100, result: { n: 4 } });
    watcher.close();
    sock.close();
  });

  it("goto forward: the steps between are skipped and the run goes on at the target", async () => {
    const cap = uniqueCapability("jump");
    const id = await createWorkflow(cap, [
      { payload: { a: 1 }, on_failure: "goto 2" },
      { payload: { b: 1 } },
      { payload: { cleanup: true } },
    ]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const sock = await connectedBot(cap);
    await sock.complete((await sock.next("task_assigned")).payload.task_id, { broke: true }, false);
    const cleanup = await sock.next("task_assigned");
    expect(cleanup.payload.task_payload).toEqual({ cleanup: true });
    await sock.complete(cleanup.payload.task_id, { cleaned: true });
    await expect.poll(() => jobStatus(job.id), { timeout: 5000 }).toBe("completed");
    expect(await runsOf(job.id)).toEqual([
      [0, 0, null, "failed", "bot_error"],
      [1, 0, null, "cancelled", "skipped"],
      [2, 0, null, "completed", null],
    ]);
    sock.close();
  });

  it("for_each with parallelism 2: one run per item, at most two at once with three bots free; the step's result lists them in order", async () => {
    const cap = uniqueCapability("fan");
    const id = await createWorkflow(cap, [
      { payload: { list: true } },
      { payload: { work: "file" }, for_each: "steps[0].result.files", parallelism: 2 },
    ]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const watcher = await StreamSocket.open(job.websocket_url);
    const bots = [await connectedBot(cap), await connectedBot(cap), await connectedBot(cap)];
    const assignedTo = () => firstAssigned(bots);
    const lister = await assignedTo();
    await lister.bot.complete(lister.msg.payload.task_id, { files: ["a.txt", "b.txt", "c.txt"] });
    const fanned = await watcher.waitFor("the fan-out", (m) => m.type === "decision" && m.data.decision === "for_each");
    expect(fanned.data).toMatchObject({ step_index: 1, items: 3 });

    const one = await assignedTo();
    const two = await assignedTo();
    const inFlight = [one.msg.payload.task_payload, two.msg.payload.task_payload].sort((x, y) => x.item_index - y.item_index);
    expect(inFlight).toEqual([
      { work: "file", item: "a.txt", item_index: 0 },
      { work: "file", item: "b.txt", item_index: 1 },
    ]);
    // The third bot is free and connected, yet gets nothing while two items run.
    for (const b of bots) await b.sync();
    expect(bots.flatMap((b) => b.inbox.filter((m) => m.type === "task_assigned"))).toEqual([]);
    const waiting = await env.DB.prepare("SELECT id FROM tasks WHERE job_id = ? AND item_index = 2").bind(job.id).first<{ id: string }>();
    expect((await get(`/api/v1/tasks/${waiting!.id}`)).body).toMatchObject({
      status: "pending",
      waiting_for: "parallelism",
      item_index: 2,
    });

    await one.bot.complete(one.msg.payload.task_id, { done: one.msg.payload.task_payload.item });
    const three = await assignedTo();
    expect(three.msg.payload.task_payload).toEqual({ work: "file", item: "c.txt", item_index: 2 });
    await two.bot.complete(two.msg.payload.task_id, { done: two.msg.payload.task_payload.item });
    await three.bot.complete(three.msg.payload.task_id, { done: "c.txt" });

    const complete = await watcher.waitFor("the end", (m) => m.type === "complete");
    expect(complete.data).toMatchObject({
      status: "completed",
      progress: 100,
      result: [{ done: "a.txt" }, { done: "b.txt" }, { done: "c.txt" }],
    });
    expect(await runsOf(job.id)).toEqual([
      [0, 0, null, "completed", null],
      [1, 0, 0, "completed", null],
      [1, 0, 1, "completed", null],
      [1, 0, 2, "completed", null],
    ]);
    // Tasks created under the capability: the workflow's 2, the job's copies 2, the 2 items the plan added.
    const createdSeries = `clawbot_tasks_created_total{capability="${cap}"} `;
    const created = async () => {
      const text = await (
        await SELF.fetch("http://coordinator.test/metrics", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })
      ).text();
      return Number(
        text
          .split("\n")
          .find((l) => l.startsWith(createdSeries))
          ?.slice(createdSeries.length) ?? 0,
      );
    };
    await expect.poll(created, { timeout: 5000 }).toBe(6);
    watcher.close();
    for (const b of bots) b.close();
  });

  it("items ending at the same moment: the step still completes once, with every result (five rounds of four bots)", async () => {
    for (let round = 0; round < 5; round++) {
      const cap = uniqueCapability("fanrace");
      const id = await createWorkflow(cap, [
        { payload: {} },
        { payload: {}, for_each: "steps[0].result.items", parallelism: 4 },
        { payload: { last: true } },
      ]);
      const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
      const bots = [await connectedBot(cap), await connectedBot(cap), await connectedBot(cap), await connectedBot(cap)];
      const first = await firstAssigned(bots);
      await first.bot.complete(first.msg.payload.task_id, { items: ["w", "x", "y", "z"] });
      const items = [await firstAssigned(bots), await firstAssigned(bots), await firstAssigned(bots), await firstAssigned(bots)];
      // All four results sent before any answer is awaited.
      for (const { bot, msg } of items)
        bot.send({
          type: "task_complete",
          payload: { task_id: msg.payload.task_id, success: true, result: msg.payload.task_payload.item },
        });
      const last = await firstAssigned(bots);
      expect(last.msg.payload.task_payload).toEqual({ last: true });
      await last.bot.complete(last.msg.payload.task_id, { ok: round });
      await expect.poll(() => jobStatus(job.id), { timeout: 5000 }).toBe("completed");
      const runs = await runsOf(job.id);
      expect(runs.filter((r) => r[0] === 1).map((r) => r[3])).toEqual(["completed", "completed", "completed", "completed"]);
      const steps = (await get(`/api/v1/jobs/${job.id}/result`)).body.steps;
      expect(steps.filter((s: any) => s.step_index === 1).map((s: any) => s.result)).toEqual(["w", "x", "y", "z"]);
      for (const b of bots) b.close();
    }
  });

  it("cancelling a job with for_each items running cancels every one of them on its bot", async () => {
    const cap = uniqueCapability("fancancel");
    const id = await createWorkflow(cap, [{ payload: {} }, { payload: {}, for_each: "steps[0].result.items", parallelism: 2 }]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const a = await connectedBot(cap);
    const b = await connectedBot(cap);
    const first = await firstAssigned([a, b]);
    await first.bot.complete(first.msg.payload.task_id, { items: [1, 2, 3] });
    const held = [await a.next("task_assigned"), await b.next("task_assigned")];
    expect(held.map((m) => m.payload.task_payload.item).sort()).toEqual([1, 2]);
    const cancelled = await post(`/api/v1/jobs/${job.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    for (const [sock, msg] of [
      [a, held[0]],
      [b, held[1]],
    ] as const) {
      const told = await sock.next("task_cancelled");
      expect(told.payload.task_id).toBe(msg.payload.task_id);
    }
    expect((await runsOf(job.id)).map((r) => r[3])).toEqual(["completed", "cancelled", "cancelled", "cancelled"]);
    a.close();
    b.close();
  });

  it("a workflow run by /start loops on its own tasks; a job made from it afterwards copies the steps, not the runs", async () => {
    const cap = uniqueCapability("own");
    const id = await createWorkflow(cap, [{ payload: { list: 1 } }, { payload: { each: 1 }, for_each: "steps[0].result.items" }]);
    expect((await post(`/api/v1/workflows/${id}/start`)).status).toBe(200);
    const sock = await connectedBot(cap);
    await sock.complete((await sock.next("task_assigned")).payload.task_id, { items: ["p", "q"] });
    for (const item of ["p", "q"]) {
      const assigned = await sock.next("task_assigned");
      expect(assigned.payload.task_payload).toMatchObject({ each: 1, item });
      await sock.complete(assigned.payload.task_id, item.toUpperCase());
    }
    await expect.poll(async () => (await get(`/api/v1/workflows/${id}`)).body.status, { timeout: 5000 }).toBe("completed");
    expect((await get(`/api/v1/workflows/${id}`)).body.task_ids).toHaveLength(3);

    const job = (await post(`/api/v1/workflows/${id}/execute`)).body;
    expect(job.step_count).toBe(2);
    await sock.complete((await sock.next("task_assigned")).payload.task_id, { items: ["r"] });
    const again = await sock.next("task_assigned");
    expect(again.payload.task_payload).toEqual({ each: 1, item: "r", item_index: 0 });
    await sock.complete(again.payload.task_id, "R");
    await expect.poll(() => jobStatus(job.id), { timeout: 5000 }).toBe("completed");
    expect((await get(`/api/v1/jobs/${job.id}`)).body.result).toEqual(["R"]);
    sock.close();
  });

  it("a loop without a bound, a reference to no step or a loop too big is a 400 naming the field; nothing is created", async () => {
    const count = async () => (await env.DB.prepare("SELECT count(*) n FROM workflows").first<{ n: number }>())!.n;
    const before = await count();
    for (const [steps, path, message] of [
      [[{}, { on_failure: "goto 0" }], "steps.1.max_iterations", /bound the loop/],
      [[{ on_failure: "goto 0" }], "steps.0.max_iterations", /bound the loop/],
      [[{}, { on_failure: "goto 5" }], "steps.1.on_failure", /there is no step 5/],
      [[{}, { on_failure: "goto" }], "steps.1.on_failure", /goto <step index>/],
      [[{ repeat_until: "steps[0].result.ok" }], "steps.0.max_iterations", /needs max_iterations/],
      [[{ repeat_until: "steps[1].result.ok", max_iterations: 2 }, {}], "steps.0.repeat_until", /not an earlier step/],
      [[{ repeat_until: "steps[0].result.ok ==", max_iterations: 2 }], "steps.0.repeat_until", /Unexpected/],
      [[{ max_iterations: 3 }], "steps.0.max_iterations", /has neither/],
      [[{ repeat_until: "true", max_iterations: 101 }], "steps.0.max_iterations", /100/],
      [[{ for_each: "[1, 2]" }], "steps.0.for_each", /no earlier results/],
      [[{}, { for_each: "steps[1].result" }], "steps.1.for_each", /not an earlier step/],
      [[{}, { for_each: "steps[0].result.items", payload: "text" }], "steps.1.payload", /must be an object/],
      [[{}, { for_each: "steps[0].result.items", payload: { item: 1 } }], "steps.1.payload", /cannot have item/],
      [[{}, { parallelism: 2 }], "steps.1.parallelism", /for a for_each step/],
      [[{}, { for_each: "steps[0].result.x", parallelism: 51 }], "steps.1.parallelism", /50/],
      [[{}, { for_each: "steps[0].result.x", repeat_until: "true", max_iterations: 2 }], "steps.1.repeat_until", /one way/],
      [
        [{}, { for_each: "steps[0].result.x", repeat_until: undefined }, { on_failure: "goto 0", max_iterations: 100 }],
        "steps",
        /could make 10200 runs/,
      ],
    ] as const) {
      const res = await post("/api/v1/workflows", { name: "bad", steps });
      expectError(res, 400, "validation_failed");
      const text = JSON.stringify(res.body.error);
      expect(text, JSON.stringify(steps)).toContain(path);
      expect(text, JSON.stringify(steps)).toMatch(message);
    }
    expect(await count()).toBe(before);
  });
});
