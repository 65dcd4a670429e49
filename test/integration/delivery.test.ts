/**
 * Delivery across lost connections, as a bot sees it: a result that arrives
 * after its task was re-queued is still applied (once) if no other bot took
 * the task; a result for a task that moved on is refused with an ack the bot
 * can drop it on; every release the bot did not report itself is told to it.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, createTask, eventually, get, post, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

/** Pushes a re-queued task's backoff far out, so nobody takes it again while the test looks at it. */
async function holdBackoff(taskId: string): Promise<void> {
  await env.DB.prepare("UPDATE tasks SET run_after = ? WHERE id = ?")
    .bind(Date.now() + 3_600_000, taskId)
    .run();
}

const eventsOf = async (taskId: string) => (await get(`/api/v1/tasks/${taskId}/events`)).body as any[];

describe("delivery across lost connections", () => {
  it("a result sent after its task was re-queued is applied once, from the bot that held it", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const first = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: { n: 1 }, capability: cap });
    await first.next("task_assigned");
    first.close(); // the bot keeps working while its connection is down…
    await eventually(async () => (await taskStatus(task.id)).error_code === "bot_lost", 6000, "bot_lost re-queue");
    await holdBackoff(task.id);

    // …and comes back after the grace with its result.
    const back = await BotSocket.open(bot.id, bot.token);
    const ack = await back.complete(task.id, { done: true });
    expect(ack.payload).toEqual({ task_id: task.id, status: "completed", applied: true, ack_of: "task_complete" });
    const done = await taskStatus(task.id);
    expect(done).toMatchObject({ status: "completed", bot_id: bot.id, result: { done: true }, error: null, error_code: null, attempts: 1 });
    const completed = (await eventsOf(task.id)).filter((e) => e.type === "task_completed");
    expect(completed).toHaveLength(1);
    expect(completed[0].data).toMatchObject({ bot_id: bot.id, late: true });

    // Sent again (the ack was lost): answered, not applied twice.
    const again = await back.complete(task.id, { done: "twice" });
    expect(again.payload).toEqual({ task_id: task.id, status: "completed", applied: false, ack_of: "task_complete" });
    expect((await taskStatus(task.id)).result).toEqual({ done: true });

    // The bot is free: its next task comes to it as usual.
    const next = await createTask({ payload: { n: 2 }, capability: cap });
    expect((await back.next("task_assigned")).payload.task_id).toBe(next.id);
    back.close();
  });

  it("a late result for a task another bot now holds is refused, and the new holder's run stands", async () => {
    const cap = uniqueCapability();
    const lost = await registerBot([cap], "lost");
    const s1 = await BotSocket.open(lost.id, lost.token);
    const task = await createTask({ payload: {}, capability: cap });
    await s1.next("task_assigned");
    s1.close();
    await eventually(async () => (await taskStatus(task.id)).error_code === "bot_lost", 6000, "bot_lost re-queue");
    const rescuer = await registerBot([cap], "rescuer");
    const s2 = await BotSocket.open(rescuer.id, rescuer.token);
    expect((await s2.next("task_assigned", 5000)).payload).toMatchObject({ task_id: task.id, attempt: 2 });

    const back = await BotSocket.open(lost.id, lost.token);
    const refused = await back.complete(task.id, { from: "lost" });
    expect(refused.payload).toEqual({ task_id: task.id, status: "assigned", applied: false, ack_of: "task_complete" });
    expect(await taskStatus(task.id)).toMatchObject({ status: "assigned", bot_id: rescuer.id, result: null });

    expect((await s2.complete(task.id, { from: "rescuer" })).payload.applied).toBe(true);
    expect(await taskStatus(task.id)).toMatchObject({ status: "completed", bot_id: rescuer.id, result: { from: "rescuer" } });
    back.close();
    s2.close();
  });

  it("a late failure is answered but changes nothing: the re-queued task keeps its retry", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const first = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap });
    await first.next("task_assigned");
    first.close();
    await eventually(async () => (await taskStatus(task.id)).error_code === "bot_lost", 6000, "bot_lost re-queue");
    await holdBackoff(task.id);
    const before = await taskStatus(task.id);

    const back = await BotSocket.open(bot.id, bot.token);
    const ack = await back.complete(task.id, null, false);
    expect(ack.payload).toEqual({ task_id: task.id, status: "pending", applied: false, ack_of: "task_complete" });
    expect(await taskStatus(task.id)).toEqual(before);
    back.close();
  });

  it("an operator's fail tells the bot to stop, whether the task is retried or failed for good", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    for (const retry of [true, false]) {
      const task = await createTask({ payload: { retry }, capability: cap, max_attempts: 3 });
      await sock.next("task_assigned");
      const res = await post(`/api/v1/tasks/${task.id}/fail`, { error: "operator stopped it", retry });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe(retry ? "pending" : "failed");
      const told = await sock.next("task_cancelled");
      expect(told.payload.task_id).toBe(task.id);
      expect((await get(`/api/v1/bots/${bot.id}`)).body.current_task_id).not.toBe(task.id);
      if (retry) {
        // The re-queued task may come straight back to this (idle) bot: that is a new attempt, told as one.
        const again = await sock.next("task_assigned", 5000);
        expect(again.payload).toMatchObject({ task_id: task.id, attempt: 2 });
        await sock.complete(task.id);
      }
    }
    sock.close();
  });

  it("a bot's own failure report is not echoed back to it as a cancellation", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, max_attempts: 1 });
    await sock.next("task_assigned");
    const res = await post(`/api/v1/tasks/${task.id}/fail`, { error: "my own failure" }, { token: bot.token });
    expect(res.status).toBe(200);
    await sock.sync();
    expect(sock.log.filter((m) => m.type === "task_cancelled")).toEqual([]);
    sock.close();
  });
});
