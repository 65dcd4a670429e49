import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, createTask, del, eventually, expectError, get, post, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

describe("tasks: REST lifecycle", () => {
  it("creates with defaults and validates input", async () => {
    const task = await createTask({ payload: { action: "build" }, capability: uniqueCapability() });
    expect(task).toMatchObject({
      status: "pending",
      priority: 0,
      timeout_seconds: 300,
      max_attempts: 3,
      attempts: 0,
      bot_id: null,
      result: null,
    });
    expect(task.waiting_for).toMatch(/^capability:/);
    for (const bad of [{ timeout_seconds: 0 }, { timeout_seconds: 3601 }, { priority: "high" }, { max_attempts: 0 }, { capability: "" }]) {
      expectError(await post("/api/v1/tasks", { payload: {}, ...bad }), 400, "validation_failed");
    }
    expectError(await post("/api/v1/tasks", undefined, { rawBody: "[1,2" }), 400, "invalid_json");
    expectError(
      await post("/api/v1/tasks", undefined, { rawBody: "payload=1", headers: { "Content-Type": "text/plain" } }),
      415,
      "unsupported_media_type",
    );
    expectError(await get("/api/v1/tasks/nope"), 404, "task_not_found");
  });

  it("rejects bodies over 256 KiB with 413 and stores nothing", async () => {
    const key = `big-${Date.now()}`;
    const res = await post("/api/v1/tasks", { payload: { blob: "x".repeat(300 * 1024) }, idempotency_key: key });
    expectError(res, 413, "payload_too_large");
    const row = await env.DB.prepare("SELECT count(*) AS n FROM tasks WHERE idempotency_key = ?").bind(key).first<{ n: number }>();
    expect(row!.n).toBe(0);
  });

  it("walks pending → assigned → in_progress → completed with timestamps and events", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token }); // online without a socket
    const task = await createTask({ payload: { n: 1 }, capability: cap });
    expect(task.status).toBe("pending"); // socketless bots are not auto-dispatched to

    const assigned = await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id });
    expect(assigned.status).toBe(200);
    expect(assigned.body).toMatchObject({ status: "assigned", bot_id: bot.id, attempts: 1 });
    expect(assigned.body.assigned_at).not.toBeNull();
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ status: "busy", current_task_id: task.id });

    const started = await post(`/api/v1/tasks/${task.id}/start`, undefined, { token: bot.token });
    expect(started.body.status).toBe("in_progress");
    expect(started.body.started_at).not.toBeNull();

    const done = await post(`/api/v1/tasks/${task.id}/complete`, { result: { image: "sha256:abc" } }, { token: bot.token });
    expect(done.body).toMatchObject({ status: "completed", result: { image: "sha256:abc" }, progress: 100 });
    expect(done.body.completed_at).not.toBeNull();
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ status: "online", current_task_id: null });

    const events = (await get(`/api/v1/tasks/${task.id}/events`)).body.map((e: any) => e.type);
    expect(events).toEqual(["task_created", "task_assigned", "task_started", "task_completed"]);

    // Illegal transitions are 409s with a clear code, and change nothing.
    const again = await post(`/api/v1/tasks/${task.id}/complete`, { result: { other: 1 } });
    const err = expectError(again, 409, "invalid_transition");
    expect(err.details.status).toBe("completed");
    expectError(await post(`/api/v1/tasks/${task.id}/cancel`, {}), 409, "invalid_transition");
    expect((await taskStatus(task.id)).result).toEqual({ image: "sha256:abc" });
  });

  it("refuses assigning to an offline, busy or incapable bot", async () => {
    const cap = uniqueCapability();
    const offline = await registerBot([cap]);
    const task = await createTask({ payload: {}, capability: cap });
    expectError(await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: offline.id }), 409, "bot_unavailable");
    const other = await registerBot(["other"]);
    await post(`/api/v1/bots/${other.id}/heartbeat`, undefined, { token: other.token });
    expectError(await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: other.id }), 409, "bot_unavailable");
    expectError(await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: "missing" }), 404, "bot_not_found");
    expectError(await post(`/api/v1/tasks/${task.id}/assign`, {}), 400, "validation_failed");
    expect((await taskStatus(task.id)).status).toBe("pending");
  });

  it("a failure with attempts left re-queues with backoff; the last one is final", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
    const task = await createTask({ payload: {}, capability: cap, max_attempts: 2 });
    await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id });
    const first = await post(`/api/v1/tasks/${task.id}/fail`, { error: "disk full" }, { token: bot.token });
    expect(first.body).toMatchObject({ status: "pending", error: "disk full", error_code: "bot_error", attempts: 1, bot_id: null });
    expect(first.body.run_after).not.toBeNull();
    expect((await get(`/api/v1/bots/${bot.id}`)).body.current_task_id).toBeNull();

    await eventually(async () => (await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id })).status === 200, 3000, "re-assign");
    const last = await post(`/api/v1/tasks/${task.id}/fail`, { error: "disk still full" }, { token: bot.token });
    expect(last.body).toMatchObject({ status: "failed", attempts: 2, error_code: "bot_error" });
    expect(last.body.failed_at).not.toBeNull();

    const noRetry = await createTask({ payload: {}, capability: cap });
    await post(`/api/v1/tasks/${noRetry.id}/assign`, { bot_id: bot.id });
    expect((await post(`/api/v1/tasks/${noRetry.id}/fail`, { error: "bad input", retry: false })).body.status).toBe("failed");
  });

  it("cancels pending tasks and deletes tasks", async () => {
    const task = await createTask({ payload: {}, capability: uniqueCapability() });
    const cancelled = await post(`/api/v1/tasks/${task.id}/cancel`, { reason: "not needed" });
    expect(cancelled.body).toMatchObject({ status: "cancelled", error_code: "cancelled" });
    expect(cancelled.body.cancelled_at).not.toBeNull();
    expect((await del(`/api/v1/tasks/${task.id}`)).body).toEqual({ id: task.id, deleted: true });
    expectError(await get(`/api/v1/tasks/${task.id}`), 404, "task_not_found");
  });

  it("lists newest first with filters, and /pending in dispatch order: priority, then oldest", async () => {
    const cap = uniqueCapability();
    const older = await createTask({ payload: { p: "older" }, capability: cap, priority: 5 });
    await new Promise((r) => setTimeout(r, 5)); // a later created_at, so the order is decided by age alone
    const newer = await createTask({ payload: { p: "newer" }, capability: cap, priority: 5 });
    await createTask({ payload: { p: "urgent" }, capability: cap, priority: 9 });
    expect(Date.parse(newer.created_at)).toBeGreaterThan(Date.parse(older.created_at));
    const ours = (rows: any[]) => rows.filter((t) => t.capability === cap).map((t) => t.payload.p);
    // Newest first, whatever the priority.
    expect(ours((await get(`/api/v1/tasks?status=pending&limit=200`)).body)).toEqual(["urgent", "newer", "older"]);
    // Dispatch order: highest priority, then oldest.
    expect(ours((await get(`/api/v1/tasks/pending?limit=200`)).body)).toEqual(["urgent", "older", "newer"]);
    expectError(await get("/api/v1/tasks?status=done"), 400, "validation_failed");
  });

  it("idempotency keys (header or body): the same request replays the first task; another request is 409", async () => {
    const key = `idem-${crypto.randomUUID()}`;
    const body = { payload: { a: 1 }, capability: uniqueCapability() };
    const first = await post("/api/v1/tasks", body, { headers: { "Idempotency-Key": key } });
    expect(first.status).toBe(201);
    // The same request, the key in the body this time (and object keys in another order): the first task.
    const again = await post("/api/v1/tasks", { capability: body.capability, idempotency_key: key, payload: { a: 1 } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    // Another request under the same key: refused, nothing made.
    const other = await post("/api/v1/tasks", { payload: { a: 2 }, capability: body.capability, idempotency_key: key });
    expectError(other, 409, "idempotency_conflict");
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM tasks WHERE capability = ?").bind(body.capability).first<{ n: number }>();
    expect(rows!.n).toBe(1);
  });

  it("eight parallel creates with one key: exactly one 201, the rest 200 with the same task", async () => {
    const key = `idem-race-${crypto.randomUUID()}`;
    const body = { payload: { n: 1 }, capability: uniqueCapability() };
    const results = await Promise.all(
      Array.from({ length: 8 }, () => post("/api/v1/tasks", body, { headers: { "Idempotency-Key": key } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
  });

  it("a key lives 24 hours: after that the same key makes a new task", async () => {
    const key = `idem-old-${crypto.randomUUID()}`;
    const body = { payload: {}, capability: uniqueCapability() };
    const first = (await post("/api/v1/tasks", body, { headers: { "Idempotency-Key": key } })).body;
    await env.DB.prepare("UPDATE tasks SET created_at = created_at - ? WHERE id = ?")
      .bind(24 * 60 * 60 * 1000 + 1000, first.id)
      .run();
    const fresh = await post("/api/v1/tasks", { ...body, payload: { other: true } }, { headers: { "Idempotency-Key": key } });
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(first.id);
    expect((await get(`/api/v1/tasks/${first.id}`)).body.idempotency_key).toBeNull();
  });
});

describe("tasks: dispatch over the bot WebSocket", () => {
  it("sends a new task at once to an idle capable bot (seed 001 message shapes)", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const task = await createTask({ payload: { action: "test" }, capability: cap });
    const msg = await sock.next("task_assigned");
    expect(msg.payload).toMatchObject({ task_id: task.id, task_payload: { action: "test" } });
    expect((await taskStatus(task.id)).status).toBe("assigned");

    const ack = await sock.complete(task.id, { output: "success" });
    expect(ack.payload).toEqual({ task_id: task.id, status: "completed", applied: true, ack_of: "task_complete" });
    const done = await taskStatus(task.id);
    expect(done).toMatchObject({ status: "completed", result: { output: "success" } });
    expect(done.started_at).not.toBeNull(); // completing from `assigned` records the start

    // A duplicate completion is answered, never applied twice.
    sock.send({ type: "task_complete", payload: { task_id: task.id, success: true, result: { output: "again" } } });
    expect((await sock.next("task_ack")).payload).toEqual({
      task_id: task.id,
      status: "completed",
      applied: false,
      ack_of: "task_complete",
    });
    expect((await taskStatus(task.id)).result).toEqual({ output: "success" });
    const events = (await get(`/api/v1/tasks/${task.id}/events`)).body.filter((e: any) => e.type === "task_completed");
    expect(events).toHaveLength(1);
    sock.close();
  });

  it("a bot that connects or finishes gets the next pending task, highest priority first", async () => {
    const cap = uniqueCapability();
    const low = await createTask({ payload: { p: 1 }, capability: cap, priority: 1 });
    const high = await createTask({ payload: { p: 9 }, capability: cap, priority: 9 });
    const mid = await createTask({ payload: { p: 5 }, capability: cap, priority: 5 });
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await sock.next("task_assigned");
      order.push(m.payload.task_id);
      await sock.complete(m.payload.task_id);
    }
    expect(order).toEqual([high.id, mid.id, low.id]);
    sock.close();
  });

  it("task_progress and task_started update the task; bad messages get an error and change nothing", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token, "query");
    const task = await createTask({ payload: {}, capability: cap });
    await sock.next("task_assigned");
    sock.send({ type: "task_started", payload: { task_id: task.id } });
    expect((await sock.next("task_ack")).payload.status).toBe("in_progress");
    sock.send({ type: "task_progress", payload: { task_id: task.id, progress: 40, message: "compiling" } });
    await eventually(async () => (await taskStatus(task.id)).progress === 40, 3000, "progress");
    expect((await taskStatus(task.id)).progress_message).toBe("compiling");

    sock.send("not json");
    expect((await sock.next("error")).payload.code).toBe("invalid_json");
    sock.send({ type: "task_progress", payload: { task_id: task.id, progress: 140 } });
    expect((await sock.next("error")).payload.code).toBe("validation_failed");
    sock.send({ type: "launch_missiles" });
    expect((await sock.next("error")).payload.code).toBe("validation_failed");
    sock.send({ type: "task_complete", payload: { task_id: "someone-elses", success: true } });
    expect((await sock.next("error")).payload.code).toBe("task_not_found");
    sock.send("x".repeat(300 * 1024));
    expect((await sock.next("error")).payload.code).toBe("payload_too_large");
    expect((await taskStatus(task.id)).status).toBe("in_progress");

    // Heartbeats are answered (the exact frame by the runtime itself, without waking the object).
    sock.send('{"type":"heartbeat"}');
    await sock.next("heartbeat_ack");
    sock.send({ type: "heartbeat", payload: { load: 0.1 } });
    await sock.next("heartbeat_ack");
    sock.close();
  });

  it("a bot failure over the socket re-queues the task, which another bot then completes", async () => {
    const cap = uniqueCapability();
    const a = await registerBot([cap], "a");
    const sa = await BotSocket.open(a.id, a.token);
    const task = await createTask({ payload: {}, capability: cap });
    await sa.next("task_assigned");
    sa.send({ type: "task_complete", payload: { task_id: task.id, success: false, error: "segfault" } });
    expect((await sa.next("task_ack")).payload.status).toBe("pending");
    const t = await taskStatus(task.id);
    expect(t).toMatchObject({ status: "pending", error_code: "bot_error", error: "segfault", attempts: 1 });
    // Bot a is held so that b gets the retry, dispatched by an alarm shortly after run_after.
    await post(`/api/v1/bots/${a.id}/busy`);
    const b = await registerBot([cap], "b");
    const sb = await BotSocket.open(b.id, b.token);
    const retry = await sb.next("task_assigned", 5000);
    expect(retry.payload).toMatchObject({ task_id: task.id, attempt: 2 });
    await sb.complete(task.id);
    expect((await taskStatus(task.id)).status).toBe("completed");
    sa.close();
    sb.close();
  });

  it("cancelling a running task tells its bot and frees it", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap });
    await sock.next("task_assigned");
    await post(`/api/v1/tasks/${task.id}/cancel`, { reason: "operator changed mind" });
    expect((await sock.next("task_cancelled")).payload.task_id).toBe(task.id);
    expect((await get(`/api/v1/bots/${bot.id}`)).body.status).toBe("online");
    sock.close();
  });

  it("a held bot gets nothing until released", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await post(`/api/v1/bots/${bot.id}/busy`);
    const task = await createTask({ payload: {}, capability: cap });
    expect((await taskStatus(task.id)).waiting_for).toBe(`capability:${cap}`);
    await sock.sync();
    expect(sock.log.find((m) => m.type === "task_assigned")).toBeUndefined();
    await post(`/api/v1/bots/${bot.id}/available`);
    expect((await sock.next("task_assigned")).payload.task_id).toBe(task.id);
    sock.close();
  });
});
