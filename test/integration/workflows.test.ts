import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, del, eventually, expectError, get, post, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

async function createWorkflow(body: Record<string, unknown>) {
  const res = await post("/api/v1/workflows", body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

describe("workflows", () => {
  it("creates with seed 001's task_payloads and returns task_ids; nothing runs before start", async () => {
    const cap = uniqueCapability();
    const wf = await createWorkflow({
      name: "CI/CD Pipeline",
      description: "Build, test, and deploy",
      capability: cap,
      task_payloads: [{ action: "build" }, { action: "test" }, { action: "deploy" }],
      metadata: { branch: "main" },
    });
    expect(wf).toMatchObject({ name: "CI/CD Pipeline", status: "pending", metadata: { branch: "main" } });
    expect(wf.task_ids).toHaveLength(3);
    const withTasks = (await get(`/api/v1/workflows/${wf.id}/tasks`)).body;
    expect(withTasks.workflow.id).toBe(wf.id);
    expect(withTasks.tasks.map((t: any) => t.payload.action)).toEqual(["build", "test", "deploy"]);
    expect(withTasks.tasks.every((t: any) => t.status === "pending" && t.waiting_for === "previous_step")).toBe(true);
    expect(withTasks.tasks.map((t: any) => t.step_index)).toEqual([0, 1, 2]);

    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    await sock.sync();
    expect(sock.log.find((m) => m.type === "task_assigned")).toBeUndefined();
    // A step that is not released cannot be assigned by hand either.
    expectError(await post(`/api/v1/tasks/${wf.task_ids[1]}/assign`, { bot_id: bot.id }), 409, "invalid_transition");
    sock.close();
  });

  it("eight parallel creates with one idempotency key make one workflow: one 201, the rest 200 with the same id", async () => {
    const key = `wf-race-${crypto.randomUUID()}`;
    const body = { name: "raced", task_payloads: [{ n: 0 }, { n: 1 }] };
    const results = await Promise.all(
      Array.from({ length: 8 }, () => post("/api/v1/workflows", body, { headers: { "Idempotency-Key": key } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.every((r) => r.body.task_ids.length === 2)).toBe(true);
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM workflows WHERE idempotency_key = ?").bind(key).first<{ n: number }>();
    expect(rows!.n).toBe(1);
    // The same key with another request is a conflict, and makes nothing.
    expectError(
      await post("/api/v1/workflows", { name: "raced", task_payloads: [{ n: 9 }] }, { headers: { "Idempotency-Key": key } }),
      409,
      "idempotency_conflict",
    );
    const steps = await env.DB.prepare("SELECT count(*) AS n FROM tasks WHERE workflow_id = ?")
      .bind(results[0]!.body.id)
      .first<{ n: number }>();
    expect(steps!.n).toBe(2);
  });

  it("runs steps strictly in order, and hands a step to another bot when the first one is not free", async () => {
    const cap = uniqueCapability();
    const wf = await createWorkflow({ name: "seq", capability: cap, task_payloads: [{ n: 0 }, { n: 1 }, { n: 2 }] });
    const bots = await Promise.all([registerBot([cap], "w1"), registerBot([cap], "w2")]);
    const socks = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    await Promise.all(socks.map((s) => s.next("connected")));
    const assigned = (i: number) => socks[i]!.log.filter((m) => m.type === "task_assigned").map((m) => m.payload.task_payload.n);
    const started = await post(`/api/v1/workflows/${wf.id}/start`);
    expect(started.body.status).toBe("in_progress");
    expectError(await post(`/api/v1/workflows/${wf.id}/start`), 409, "invalid_transition");

    // Step 0 goes to one bot; nothing else is released while it runs.
    const { first } = await eventually(
      async () => {
        const i = [0, 1].find((n) => assigned(n).length > 0);
        return i === undefined ? null : { first: i };
      },
      5000,
      "step 0 assigned",
    );
    const other = 1 - first;
    const step0 = await socks[first]!.next("task_assigned");
    expect(step0.payload.task_payload).toEqual({ n: 0 });
    expect((await get(`/api/v1/workflows/${wf.id}/tasks`)).body.tasks.map((t: any) => t.status)).toEqual([
      "assigned",
      "pending",
      "pending",
    ]);

    // The first bot is put on hold before it finishes, so step 1 must go to the other bot.
    await post(`/api/v1/bots/${bots[first]!.id}/busy`);
    await socks[first]!.complete(step0.payload.task_id, { step: 0 });
    const step1 = await socks[other]!.next("task_assigned");
    expect(step1.payload.task_payload).toEqual({ n: 1 });
    expect(await taskStatus(step1.payload.task_id)).toMatchObject({ status: "assigned", bot_id: bots[other]!.id });
    await socks[other]!.complete(step1.payload.task_id, { step: 1 });
    const step2 = await socks[other]!.next("task_assigned");
    expect(step2.payload.task_payload).toEqual({ n: 2 });
    await socks[other]!.complete(step2.payload.task_id, { step: 2 });

    expect(assigned(first)).toEqual([0]);
    expect(assigned(other)).toEqual([1, 2]);
    const done = (await get(`/api/v1/workflows/${wf.id}/tasks`)).body;
    expect(done.workflow.status).toBe("completed");
    expect(done.workflow.finished_at).not.toBeNull();
    expect(done.tasks.map((t: any) => [t.status, t.bot_id])).toEqual([
      ["completed", bots[first]!.id],
      ["completed", bots[other]!.id],
      ["completed", bots[other]!.id],
    ]);
    for (const s of socks) s.close();
  });

  it("a failed step fails the workflow and cancels the rest", async () => {
    const cap = uniqueCapability();
    const wf = await createWorkflow({ name: "fails", capability: cap, max_attempts: 1, task_payloads: [{ n: 0 }, { n: 1 }, { n: 2 }] });
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await post(`/api/v1/workflows/${wf.id}/start`);
    const m = await sock.next("task_assigned");
    sock.send({ type: "task_complete", payload: { task_id: m.payload.task_id, success: false, error: "tests red" } });
    expect((await sock.next("task_ack")).payload.status).toBe("failed");
    const { workflow, tasks } = (await get(`/api/v1/workflows/${wf.id}/tasks`)).body;
    expect(workflow.status).toBe("failed");
    expect(tasks.map((t: any) => t.status)).toEqual(["failed", "cancelled", "cancelled"]);
    sock.close();
  });

  it("steps[] carry their own capability and timeout", async () => {
    const wf = await createWorkflow({
      name: "mixed",
      steps: [{ payload: { a: 1 }, capability: "python", timeout_seconds: 60 }, { payload: { b: 2 } }],
      timeout_seconds: 120,
    });
    const { tasks } = (await get(`/api/v1/workflows/${wf.id}/tasks`)).body;
    expect(tasks[0]).toMatchObject({ capability: "python", timeout_seconds: 60 });
    expect(tasks[1]).toMatchObject({ capability: null, timeout_seconds: 120 });
  });

  it("validates input and lists, gets and deletes", async () => {
    expectError(await post("/api/v1/workflows", { name: "empty", task_payloads: [] }), 400, "validation_failed");
    expectError(await post("/api/v1/workflows", { task_payloads: [{}] }), 400, "validation_failed");
    expectError(await post("/api/v1/workflows", { name: "both", task_payloads: [{}], steps: [{}] }), 400, "validation_failed");
    const wf = await createWorkflow({ name: "to-delete", capability: uniqueCapability(), task_payloads: [{}, {}] });
    expect((await get("/api/v1/workflows?limit=200")).body.map((w: any) => w.id)).toContain(wf.id);
    expect((await get("/api/v1/workflows?status=pending&limit=200")).body.map((w: any) => w.id)).toContain(wf.id);
    expect((await del(`/api/v1/workflows/${wf.id}`)).body).toEqual({ id: wf.id, deleted: true });
    expectError(await get(`/api/v1/workflows/${wf.id}`), 404, "workflow_not_found");
    expectError(await get(`/api/v1/tasks/${wf.task_ids[0]}`), 404, "task_not_found");
  });

  it("deleting a workflow mid-step tells the bot and frees it", async () => {
    const cap = uniqueCapability();
    const wf = await createWorkflow({ name: "del-running", capability: cap, task_payloads: [{}, {}] });
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await post(`/api/v1/workflows/${wf.id}/start`);
    const m = await sock.next("task_assigned");
    await del(`/api/v1/workflows/${wf.id}`);
    expect((await sock.next("task_cancelled")).payload.task_id).toBe(m.payload.task_id);
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ status: "online", current_task_id: null });
    sock.close();
  });

  it("cancelling a step cancels the workflow", async () => {
    const wf = await createWorkflow({ name: "cancel", capability: uniqueCapability(), task_payloads: [{}, {}] });
    await post(`/api/v1/workflows/${wf.id}/start`);
    await post(`/api/v1/tasks/${wf.task_ids[0]}/cancel`, {});
    expect((await get(`/api/v1/workflows/${wf.id}`)).body.status).toBe("cancelled");
    expect((await taskStatus(wf.task_ids[1])).status).toBe("cancelled");
  });
});
