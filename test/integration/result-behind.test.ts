/**
 * A bot's result written behind (objects/kept-result.ts): an idle bot's result is kept in its object's
 * storage and acknowledged before D1 has it, yet a read by id right after the acknowledgement sees it
 * completed, a cancel right after it is refused, and a result kept but not written (a restart) reaches
 * D1 once. Without the group-commit writer (`D1_GROUP_COMMIT=off`) nothing is written behind; every
 * read and refusal here holds either way.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { runBatch } from "../../src/db/batch";
import { getDb } from "../../src/db/client";
import type { BotSession } from "../../src/objects/bot-session";
import { createCtx, forgetWriterLoad } from "../../src/services/context";
import { BotSocket, createTask, eventually, get, post, registerBot, uniqueCapability } from "../helpers/api";

const writesBehind = env.D1_GROUP_COMMIT?.trim().toLowerCase() !== "off";
const stub = (botId: string) => env.BOT_SESSION.getByName(botId);
const keptOf = (botId: string) =>
  runInDurableObject(stub(botId), (_obj, state) => state.storage.get<{ taskId: string; result: unknown }>("kept_result"));
const eventTypes = async (taskId: string) => ((await get(`/api/v1/tasks/${taskId}/events`)).body as { type: string }[]).map((e) => e.type);

/**
 * An idle connected bot of its own capability holding one task (nothing else queued for it), with the
 * writer quiet: two of the setup's writes overlapping at the writer (the connect's and the create's)
 * would read as load, and for a second no result would be written behind.
 */
async function idleBotWithTask() {
  const cap = uniqueCapability("behind");
  const bot = await registerBot([cap]);
  const sock = await BotSocket.open(bot.id, bot.token);
  await sock.next("connected");
  const task = await createTask({ capability: cap, payload: {} });
  expect((await sock.next("task_assigned")).payload.task_id).toBe(task.id);
  forgetWriterLoad();
  return { cap, bot, sock, task };
}

describe("a result written behind", () => {
  it("is acknowledged completed, and a read by id right after the acknowledgement shows it completed", async () => {
    const { bot, sock, task } = await idleBotWithTask();
    const ack = await sock.complete(task.id, { answer: 42 });
    expect(ack.payload).toMatchObject({ task_id: task.id, status: "completed", applied: true });
    const read = await get(`/api/v1/tasks/${task.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ status: "completed", result: { answer: 42 }, bot_id: bot.id });
    expect(await eventTypes(task.id)).toEqual(["task_created", "task_assigned", "task_started", "task_completed"]);
    if (writesBehind) expect(await keptOf(bot.id)).toEqual({ taskId: task.id, result: { answer: 42 } });
    sock.close();
  });

  it("sends a reader back to read again when the write landed between its read and its question", async () => {
    // The race a read by id can meet: it reads `assigned`, the kept result's write lands, then it asks
    // the holder, who has nothing on its way any more. The holder still says "read again" for that task.
    const { bot, sock, task } = await idleBotWithTask();
    await sock.complete(task.id, { raced: 1 });
    await stub(bot.id).settleResult(); // the write has landed
    expect(await stub(bot.id).settleResult(task.id)).toBe(writesBehind); // (off: D1 had it before the ack)
    expect(await stub(bot.id).settleResult(crypto.randomUUID())).toBe(false);
    sock.close();
  });

  it("stands against a cancel sent right after the acknowledgement: the cancel is refused, nothing changes", async () => {
    const { sock, task } = await idleBotWithTask();
    await sock.complete(task.id, { done: true });
    const cancel = await post(`/api/v1/tasks/${task.id}/cancel`, { reason: "too late" });
    expect(cancel.status).toBe(409);
    expect(cancel.body.error.code).toBe("invalid_transition");
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "completed", result: { done: true } });
    expect(await eventTypes(task.id)).not.toContain("task_cancelled");
    sock.close();
  });

  it("kept but never written (as after a restart), reaches D1 once when the task is read", async () => {
    const { bot, sock, task } = await idleBotWithTask();
    // The object's storage holds a result D1 has not seen, and the instance has not read it (a fresh start).
    await runInDurableObject(stub(bot.id), async (obj: BotSession, state) => {
      // Forgotten first: the health window's save, due a second after the first result, forgets an applied
      // entry in memory by deleting the key, and could delete this one if it came during the put.
      (obj as unknown as { kept: { forget(): void } }).kept.forget();
      await state.storage.put("kept_result", { taskId: task.id, result: { kept: 1 } });
    });
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "completed", result: { kept: 1 } });
    // Asked again (another read, the bot's own late copy of the result): applied once, never twice.
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "completed", result: { kept: 1 } });
    const late = await sock.complete(task.id, { kept: 2 });
    expect(late.payload).toMatchObject({ task_id: task.id, status: "completed", applied: false });
    expect((await eventTypes(task.id)).filter((t) => t === "task_completed")).toHaveLength(1);
    sock.close();
  });
  it("kept after D1 has it (as after a restart before the entry was deleted), changes nothing when the task is read", async () => {
    const { bot, sock, task } = await idleBotWithTask();
    await sock.complete(task.id, { first: 1 });
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "completed", result: { first: 1 } });
    // A fresh instance reads back an entry D1 already has (its result applied, its deletion not yet made).
    await runInDurableObject(stub(bot.id), async (obj: BotSession, state) => {
      (obj as unknown as { kept: { forget(): void } }).kept.forget(); // first: see the test above
      await state.storage.put("kept_result", { taskId: task.id, result: { first: 1 } });
      expect(await obj.settleResult()).toBe(true);
      expect(await obj.settleResult()).toBe(false);
    });
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "completed", result: { first: 1 } });
    expect((await eventTypes(task.id)).filter((t) => t === "task_completed")).toHaveLength(1);
    sock.close();
  });
  it("is not written behind while the writer is under load: D1 has it before the bot hears of it", async () => {
    const { bot, sock, task } = await idleBotWithTask();
    // Other writers' batches in flight at the writer, as this isolate sees it (a burst of creates).
    const db = createCtx(env).db;
    await Promise.all(Array.from({ length: 10 }, () => runBatch(db, [sql`SELECT 1`])));
    try {
      expect((await sock.complete(task.id, { busy: 1 })).payload).toMatchObject({ status: "completed", applied: true });
      const row = await env.DB.prepare("SELECT status FROM tasks WHERE id = ?").bind(task.id).first<{ status: string }>();
      expect(row?.status).toBe("completed"); // straight from D1, no settling
      expect(await keptOf(bot.id)).toBeUndefined();
    } finally {
      forgetWriterLoad();
      sock.close();
    }
  });
  it("whose D1 write fails is kept and retried by alarm, and reaches D1 when the entry rings", async () => {
    const { bot, sock, task } = await idleBotWithTask();
    const d1Status = async () =>
      (await env.DB.prepare("SELECT status, result FROM tasks WHERE id = ?").bind(task.id).first<{ status: string; result: string }>())!;
    type Internals = {
      kept: { forget(): void };
      work: { settleKept(ctx: unknown): Promise<boolean> };
      alarms: { set(key: string, atMs: number): Promise<void> };
      scoped(): Record<string, unknown>;
    };
    await runInDurableObject(stub(bot.id), async (obj: BotSession, state) => {
      const inner = obj as unknown as Internals;
      inner.kept.forget(); // first: see above
      await state.storage.put("kept_result", { taskId: task.id, result: { retried: 1 } });
      // D1 refuses every write (an outage): the entry stays, and a retry is scheduled.
      const down = { ...inner.scoped(), db: getDb(env.DB, { batch: () => Promise.reject(new Error("D1 is down")) }) };
      expect(await inner.work.settleKept(down)).toBe(true);
      const schedule = await state.storage.get<Record<string, number>>("schedule");
      expect(schedule?.kept_retry).toBeGreaterThan(Date.now());
      expect(await state.storage.get("kept_result")).toEqual({ taskId: task.id, result: { retried: 1 } });
      expect((await d1Status()).status).toBe("assigned");
      await inner.alarms.set("kept_retry", Date.now()); // due now, instead of in five seconds: the alarm rings
    });
    // Straight from D1, no read by id to settle it: the alarm wrote it.
    const row = await eventually(
      async () => {
        const r = await d1Status();
        return r.status === "completed" && r;
      },
      5000,
      "the retried result in D1",
    );
    expect(JSON.parse(row.result)).toEqual({ retried: 1 });
    sock.close();
  });
});
