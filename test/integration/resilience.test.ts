import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips } from "../../src/db/client";
import type { AlarmSchedule } from "../../src/objects/alarm-schedule";
import { createCtx } from "../../src/services/context";
import { dispatchDueTasks } from "../../src/services/dispatch";
import { SOCKET_CHECKS_PER_SWEEP, sweep } from "../../src/services/sweeper";
import {
  ADMIN_TOKEN,
  BotSocket,
  createTask,
  eventually,
  get,
  post,
  registerBot,
  taskHeldViaRest,
  taskStatus,
  uniqueCapability,
} from "../helpers/api";

const stub = (botId: string) => env.BOT_SESSION.getByName(botId);
/** A due pending task written straight to D1, without the create route's dispatch (as after a crash between insert and offer). */
async function insertUnofferedTask(capability: string): Promise<string> {
  const id = crypto.randomUUID();
  const now = Date.now();
  await env.DB.prepare(
    "INSERT INTO tasks (id, payload, capability, status, ready, run_after, created_at, updated_at) VALUES (?, '{}', ?, 'pending', 1, 0, ?, ?)",
  )
    .bind(id, capability, now, now)
    .run();
  return id;
}

/** The reconnect grace these tests run with (vitest.config.ts). */
const graceMs = Number((env as unknown as { BOT_RECONNECT_GRACE_S: string }).BOT_RECONNECT_GRACE_S) * 1000;

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
    expect((await sock.next("task_ack")).payload).toEqual({ task_id: task.id, status: "failed", applied: false, ack_of: "task_complete" });
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

  it("a bot that reconnects within the grace period is told its task again (same attempt, no re-queue)", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const first = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: { job: "long" }, capability: cap });
    await first.next("task_assigned");
    const closedAt = Date.now();
    first.close();
    await eventually(async () => (await get(`/api/v1/bots/${bot.id}`)).body.connected === false, 3000, "disconnect seen");
    const second = await BotSocket.open(bot.id, bot.token);
    const again = await second.next("task_assigned");
    // The test only means something if it came back inside the grace made for the tests.
    expect(Date.now() - closedAt).toBeLessThan(graceMs);
    expect(again.payload).toMatchObject({ task_id: task.id, task_payload: { job: "long" }, attempt: 1 });
    expect((await taskStatus(task.id)).status).toBe("assigned");
    await second.complete(task.id);
    expect((await taskStatus(task.id)).attempts).toBe(1);
    const events = (await get(`/api/v1/tasks/${task.id}/events`)).body.map((e: any) => e.type);
    expect(events).not.toContain("task_retry_scheduled");
    second.close();
  });

  it("an upgrade for an unknown bot is a 404 envelope and leaves nothing behind; a reconnecting idle bot takes waiting work at once", async () => {
    const res = await BotSocket.upgrade("no-such-bot", ADMIN_TOKEN);
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error).toMatchObject({ code: "bot_not_found" });
    const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE entity_id = 'no-such-bot'").all<{ n: number }>();
    expect(results[0]!.n).toBe(0);

    // The reconnect reads waiting work in the same round trip as the connect (with the capabilities kept from last time).
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    (await BotSocket.open(bot.id, bot.token)).close();
    await eventually(async () => (await get(`/api/v1/bots/${bot.id}`)).body.connected === false, 3000, "disconnect seen");
    const waiting = await createTask({ payload: { waited: true }, capability: cap });
    expect((await taskStatus(waiting.id)).waiting_for).toBe(`capability:${cap}`);
    const back = await BotSocket.open(bot.id, bot.token);
    expect((await back.next("task_assigned")).payload).toMatchObject({ task_id: waiting.id, task_payload: { waited: true } });
    const connects = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE entity_id = ? AND type = 'bot_connected'")
      .bind(bot.id)
      .all<{ n: number }>();
    expect(connects.results[0]!.n).toBe(2);
    back.close();
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

  it("the alarm is idempotent: a deadline alarm delivered twice times the task out once", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 300, max_attempts: 2 });
    await sock.next("task_assigned");
    // The deadline has passed (as D1 sees it) and its alarm entry is due.
    await env.DB.prepare("UPDATE tasks SET assigned_at = assigned_at - 600000 WHERE id = ?").bind(task.id).run();
    const deadlineDue = () =>
      runInDurableObject(stub(bot.id), async (obj, state) => {
        // Through the object's own schedule (it keeps what it stored in memory), then the alarm pushed
        // out so that only runDurableObjectAlarm below runs it.
        await (obj as unknown as { alarms: AlarmSchedule }).alarms.set("deadline", Date.now() - 1);
        await state.storage.setAlarm(Date.now() + 60_000);
      });
    await deadlineDue();
    expect(await runDurableObjectAlarm(stub(bot.id))).toBe(true);
    expect((await sock.next("task_cancelled")).payload).toEqual({ task_id: task.id, reason: "timeout" });
    // Attempt 2 reaches the same (idle) bot after the backoff; then the same deadline alarm arrives again.
    expect((await sock.next("task_assigned", 5000)).payload).toMatchObject({ task_id: task.id, attempt: 2 });
    await deadlineDue();
    await runDurableObjectAlarm(stub(bot.id));
    expect(await taskStatus(task.id)).toMatchObject({ status: "assigned", attempts: 2 });
    const types = (await get(`/api/v1/tasks/${task.id}/events`)).body.map((e: any) => e.type);
    expect(types.filter((t: string) => t === "task_retry_scheduled" || t === "task_failed")).toEqual(["task_retry_scheduled"]);
    expect(sock.log.filter((m) => m.type === "task_cancelled")).toHaveLength(1);
    sock.close();
  });

  it("an alarm with nothing due changes nothing and stays armed for the deadline", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: {}, capability: cap, timeout_seconds: 300 });
    await sock.next("task_assigned");
    await runDurableObjectAlarm(stub(bot.id));
    expect((await taskStatus(task.id)).status).toBe("assigned");
    expect(await runDurableObjectAlarm(stub(bot.id))).toBe(true); // re-armed for the deadline each time
    expect((await taskStatus(task.id)).status).toBe("assigned");
    sock.close();
  });
});

describe("the cron sweeper", () => {
  const runSweep = () => sweep(createCtx(env));

  it("fails overdue tasks an alarm missed and frees their bot", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const task = await taskHeldViaRest(bot, { payload: {}, capability: cap, timeout_seconds: 1, max_attempts: 1 });
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

  it("dispatches a due task nobody offered to an idle connected bot", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const id = await insertUnofferedTask(cap);
    expect(sock.log.some((m) => m.type === "task_assigned")).toBe(false);
    const report = await runSweep();
    expect((await sock.next("task_assigned", 3000)).payload.task_id).toBe(id);
    expect(await taskStatus(id)).toMatchObject({ status: "assigned", bot_id: bot.id });
    expect(report.failures).toBe(0);
    sock.close();
  });

  it("due work that no free connected bot can take costs the sweep one query, not a dispatch attempt per task", async () => {
    const nobody = uniqueCapability("nobody");
    for (let i = 0; i < 20; i++) await insertUnofferedTask(nobody);
    const before = d1RoundTrips.count;
    expect(await dispatchDueTasks(createCtx(env), 100)).toBe(0);
    expect(d1RoundTrips.count - before).toBe(1);
    // A bot that can take them makes them due work again.
    const bot = await registerBot([nobody]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected"); // it pulls one at once; the sweep finds the rest waiting for it to be free
    await sock.next("task_assigned");
    expect((await get(`/api/v1/tasks?status=pending&limit=200`)).body.filter((t: any) => t.capability === nobody)).toHaveLength(19);
    sock.close();
  });

  it("corrects a bot D1 thinks is connected but whose socket died with the runtime", async () => {
    const bot = await registerBot([uniqueCapability()]);
    await env.DB.prepare("UPDATE bots SET connected = 1, disconnected_at = NULL WHERE id = ?").bind(bot.id).run();
    expect((await get(`/api/v1/bots/${bot.id}`)).body.status).toBe("online");
    // The sweeper checks a page of connected bots per run, going round: within a few runs it reaches this one.
    for (let run = 0; run < 5 && (await get(`/api/v1/bots/${bot.id}`)).body.connected; run++) {
      expect((await runSweep()).botsChecked).toBeGreaterThanOrEqual(1);
    }
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ connected: false, status: "offline" });
  });

  it("checks a bounded page of connected bots per run, going round the whole fleet; live sockets stay as they are", async () => {
    // 250 bots D1 thinks are connected but whose sockets died, and one that is really there.
    const now = Date.now();
    const ghosts = Array.from({ length: 250 }, (_, i) => `ghost-${String(i).padStart(3, "0")}-${crypto.randomUUID()}`);
    await env.DB.prepare(
      `INSERT INTO bots (id, name, capabilities, metadata, connected, created_at, updated_at)
       SELECT value, 'ghost', '[]', '{}', 1, ?, ? FROM json_each(?)`,
    )
      .bind(now, now, JSON.stringify(ghosts))
      .run();
    const live = await registerBot([uniqueCapability()], "live");
    const sock = await BotSocket.open(live.id, live.token);
    await sock.next("connected");
    const stillConnected = async () =>
      (await env.DB.prepare("SELECT count(*) AS n FROM bots WHERE connected = 1 AND name = 'ghost'").first<{ n: number }>())!.n;
    const checked: number[] = [];
    for (let run = 0; run < 6 && (await stillConnected()) > 0; run++) checked.push((await runSweep()).botsChecked);
    expect(await stillConnected()).toBe(0);
    expect(Math.max(...checked)).toBeLessThanOrEqual(SOCKET_CHECKS_PER_SWEEP);
    expect(checked.length).toBeGreaterThanOrEqual(3); // 250 ghosts take three pages of 100
    expect((await get(`/api/v1/bots/${live.id}`)).body).toMatchObject({ connected: true, status: "online" });
    sock.close();
  });

  it("a new task given to a bot whose socket is gone is handed back (attempt not counted) and goes to a bot that is there", async () => {
    const cap = uniqueCapability();
    const ghost = await registerBot([cap], "ghost");
    // D1 thinks the ghost is connected (its socket died with the runtime), and it is the least recently used.
    await env.DB.prepare("UPDATE bots SET connected = 1, disconnected_at = NULL, last_assigned_at = 0 WHERE id = ?").bind(ghost.id).run();
    const live = await registerBot([cap], "live");
    const sock = await BotSocket.open(live.id, live.token);
    await env.DB.prepare("UPDATE bots SET last_assigned_at = ? WHERE id = ?").bind(Date.now(), live.id).run();

    const created = await post("/api/v1/tasks", { payload: { n: 1 }, capability: cap });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "assigned", bot_id: live.id, attempts: 1 });
    expect((await sock.next("task_assigned")).payload).toMatchObject({ task_id: created.body.id, attempt: 1 });
    const types = (await get(`/api/v1/tasks/${created.body.id}/events`)).body.map((e: any) => e.type);
    expect(types).toEqual(["task_created", "task_assigned", "task_unassigned", "task_assigned"]);
    expect((await get(`/api/v1/bots/${ghost.id}`)).body).toMatchObject({ connected: false, status: "offline", current_task_id: null });
    await sock.complete(created.body.id);
    sock.close();
  });

  it("re-queues the task of a bot that never came back, and the task of a deleted bot's row", async () => {
    const cap = uniqueCapability();
    const gone = await registerBot([cap], "gone");
    const lost = await taskHeldViaRest(gone, { payload: {}, capability: cap });
    // Its last sign of life is long past the grace, and its object never noticed (no socket, no alarm).
    await stub(gone.id).shutdown();
    await env.DB.prepare("UPDATE bots SET last_heartbeat_at = ?, disconnected_at = ? WHERE id = ?")
      .bind(Date.now() - 600_000, Date.now() - 600_000, gone.id)
      .run();
    const orphan = await createTask({ payload: {}, capability: uniqueCapability() });
    await env.DB.prepare("UPDATE tasks SET status = 'assigned', bot_id = ?, assigned_at = ?, attempts = 1 WHERE id = ?")
      .bind(`no-such-bot-${crypto.randomUUID()}`, Date.now(), orphan.id)
      .run();
    const report = await runSweep();
    expect(report.lostBotTasks).toBeGreaterThanOrEqual(2);
    expect(await taskStatus(lost.id)).toMatchObject({ status: "pending", error_code: "bot_lost", bot_id: null });
    expect(await taskStatus(orphan.id)).toMatchObject({ status: "pending", error_code: "bot_lost", bot_id: null });
    expect((await get(`/api/v1/bots/${gone.id}`)).body.current_task_id).toBeNull();
  });

  it("a phase that fails is logged and counted, and the rest of the sweep still runs", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    // A held task whose stored payload is not JSON: listing the lost-bot tasks fails on it.
    const broken = crypto.randomUUID();
    const now = Date.now();
    await env.DB.prepare(
      "INSERT INTO tasks (id, payload, status, bot_id, assigned_at, attempts, created_at, updated_at) VALUES (?, '{not json', 'assigned', 'no-such-bot', ?, 1, ?, ?)",
    )
      .bind(broken, now, now, now)
      .run();
    const due = await insertUnofferedTask(cap);
    try {
      const report = await runSweep();
      expect(report.failures).toBeGreaterThanOrEqual(1);
      // The phases after the failing one ran: the due task reached the idle bot.
      expect((await sock.next("task_assigned", 3000)).payload.task_id).toBe(due);
    } finally {
      await env.DB.prepare("DELETE FROM tasks WHERE id = ?").bind(broken).run();
      sock.close();
    }
  });
});
