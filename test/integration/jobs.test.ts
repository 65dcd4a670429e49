import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, expectError, get, post, registerBot, StreamSocket, uniqueCapability } from "../helpers/api";

async function createJob(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await post("/api/v1/jobs", body, { headers });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res;
}

const job = async (id: string) => (await get(`/api/v1/jobs/${id}`)).body;

/** A connected bot with a fresh capability. */
async function botFor(cap: string) {
  const bot = await registerBot([cap]);
  const sock = await BotSocket.open(bot.id, bot.token);
  await sock.next("connected");
  return { bot, sock };
}

describe("jobs", () => {
  it("a single-task job: 202 with status_url, websocket_url and Location; queued → running → completed, watched live in order", async () => {
    const cap = uniqueCapability("job");
    const res = await createJob({ task: { payload: { n: 1 }, capability: cap }, metadata: { who: "test" } });
    const created = res.body;
    expect(created).toMatchObject({ kind: "task", status: "queued", progress: 0, step_count: 1, metadata: { who: "test" } });
    expect(created.status_url).toBe(`/api/v1/jobs/${created.id}`);
    expect(created.websocket_url).toBe(`/api/v1/ws/jobs/${created.id}`);
    expect(res.headers.get("Location")).toBe(created.status_url);

    const watcher = await StreamSocket.open(created.websocket_url);
    const snapshot = await watcher.waitFor("the snapshot", (m) => m.type === "status");
    expect(snapshot).toMatchObject({ status: "queued", progress: 0, data: { job_id: created.id, snapshot: true } });

    const { sock } = await botFor(cap);
    const assigned = await sock.next("task_assigned");
    expect(assigned.payload.task_payload).toEqual({ n: 1 });
    const task = (await get(`/api/v1/tasks/${assigned.payload.task_id}`)).body;
    expect(task).toMatchObject({ job_id: created.id, step_index: 0 });

    sock.send({ type: "task_started", payload: { task_id: task.id } });
    await sock.next("task_ack");
    expect(await job(created.id)).toMatchObject({ status: "running" });
    // One frame at a time: frames sent back to back from this test's socket (the pool's in-process
    // WebSocket) can reach the bot's object out of order, which no socket from outside does
    // (test/e2e/frame-order.test.ts); the progress event is published after its write.
    sock.send({ type: "task_progress", payload: { task_id: task.id, progress: 50, message: "half way" } });
    await watcher.waitFor("the progress", (m) => m.type === "progress");
    expect((await job(created.id)).progress).toBe(50);
    sock.send({ type: "task_log", payload: { task_id: task.id, lines: ["building", "done"] } });
    await watcher.waitFor("the log", (m) => m.type === "log");
    await sock.complete(task.id, { answer: 42 });

    const complete = await watcher.waitFor("complete", (m) => m.type === "complete");
    expect(complete).toMatchObject({ status: "completed", progress: 100, data: { result: { answer: 42 } } });
    const types = watcher.events().map((m) => m.type);
    expect(types).toEqual(["step", "task_started", "status", "progress", "log", "step", "status", "complete"]);
    const seqs = watcher.events().map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(watcher.events().find((m) => m.type === "progress").data).toMatchObject({ progress: 50, message: "half way" });
    expect(watcher.events().find((m) => m.type === "log").data).toMatchObject({ lines: ["building", "done"], stream: "stdout" });

    expect(await job(created.id)).toMatchObject({ status: "completed", progress: 100, result: { answer: 42 } });
    const result = (await get(`/api/v1/jobs/${created.id}/result`)).body;
    expect(result).toMatchObject({ job_id: created.id, status: "completed", result: { answer: 42 } });
    expect(result.steps).toEqual([
      { step_index: 0, iteration: 0, item_index: null, task_id: task.id, status: "completed", result: { answer: 42 }, error: null },
    ]);
    watcher.close();
    sock.close();
  });

  it("POST /workflows/{id}/execute runs fresh copies of the steps in order; the workflow's own tasks are untouched", async () => {
    const cap = uniqueCapability("wfjob");
    const wf = (await post("/api/v1/workflows", { name: "three", capability: cap, task_payloads: [{ s: 0 }, { s: 1 }, { s: 2 }] })).body;
    const res = await post(`/api/v1/workflows/${wf.id}/execute`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const j = res.body;
    expect(j).toMatchObject({ kind: "workflow", workflow_id: wf.id, step_count: 3, status: "queued" });
    expect(res.headers.get("Location")).toBe(`/api/v1/jobs/${j.id}`);

    const { sock } = await botFor(cap);
    const progress: number[] = [];
    for (const s of [0, 1, 2]) {
      const a = await sock.next("task_assigned");
      expect(a.payload.task_payload).toEqual({ s });
      expect(wf.task_ids).not.toContain(a.payload.task_id);
      await sock.complete(a.payload.task_id, { step: s });
      progress.push((await job(j.id)).progress);
    }
    expect(progress).toEqual([33, 66, 100]);
    expect(await job(j.id)).toMatchObject({ status: "completed", result: { step: 2 } });
    const result = (await get(`/api/v1/jobs/${j.id}/result`)).body;
    expect(result.steps.map((s: any) => s.result)).toEqual([{ step: 0 }, { step: 1 }, { step: 2 }]);
    // The workflow's own definition did not run.
    expect((await get(`/api/v1/workflows/${wf.id}`)).body).toMatchObject({ status: "pending", task_ids: wf.task_ids });
    const own = (await get(`/api/v1/workflows/${wf.id}/tasks`)).body.tasks;
    expect(own.map((t: any) => t.status)).toEqual(["pending", "pending", "pending"]);
    // And the jobs of a workflow are listed by it.
    const listed = (await get(`/api/v1/jobs?workflow_id=${wf.id}`)).body;
    expect(listed.map((x: any) => x.id)).toEqual([j.id]);
    sock.close();
  });

  it("cancel while queued, while a step runs (the bot is told), between steps; a finished job answers 409", async () => {
    const cap = uniqueCapability("cancel");
    // Queued: nobody can run it.
    const queued = (await createJob({ task: { capability: cap } })).body;
    const cancelled = await post(`/api/v1/jobs/${queued.id}/cancel`);
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body).toMatchObject({ status: "cancelled", error_code: "cancelled" });
    expectError(await post(`/api/v1/jobs/${queued.id}/cancel`), 409, "invalid_transition");

    // While a step runs: the bot gets task_cancelled, the job ends at once, the later steps never run.
    const wf = (await post("/api/v1/workflows", { name: "c", capability: cap, task_payloads: [{ s: 0 }, { s: 1 }] })).body;
    const running = (await post(`/api/v1/workflows/${wf.id}/execute`)).body;
    const { sock } = await botFor(cap);
    const a = await sock.next("task_assigned");
    sock.send({ type: "task_started", payload: { task_id: a.payload.task_id } });
    await sock.next("task_ack");
    const watcher = await StreamSocket.open(`/api/v1/ws/execution/${running.id}`);
    expect((await post(`/api/v1/jobs/${running.id}/cancel`)).body.status).toBe("cancelled");
    expect((await sock.next("task_cancelled")).payload.task_id).toBe(a.payload.task_id);
    // Seed 004's stream names the end execution_completed.
    expect(await watcher.waitFor("the end", (m) => m.type === "execution_completed")).toMatchObject({ status: "cancelled" });
    const steps = (await get(`/api/v1/jobs/${running.id}/result`)).body.steps;
    expect(steps.map((s: any) => s.status)).toEqual(["cancelled", "cancelled"]);
    await sock.sync();
    expect(sock.inbox.find((m) => m.type === "task_assigned")).toBeUndefined();

    // Between steps: step 0 done, step 1 released but not yet taken (the bot is held).
    const between = (await post(`/api/v1/workflows/${wf.id}/execute`)).body;
    const b = await sock.next("task_assigned");
    const bot = (await get(`/api/v1/tasks/${b.payload.task_id}`)).body.bot_id;
    expect((await post(`/api/v1/bots/${bot}/busy`)).status).toBe(200);
    await sock.complete(b.payload.task_id);
    expect((await job(between.id)).status).toBe("running");
    expect((await post(`/api/v1/jobs/${between.id}/cancel`)).body).toMatchObject({ status: "cancelled", progress: 50 });
    const after = (await get(`/api/v1/jobs/${between.id}/result`)).body.steps;
    expect(after.map((s: any) => s.status)).toEqual(["completed", "cancelled"]);

    // Finished: 409, nothing changes.
    await post(`/api/v1/bots/${bot}/available`);
    const done = (await createJob({ task: { capability: cap } })).body;
    const d = await sock.next("task_assigned");
    await sock.complete(d.payload.task_id);
    expectError(await post(`/api/v1/jobs/${done.id}/cancel`), 409, "invalid_transition");
    expect((await job(done.id)).status).toBe("completed");
    watcher.close();
    sock.close();
  });

  it("execute: false creates a queued job that nothing runs until POST /jobs/{id}/execute (202, once)", async () => {
    const cap = uniqueCapability("later");
    const { sock } = await botFor(cap);
    const j = (await createJob({ task: { capability: cap, payload: { later: true } }, execute: false })).body;
    expect(j).toMatchObject({ status: "queued", queued_at: null });
    await sock.sync();
    expect(sock.inbox.find((m) => m.type === "task_assigned")).toBeUndefined();
    const started = await post(`/api/v1/jobs/${j.id}/execute`);
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.headers.get("Location")).toBe(`/api/v1/jobs/${j.id}`);
    expect(started.body.queued_at).not.toBeNull();
    const a = await sock.next("task_assigned");
    expect(a.payload.task_payload).toEqual({ later: true });
    expectError(await post(`/api/v1/jobs/${j.id}/execute`), 409, "invalid_transition");
    sock.close();
  });

  it("a failed attempt is retried with backoff (a step event in the stream); the job stays running and then completes", async () => {
    const cap = uniqueCapability("retry");
    const j = (await createJob({ task: { capability: cap, max_attempts: 2 } })).body;
    const watcher = await StreamSocket.open(`/api/v1/ws/jobs/${j.id}?since=0`);
    const { sock } = await botFor(cap);
    const first = await sock.next("task_assigned");
    sock.send({ type: "task_started", payload: { task_id: first.payload.task_id } });
    await sock.next("task_ack");
    sock.send({ type: "task_complete", payload: { task_id: first.payload.task_id, success: false, error: "flaky" } });
    await sock.next("task_ack");
    const retry = await watcher.waitFor("the retry", (m) => m.type === "step" && m.data.status === "retry_scheduled");
    expect(retry.data).toMatchObject({ error_code: "bot_error", error: "flaky", attempt: 1 });
    expect((await job(j.id)).status).toBe("running");
    const second = await sock.next("task_assigned", 5000);
    expect(second.payload.attempt).toBe(2);
    await sock.complete(second.payload.task_id, { second: true });
    await watcher.waitFor("complete", (m) => m.type === "complete");
    // since=0 replays from the first event: the log starts with the queued status.
    expect(watcher.log[0]).toMatchObject({ type: "status", seq: 1, status: "queued" });
    expect(await job(j.id)).toMatchObject({ status: "completed", result: { second: true } });
    watcher.close();
    sock.close();
  });

  it("a job whose last attempt fails ends failed with an error event", async () => {
    const cap = uniqueCapability("fail");
    const j = (await createJob({ task: { capability: cap, max_attempts: 1 } })).body;
    const { sock } = await botFor(cap);
    const a = await sock.next("task_assigned");
    sock.send({ type: "task_complete", payload: { task_id: a.payload.task_id, success: false, error: "boom" } });
    await sock.next("task_ack");
    expect(await job(j.id)).toMatchObject({ status: "failed", error: "boom", error_code: "bot_error" });
    const events = (await get(`/api/v1/jobs/${j.id}/events`)).body;
    expect(events.map((e: any) => e.type).slice(-3)).toEqual(["status", "error", "complete"]);
    expect(events.at(-2).data).toMatchObject({ code: "bot_error", message: "boom" });
    sock.close();
  });

  it("idempotency keys: the same request returns the same job (200), another request is 409, nothing more is made", async () => {
    const key = `job-${crypto.randomUUID()}`;
    const body = { task: { payload: { k: 1 }, capability: uniqueCapability("idem") } };
    const results = await Promise.all(Array.from({ length: 4 }, () => post("/api/v1/jobs", body, { headers: { "Idempotency-Key": key } })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 202]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expectError(
      await post("/api/v1/jobs", { task: { payload: { k: 2 } } }, { headers: { "Idempotency-Key": key } }),
      409,
      "idempotency_conflict",
    );
    const n = await env.DB.prepare("SELECT count(*) AS n FROM jobs WHERE idempotency_key = ?").bind(key).first<{ n: number }>();
    expect(n!.n).toBe(1);
  });

  it("bad input is a clear 4xx and makes nothing; unknown ids are job_not_found; viewers read but cannot act", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM jobs").first<{ n: number }>();
    expectError(await post("/api/v1/jobs", {}), 400, "validation_failed");
    expectError(await post("/api/v1/jobs", { task: {}, workflow_id: "x" }), 400, "validation_failed");
    expectError(await post("/api/v1/jobs", { task: { timeout_seconds: 0 } }), 400, "validation_failed");
    expectError(await post("/api/v1/jobs", { workflow_id: "no-such-workflow" }), 404, "workflow_not_found");
    expectError(await post("/api/v1/workflows/no-such-workflow/execute"), 404, "workflow_not_found");
    expectError(await get("/api/v1/jobs?status=nope"), 400, "validation_failed");
    expectError(await get("/api/v1/jobs?created_after=yesterday"), 400, "validation_failed");
    const after = await env.DB.prepare("SELECT count(*) AS n FROM jobs").first<{ n: number }>();
    expect(after!.n).toBe(before!.n);
    expectError(await get("/api/v1/jobs/nope"), 404, "job_not_found");
    expectError(await get("/api/v1/jobs/nope/result"), 404, "job_not_found");
    expectError(await post("/api/v1/jobs/nope/cancel"), 404, "job_not_found");
    expectError(await get("/api/v1/jobs/nope/events"), 404, "job_not_found");
    const upgrade = await StreamSocket.upgrade("/api/v1/ws/jobs/nope");
    expect(upgrade.status).toBe(404);

    const running = (await createJob({ task: { capability: uniqueCapability("viewer") } })).body;
    expectError(await get(`/api/v1/jobs/${running.id}/result`), 409, "not_finished");
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "v" })).body.token;
    expect((await get(`/api/v1/jobs/${running.id}`, { token: viewer })).status).toBe(200);
    expectError(await post("/api/v1/jobs", { task: {} }, { token: viewer }), 403, "forbidden");
    expectError(await post(`/api/v1/jobs/${running.id}/cancel`, undefined, { token: viewer }), 403, "forbidden");
    expect((await job(running.id)).status).toBe("queued");
  });

  it("lists filter by status and creation time, newest first", async () => {
    const cap = uniqueCapability("list");
    const since = new Date(Date.now() - 1).toISOString();
    const a = (await createJob({ task: { capability: cap } })).body;
    const b = (await createJob({ task: { capability: cap } })).body;
    await post(`/api/v1/jobs/${a.id}/cancel`);
    const recent = (await get(`/api/v1/jobs?created_after=${encodeURIComponent(since)}&limit=200`)).body.map((j: any) => j.id);
    expect(recent.indexOf(b.id)).toBeLessThan(recent.indexOf(a.id));
    const cancelled = (await get(`/api/v1/jobs?status=cancelled&created_after=${encodeURIComponent(since)}`)).body.map((j: any) => j.id);
    expect(cancelled).toContain(a.id);
    expect(cancelled).not.toContain(b.id);
    const before = (await get(`/api/v1/jobs?created_before=${encodeURIComponent(since)}&limit=200`)).body.map((j: any) => j.id);
    expect(before).not.toContain(a.id);
  });
});
