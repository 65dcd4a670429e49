/**
 * What the Status Center's fleet table and throughput chart read: each bot's current task and finished
 * attempts (REST and the fleet stream, coalesced to one event a second per bot, the last state always
 * delivered), and tasks finished per minute.
 */
import { describe, expect, it } from "vitest";
import { BotSocket, eventually, expectError, get, post, registerBot, StreamSocket, uniqueCapability } from "../helpers/api";

const totals = (body: any) =>
  body.minutes.reduce((sum: any, m: any) => ({ completed: sum.completed + m.completed, failed: sum.failed + m.failed }), {
    completed: 0,
    failed: 0,
  });

describe("fleet activity", () => {
  it("a bot's finished attempts and success rate: completions and failures count (a timeout too), a cancel in neither", async () => {
    const cap = uniqueCapability("activity");
    const bot = await registerBot([cap], "activity-bot");
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ tasks_completed: 0, tasks_failed: 0, success_rate: null });
    const fleet = await StreamSocket.open("/api/v1/ws/fleet");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const botEvents = () => fleet.log.filter((m) => m.type === "bot" && m.data.bot_id === bot.id);

    // Completed.
    const first = (await post("/api/v1/tasks", { capability: cap })).body;
    expect((await sock.next("task_assigned")).payload.task_id).toBe(first.id);
    await fleet.waitFor(
      "the bot busy with its task",
      (m) => m.type === "bot" && m.data.bot_id === bot.id && m.data.current_task_id === first.id,
    );
    expect(botEvents().find((m) => m.data.current_task_id === first.id).data.status).toBe("busy");
    await sock.complete(first.id);

    // Failed by the bot, no attempts left.
    const second = (await post("/api/v1/tasks", { capability: cap, max_attempts: 1 })).body;
    expect((await sock.next("task_assigned")).payload.task_id).toBe(second.id);
    expect((await sock.complete(second.id, null, false)).payload.status).toBe("failed");

    // Cancelled while held: neither.
    const third = (await post("/api/v1/tasks", { capability: cap })).body;
    expect((await sock.next("task_assigned")).payload.task_id).toBe(third.id);
    await post(`/api/v1/tasks/${third.id}/cancel`, { reason: "not needed" });
    await sock.next("task_cancelled");

    // Timed out: a failure of the bot's.
    const fourth = (await post("/api/v1/tasks", { capability: cap, max_attempts: 1, timeout_seconds: 1 })).body;
    expect((await sock.next("task_assigned")).payload.task_id).toBe(fourth.id);
    await sock.next("task_cancelled", 5000);
    await eventually(async () => (await get(`/api/v1/tasks/${fourth.id}`)).body.status === "failed", 5000, "the timeout");

    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({
      tasks_completed: 1,
      tasks_failed: 2,
      success_rate: 0.333,
      current_task_id: null,
      status: "online",
    });
    // The stream's last word on the bot is the same (changes within a second are merged, never lost).
    await eventually(
      async () => {
        const last = botEvents().at(-1)?.data;
        return last?.tasks_completed === 1 && last.tasks_failed === 2 && last.current_task_id === null && last.status === "online";
      },
      5000,
      `the fleet stream's last bot event to show 1 completed / 2 failed; got ${JSON.stringify(botEvents().map((m) => m.data))}`,
    );
    // Coalesced: fewer events than the eight changes of current task.
    expect(botEvents().length).toBeLessThan(1 + 8);
    sock.close();
    fleet.close();
  }, 20_000);

  it("tasks finished per minute: every minute of the window listed, completions and final failures counted", async () => {
    const before = await get("/api/v1/stats/throughput?minutes=30");
    expect(before.status).toBe(200);
    expect(before.body.interval_seconds).toBe(60);
    expect(before.body.minutes).toHaveLength(30);
    const minuteStarts = before.body.minutes.map((m: any) => Date.parse(m.at));
    expect(minuteStarts.every((t: number, i: number) => t % 60_000 === 0 && (i === 0 || t - minuteStarts[i - 1] === 60_000))).toBe(true);
    expect(Date.now() - minuteStarts.at(-1)).toBeLessThan(60_000);

    const cap = uniqueCapability("throughput");
    const bot = await registerBot([cap], "throughput-bot");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    for (const success of [true, true, false]) {
      const task = (await post("/api/v1/tasks", { capability: cap, max_attempts: 1 })).body;
      await sock.next("task_assigned");
      await sock.complete(task.id, { ok: success }, success);
    }
    // A retried attempt is no final failure.
    const retried = (await post("/api/v1/tasks", { capability: cap, max_attempts: 2 })).body;
    await sock.next("task_assigned");
    expect((await sock.complete(retried.id, null, false)).payload.status).toBe("pending");
    sock.close();

    const after = await get("/api/v1/stats/throughput?minutes=30");
    const [was, now] = [totals(before.body), totals(after.body)];
    expect({ completed: now.completed - was.completed, failed: now.failed - was.failed }).toEqual({ completed: 2, failed: 1 });
    expect((await get("/api/v1/stats/throughput?minutes=1")).body.minutes).toHaveLength(1);
    expect((await get("/api/v1/stats/throughput")).body.minutes).toHaveLength(30);
  });

  it("refuses a bad window with a 400", async () => {
    for (const q of ["minutes=0", "minutes=1441", "minutes=abc", "minutes=1.5"]) {
      expectError(await get(`/api/v1/stats/throughput?${q}`), 400, "validation_failed");
    }
    expectError(await get("/api/v1/stats/throughput", { token: null }), 401, "unauthorized");
  });
});
