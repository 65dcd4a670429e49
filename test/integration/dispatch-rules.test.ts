/**
 * The dispatch rules the README states, each observed: least recently used bot
 * first, why a pending task waits (every `waiting_for` value), heartbeats that
 * cost nothing, and re-pushing an assignment. This file has its own database
 * (the Workers pool isolates storage per test file), so "no bot at all" is a
 * state it can reach.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, createTask, del, expectError, get, post, registerBot, taskStatus, uniqueCapability } from "../helpers/api";

const waitingFor = async (id: string) => (await taskStatus(id)).waiting_for;

describe("dispatch rules", () => {
  it("waiting_for says why a pending task waits: bot, capability:<name>, free_bot, retry_backoff, previous_step", async () => {
    // No connected bot at all.
    const anyBot = await createTask({ payload: {}, max_attempts: 2 });
    expect(await waitingFor(anyBot.id)).toBe("bot");
    // Bots exist, but none has the capability.
    const cap = uniqueCapability();
    const capTask = await createTask({ payload: {}, capability: cap });
    expect(await waitingFor(capTask.id)).toBe(`capability:${cap}`);
    // The capable bot connects and takes the first capable task; the next one waits for a free bot.
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const first = await sock.next("task_assigned");
    expect([anyBot.id, capTask.id]).toContain(first.payload.task_id);
    const second = await createTask({ payload: {}, capability: cap });
    expect(await waitingFor(second.id)).toBe("free_bot");
    // A failure with attempts left waits out its backoff.
    sock.send({ type: "task_complete", payload: { task_id: first.payload.task_id, success: false, error: "flaky" } });
    expect((await sock.next("task_ack")).payload.status).toBe("pending");
    const retried = await taskStatus(first.payload.task_id);
    expect(retried.waiting_for === "retry_backoff" || Date.parse(retried.run_after) <= Date.now()).toBe(true);
    // A workflow step waits for the one before it.
    const wf = (await post("/api/v1/workflows", { name: "w", capability: uniqueCapability(), task_payloads: [{}, {}] })).body;
    expect(await waitingFor(wf.task_ids[1])).toBe("previous_step");
    // Held tasks wait for nothing.
    const held = (await get(`/api/v1/bots/${bot.id}`)).body.current_task_id;
    expect(held === null || (await waitingFor(held)) === null).toBe(true);
    sock.close();
    // The task any bot may take must not wander into the next tests' bots.
    for (const id of [anyBot.id, capTask.id, second.id]) await del(`/api/v1/tasks/${id}`);
  });

  it("a failed attempt waits in retry_backoff until its run_after", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    // Backoff in the tests is 300-600 ms; hold the bot so the retry cannot be taken, then read before run_after.
    const task = await createTask({ payload: {}, capability: cap, max_attempts: 2 });
    await sock.next("task_assigned");
    await post(`/api/v1/bots/${bot.id}/busy`);
    sock.send({ type: "task_complete", payload: { task_id: task.id, success: false, error: "flaky" } });
    await sock.next("task_ack");
    const t = await taskStatus(task.id);
    expect(Date.parse(t.run_after)).toBeGreaterThan(Date.now());
    expect(t.waiting_for).toBe("retry_backoff");
    sock.close();
  });

  it("a result in, the next task out: the waiting task is claimed with the result, in priority order, acked first", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const first = await createTask({ payload: { n: 1 }, capability: cap });
    await sock.next("task_assigned");
    // Waiting while the bot is busy: a low-priority, a high-priority, and one for another capability.
    const low = await createTask({ payload: { n: 2 }, capability: cap, priority: 0 });
    const high = await createTask({ payload: { n: 3 }, capability: cap, priority: 5 });
    await createTask({ payload: { n: 4 }, capability: uniqueCapability("other") });
    await sock.complete(first.id);
    const next = await sock.next("task_assigned");
    expect(next.payload).toMatchObject({ task_id: high.id, task_payload: { n: 3 }, attempt: 1, capability: cap });
    const types = sock.log.map((m) => m.type);
    expect(types.lastIndexOf("task_ack")).toBeLessThan(types.lastIndexOf("task_assigned")); // the result was acked first
    // What a user reads back is what the batch wrote: the same row as any other assignment.
    const claimed = await taskStatus(high.id);
    expect(claimed).toMatchObject({ status: "assigned", bot_id: bot.id, attempts: 1, progress: null, started_at: null });
    expect(Date.parse(claimed.assigned_at)).toBeGreaterThan(0);
    expect((await get(`/api/v1/bots/${bot.id}`)).body).toMatchObject({ status: "busy", current_task_id: high.id });
    const assignedEvents = (await get(`/api/v1/tasks/${high.id}/events`)).body.filter((e: any) => e.type === "task_assigned");
    expect(assignedEvents).toHaveLength(1);
    expect(assignedEvents[0].data).toMatchObject({ bot_id: bot.id, attempt: 1, status: "assigned" });
    // The finished task's own history, written in the same statement as the next one's assignment: whole, in order.
    const history = (await get(`/api/v1/tasks/${first.id}/events`)).body.map((e: any) => [e.type, e.data.status ?? null]);
    expect(history).toEqual([
      ["task_created", null],
      ["task_assigned", "assigned"],
      ["task_started", "in_progress"],
      ["task_completed", "completed"],
    ]);
    // The next result brings the low-priority one; the other capability's task stays where it is.
    await sock.complete(high.id);
    expect((await sock.next("task_assigned")).payload.task_id).toBe(low.id);
    await sock.complete(low.id);
    await sock.sync();
    expect(sock.inbox.filter((m) => m.type === "task_assigned")).toEqual([]);
    sock.close();
  });

  it("dispatch offers work to the least recently used idle bot first", async () => {
    const cap = uniqueCapability();
    const bots = await Promise.all([registerBot([cap], "lru-a"), registerBot([cap], "lru-b"), registerBot([cap], "lru-c")]);
    const socks = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    await Promise.all(socks.map((s) => s.next("connected")));
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const task = await createTask({ payload: { i }, capability: cap });
      const holder = (await taskStatus(task.id)).bot_id as string;
      order.push(holder);
      const sock = socks[bots.findIndex((b) => b.id === holder)]!;
      expect((await sock.next("task_assigned")).payload.task_id).toBe(task.id);
      await sock.complete(task.id);
    }
    // Each bot once before any bot twice, then the same rotation again.
    expect(new Set(order.slice(0, 3)).size).toBe(3);
    expect(order.slice(3)).toEqual(order.slice(0, 3));
    for (const s of socks) s.close();
  });

  it("a bot that went from its result straight to its next task is ordered by that last assignment once idle", async () => {
    const cap = uniqueCapability();
    const bots = await Promise.all([registerBot([cap], "handoff-a"), registerBot([cap], "handoff-b")]);
    const socks = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    await Promise.all(socks.map((s) => s.next("connected")));
    const sockOf = (botId: string) => socks[bots.findIndex((b) => b.id === botId)]!;
    const first = await createTask({ payload: { n: 1 }, capability: cap });
    const early = sockOf((await taskStatus(first.id)).bot_id);
    await early.next("task_assigned");
    const second = await createTask({ payload: { n: 2 }, capability: cap });
    const lateId = (await taskStatus(second.id)).bot_id as string;
    const late = sockOf(lateId);
    await late.next("task_assigned");
    // Both busy: the third waits, and the early bot takes it with its first result (busy to busy).
    const third = await createTask({ payload: { n: 3 }, capability: cap });
    await early.complete(first.id);
    expect((await early.next("task_assigned")).payload.task_id).toBe(third.id);
    await early.complete(third.id);
    await late.complete(second.id);
    await early.sync();
    await late.sync();
    // The early bot was assigned last (the third task): the late one is now the least recently used.
    const fourth = await createTask({ payload: { n: 4 }, capability: cap });
    expect((await taskStatus(fourth.id)).bot_id).toBe(lateId);
    // The dispatch copy of each idle bot says what its row says.
    const rows = await env.DB.prepare(
      `SELECT b.id, b.last_assigned_at AS row_at, d.last_assigned_at AS copy_at, d.idle FROM bots b JOIN bot_dispatch d ON d.bot_id = b.id
       WHERE d.capability = ? AND b.current_task_id IS NULL`,
    )
      .bind(cap)
      .all<{ row_at: number; copy_at: number; idle: number }>();
    expect(rows.results).toHaveLength(1);
    for (const r of rows.results) expect([r.copy_at, r.idle]).toEqual([r.row_at, 1]);
    for (const s of socks) s.close();
  });

  it("heartbeat frames are answered by the runtime: the bot's object is not woken and D1 is not written", async () => {
    const bot = await registerBot([uniqueCapability()]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const before = await env.DB.prepare("SELECT updated_at, last_heartbeat_at FROM bots WHERE id = ?").bind(bot.id).first();
    const eventsBefore = await env.DB.prepare("SELECT count(*) AS n FROM events WHERE entity_id = ?").bind(bot.id).first<{ n: number }>();
    const sentAt = Date.now();
    for (let i = 0; i < 5; i++) sock.send('{"type":"heartbeat"}');
    for (let i = 0; i < 5; i++) await sock.next("heartbeat_ack");
    // The runtime stamps the socket when it auto-responds (the object's own handler would not).
    const answeredAt = await runInDurableObject(env.BOT_SESSION.getByName(bot.id), (_obj, state) =>
      state.getWebSocketAutoResponseTimestamp(state.getWebSockets()[0]!),
    );
    expect(answeredAt).not.toBeNull();
    expect(answeredAt!.getTime()).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(await env.DB.prepare("SELECT updated_at, last_heartbeat_at FROM bots WHERE id = ?").bind(bot.id).first()).toEqual(before);
    const eventsAfter = await env.DB.prepare("SELECT count(*) AS n FROM events WHERE entity_id = ?").bind(bot.id).first<{ n: number }>();
    expect(eventsAfter!.n).toBe(eventsBefore!.n);
    sock.close();
  });

  it("POST /ws/broadcast/task/{id} pushes an assigned task to its bot again; refuses what it cannot push", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = await createTask({ payload: { again: true }, capability: cap });
    await sock.next("task_assigned");
    const pushed = await post(`/api/v1/ws/broadcast/task/${task.id}`);
    expect(pushed.body).toEqual({ task_id: task.id, bot_id: bot.id, delivered: true });
    expect((await sock.next("task_assigned")).payload).toMatchObject({ task_id: task.id, task_payload: { again: true } });
    // A pending task has no bot to push to; a bot with no socket cannot be reached; an unknown task is 404.
    const pending = await createTask({ payload: {}, capability: uniqueCapability() });
    expectError(await post(`/api/v1/ws/broadcast/task/${pending.id}`), 409, "invalid_transition");
    const restBot = await registerBot([uniqueCapability()], "rest-only");
    await post(`/api/v1/bots/${restBot.id}/heartbeat`, undefined, { token: restBot.token });
    const restTask = await createTask({ payload: {}, capability: (await get(`/api/v1/bots/${restBot.id}`)).body.capabilities[0] });
    await post(`/api/v1/tasks/${restTask.id}/assign`, { bot_id: restBot.id });
    expectError(await post(`/api/v1/ws/broadcast/task/${restTask.id}`), 409, "bot_not_connected");
    expectError(await post("/api/v1/ws/broadcast/task/nope"), 404, "task_not_found");
    expectError(await post(`/api/v1/ws/broadcast/task/${task.id}`, undefined, { token: bot.token }), 403, "forbidden");
    await del(`/api/v1/tasks/${restTask.id}`);
    sock.close();
  });
});
