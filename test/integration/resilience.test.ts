import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, createTask, eventually, get, post, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

const stub = (botId: string) => env.BOT_SESSION.getByName(botId);

describe("timeouts, lost bots and the sweeper", () => {
  it("a task past timeout_seconds fails with code timeout within seconds (alarm) and its bot is freed", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 1, max_attempts: 1 });
    await sock.next("task_assigned");
    const cancelled = await sock.next("task_cancelled", 4000);
    expect(cancelled.payload).toEqual({ task_id: task.id, reason: "timeout" });
    const t = await taskStatus(task.id);
    expect(t).toMatchObject({ status: "failed", error_code: "timeout" });
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ status: "online", current_task_id: null });
    // A completion arriving after the timeout is answered but not applied.
    sock.send({ type: "task_complete", payload: { task_id: task.id, success: true, result: { late: true } } });
    expect((await sock.next("task_ack")).payload).toEqual({ task_id: task.id, status: "failed", applied: false });
    expect((await taskStatus(task.id)).result).toBeNull();
    sock.close();
  });

  it("a timed-out task with attempts left is re-queued with its attempt recorded", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 1, max_attempts: 2 });
    expect((await sock.next("task_assigned")).payload.attempt).toBe(1);
    await sock.next("task_cancelled", 4000);
    // Retried after backoff, to the same (now idle) bot, as attempt 2.
    const retry = await sock.next("task_assigned", 4000);
    expect(retry.payload).toMatchObject({ task_id: task.id, attempt: 2 });
    await sock.complete(task.id);
    const events = (await get(`/api/v1/tasks/${task.id}/events`)).body;
    const retryEvent = events.find((e: any) => e.type === "task_retry_scheduled");
    expect(retryEvent.data).toMatchObject({ error_code: "timeout", attempt: 1 });
    expect((await taskStatus(task.id)).status).toBe("completed");
    sock.close();
  });

  it("a bot that reconnects within the grace period is told its task again", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const first = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: { job: "long" }, capability: cap });
    await first.next("task_assigned");
    first.close();
    await eventually(async () => (await get(`/api/v1/bots/${bot.id}`)).body.connected === false, 3000, "disconnect seen");
    const second = await BotSocket.open(bot.id, bot.token);
    const again = await second.next("task_assigned");
    expect(again.payload).toMatchObject({ task_id: task.id, task_payload: { job: "long" } });
    expect((await taskStatus(task.id)).status).toBe("assigned");
    await second.complete(task.id);
    expect((await taskStatus(task.id)).attempts).toBe(1);
    second.close();
  });

  it("after the grace period a lost bot's task is re-queued (bot_lost) and another bot runs it", async () => {
    const cap = uniqueCapability();
    const lost = await registerBot([cap], "lost");
    const s1 = await BotSocket.open(lost.id, lost.token);
    const task = await createTask({ payload: {}, capability: cap });
    await s1.next("task_assigned");
    s1.close();
    await eventually(async () => (await taskStatus(task.id)).error_code === "bot_lost", 5000, "bot_lost requeue");
    expect((await get(`/api/v1/bots/${lost.id}`)).body).toMatchObject({ status: "offline", current_task_id: null });
    const rescuer = await registerBot([cap], "rescuer");
    const s2 = await BotSocket.open(rescuer.id, rescuer.token);
    expect((await s2.next("task_assigned", 5000)).payload.task_id).toBe(task.id);
    await s2.complete(task.id);
    s2.close();
  });

  it("the alarm handler is idempotent: running it again changes nothing", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 300 });
    await sock.next("task_assigned");
    // The deadline is minutes away: forcing the alarm must not fail the task, and must re-arm.
    await runDurableObjectAlarm(stub(bot.id));
    await runDurableObjectAlarm(stub(bot.id));
    expect((await taskStatus(task.id)).status).toBe("assigned");
    expect(await runDurableObjectAlarm(stub(bot.id))).toBe(true); // still armed for the deadline
    sock.close();
  });

  it("the cron sweeper fails overdue tasks an alarm missed, and dispatches due tasks", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 1, max_attempts: 1 });
    await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id });
    // Simulate a lost alarm: wipe the bot object's schedule, then age the assignment.
    await stub(bot.id).shutdown();
    await env.DB.prepare("UPDATE tasks SET assigned_at = assigned_at - 60000 WHERE id = ?").bind(task.id).run();
    const { createScheduledController, createExecutionContext, waitOnExecutionContext } = await import("cloudflare:test");
    const worker = (await import("../../src/index")).default;
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await taskStatus(task.id)).toMatchObject({ status: "failed", error_code: "timeout" });
    expect((await get(`/api/v1/bots/${bot.id}`)).body.current_task_id).toBeNull();
  });
});
