/**
 * What a bot's object writes to its own storage on the hot path: a task run back to back costs no
 * storage write (the deadline entry only moves earlier, the fleet event is written behind once a second
 * and the health window a second after its first change, then at most once in ten), yet every task still times out at its own deadline and the health
 * window still reaches storage.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Schedule } from "../../src/core/schedule";
import type { AlarmSchedule } from "../../src/objects/alarm-schedule";
import type { BotSession } from "../../src/objects/bot-session";
import { BotSocket, createTask, eventually, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

const stub = (botId: string) => env.BOT_SESSION.getByName(botId);
const scheduleOf = (botId: string) => runInDurableObject(stub(botId), (obj) => (obj as unknown as { alarms: AlarmSchedule }).alarms.load());
const deadlineOf = (task: { assigned_at: string; timeout_seconds: number }) => Date.parse(task.assigned_at) + task.timeout_seconds * 1000;

/** The storage writes the bot's object has made so far (it counts them: objects/counted-storage.ts). */
const storageWritesOf = (botId: string) => runInDurableObject(stub(botId), (obj: BotSession) => obj.storageWrites.count);

/** A connected bot of its own capability, holding a first task with this timeout. */
async function botWithTask(timeoutSeconds: number) {
  const cap = uniqueCapability("store");
  const bot = await registerBot([cap]);
  const sock = await BotSocket.open(bot.id, bot.token);
  const first = await createTask({ capability: cap, payload: {}, timeout_seconds: timeoutSeconds });
  expect((await sock.next("task_assigned")).payload.task_id).toBe(first.id);
  return { cap, bot, sock, first };
}

describe("a bot object's storage on the hot path", () => {
  it("tasks run back to back cost no storage write each, and the alarm still rings no later than the task's deadline", async () => {
    const { cap, bot, sock, first } = await botWithTask(300);
    const tasks = 12;
    for (let i = 0; i < tasks; i++) await createTask({ capability: cap, payload: { i }, timeout_seconds: 300 });
    const writesBefore = await storageWritesOf(bot.id);
    let held = first.id as string;
    for (let i = 0; i < tasks; i++) {
      await sock.complete(held);
      held = (await sock.next("task_assigned")).payload.task_id;
    }
    // At most the write-behind entries of one second (the fleet event's, the health window's) and an alarm for
    // them; the code before this wrote the deadline, the health window and the fleet event every task (≥ 36 here).
    expect((await storageWritesOf(bot.id)) - writesBefore).toBeLessThanOrEqual(4);
    const current = await taskStatus(held);
    expect(current.status).toBe("assigned");
    const schedule: Schedule = await scheduleOf(bot.id);
    expect(schedule.deadline).toBeLessThanOrEqual(deadlineOf(current));
    const armedAtMs = await runInDurableObject(stub(bot.id), (_obj, state) => state.storage.getAlarm());
    expect(armedAtMs).not.toBeNull();
    expect(armedAtMs!).toBeLessThanOrEqual(schedule.deadline!);
    sock.close();
  });

  it("a deadline entry kept from an earlier task rings, finds the current task not due, and re-arms for its deadline", async () => {
    const { cap, bot, sock, first } = await botWithTask(300);
    const second = await createTask({ capability: cap, payload: {}, timeout_seconds: 300 });
    await sock.complete(first.id);
    expect((await sock.next("task_assigned")).payload.task_id).toBe(second.id);
    // The entry rings now (as the earlier task's would, at its time).
    await runInDurableObject(stub(bot.id), async (obj, state) => {
      await (obj as unknown as { alarms: AlarmSchedule }).alarms.set("deadline", Date.now() - 1);
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(stub(bot.id))).toBe(true);
    const current = await taskStatus(second.id);
    expect(current).toMatchObject({ status: "assigned", attempts: 1 });
    expect((await scheduleOf(bot.id)).deadline).toBe(deadlineOf(current));
    await sock.sync();
    expect(sock.log.filter((m) => m.type === "task_cancelled")).toHaveLength(0);
    sock.close();
  });

  it("a task with a shorter timeout than the one before it times out at its own deadline", async () => {
    const { cap, sock, first: long } = await botWithTask(300);
    const short = await createTask({ capability: cap, payload: {}, timeout_seconds: 1, max_attempts: 1 });
    await sock.complete(long.id);
    expect((await sock.next("task_assigned")).payload.task_id).toBe(short.id);
    expect((await sock.next("task_cancelled", 6000)).payload).toEqual({ task_id: short.id, reason: "timeout" });
    expect(await taskStatus(short.id)).toMatchObject({ status: "failed", error_code: "timeout" });
    sock.close();
  });

  it("the health window a result changed in memory reaches the object's storage within a second or so", async () => {
    const { bot, sock, first: task } = await botWithTask(300);
    await sock.complete(task.id);
    const stored = await eventually(
      () =>
        runInDurableObject(stub(bot.id), async (_obj, state) => {
          const history = await state.storage.get<{ attempts: unknown[] }>("health_history");
          return history && history.attempts.length > 0 ? history : null;
        }),
      5000,
      "the health window in storage",
    );
    expect(stored.attempts).toHaveLength(1);
    expect(stored.attempts[0]).toMatchObject({ outcome: "completed" });
    sock.close();
  });

  it("after a save, the window's next change waits out the ten-second save interval, then reaches storage", async () => {
    const { cap, bot, sock, first } = await botWithTask(300);
    const second = await createTask({ capability: cap, payload: {}, timeout_seconds: 300 });
    await sock.complete(first.id);
    await eventually(() => storedAttempts(bot.id, 1), 5000, "the first save");
    const firstSeenAtMs = Date.now();
    expect((await sock.next("task_assigned")).payload.task_id).toBe(second.id);
    await sock.complete(second.id);
    const stored = await eventually(() => storedAttempts(bot.id, 2), 15_000, "the second save");
    // The first save came at most one poll (50 ms) before it was seen; the second no sooner than 10 s after it.
    expect(Date.now() - firstSeenAtMs).toBeGreaterThanOrEqual(9_900);
    expect(stored.attempts.map((a) => a.outcome)).toEqual(["completed", "completed"]);
    sock.close();
  }, 30_000);
});

/** The health window in the bot object's storage, once it holds `n` attempts (else null). */
const storedAttempts = (botId: string, n: number) =>
  runInDurableObject(stub(botId), async (_obj, state) => {
    const history = await state.storage.get<{ attempts: { outcome: string }[] }>("health_history");
    return history && history.attempts.length >= n ? history : null;
  });
