/**
 * D1 round trips on a bot's own path, counted (src/db/client.ts's counter):
 * a quick task's start rides in its result's write; a start on its own is
 * written at once, so reads by id never lag.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips, getDb } from "../../src/db/client";
import { taskViewQuery } from "../../src/db/tasks";
import type { BotSession } from "../../src/objects/bot-session";
import { BotSocket, get, post, registerBot, uniqueCapability } from "../helpers/api";

async function heldTask() {
  const cap = uniqueCapability("hot");
  const bot = await registerBot([cap]);
  const sock = await BotSocket.open(bot.id, bot.token);
  await sock.next("connected");
  const task = (await post("/api/v1/tasks", { capability: cap, payload: { n: 1 } })).body;
  await sock.next("task_assigned");
  return { sock, botId: bot.id as string, taskId: task.id as string };
}

/**
 * The bot's frames as its object receives them when they arrive together: both handed to the
 * object before it applies the first (over a real socket that depends on how the runtime splits
 * the reads; here it is certain).
 */
const deliverTogether = (botId: string, frames: unknown[]) =>
  runInDurableObject(env.BOT_SESSION.getByName(botId), async (obj: BotSession, state) => {
    const ws = state.getWebSockets()[0]!;
    await Promise.all(frames.map((f) => obj.webSocketMessage(ws, JSON.stringify(f))));
  });

/** Waits for a result the bot's object acknowledged to reach D1 (a result may be written behind: kept-result.ts). */
const resultWritten = (botId: string) => env.BOT_SESSION.getByName(botId).settleResult();

const eventTypes = async (taskId: string) => (await get(`/api/v1/tasks/${taskId}/events`)).body.map((e: any) => e.type);

describe("the hot path's D1 round trips", () => {
  it("a start sent with its result right behind it: one round trip for both, the start still recorded", async () => {
    const { sock, botId, taskId } = await heldTask();
    const before = d1RoundTrips.count;
    await deliverTogether(botId, [
      { type: "task_started", payload: { task_id: taskId } },
      { type: "task_complete", payload: { task_id: taskId, success: true, result: { ok: 1 } } },
    ]);
    const acks = [await sock.next("task_ack"), await sock.next("task_ack")];
    expect(acks.map((a) => [a.payload.ack_of, a.payload.status, a.payload.applied])).toEqual([
      ["task_started", "in_progress", true],
      ["task_complete", "completed", true],
    ]);
    expect(d1RoundTrips.count - before).toBe(1);
    const task = (await get(`/api/v1/tasks/${taskId}`)).body;
    expect(task).toMatchObject({ status: "completed", result: { ok: 1 } });
    expect(task.started_at).not.toBeNull();
    expect(Date.parse(task.started_at)).toBeLessThanOrEqual(Date.parse(task.completed_at));
    expect(await eventTypes(taskId)).toEqual(["task_created", "task_assigned", "task_started", "task_completed"]);
    sock.close();
  });

  it("a start on its own is written at once (a read by id says in_progress after its ack), then its result", async () => {
    const { sock, botId, taskId } = await heldTask();
    let before = d1RoundTrips.count;
    sock.send({ type: "task_started", payload: { task_id: taskId } });
    expect((await sock.next("task_ack")).payload).toMatchObject({ ack_of: "task_started", status: "in_progress" });
    expect(d1RoundTrips.count - before).toBe(1);
    expect((await get(`/api/v1/tasks/${taskId}`)).body.status).toBe("in_progress");
    before = d1RoundTrips.count;
    await sock.complete(taskId, { ok: 2 });
    await resultWritten(botId);
    expect(d1RoundTrips.count - before).toBe(1);
    expect(await eventTypes(taskId)).toEqual(["task_created", "task_assigned", "task_started", "task_completed"]);
    sock.close();
  });

  it("a start followed by a failure keeps its own write (the failure does not record a start)", async () => {
    const { sock, botId, taskId } = await heldTask();
    await deliverTogether(botId, [
      { type: "task_started", payload: { task_id: taskId } },
      { type: "task_complete", payload: { task_id: taskId, success: false, error: "no" } },
    ]);
    await sock.next("task_ack");
    await sock.next("task_ack");
    expect(await eventTypes(taskId)).toEqual(["task_created", "task_assigned", "task_started", "task_retry_scheduled"]);
    sock.close();
  });
});

/**
 * Rows already in the tasks table, added in one statement (setup, not the path under test): `status`
 * finished tasks a long-running coordinator keeps, or a backlog of pending ones no bot here can run.
 */
async function fillTasks(count: number, status: "completed" | "pending", capability: string) {
  const nowMs = Date.now();
  await env.DB.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
     INSERT INTO tasks (id, payload, capability, status, created_at, updated_at, completed_at, write_id)
     SELECT ?2 || '-' || i, '{}', ?3, ?4, ?5, ?5, CASE WHEN ?4 = 'completed' THEN ?5 END, lower(hex(randomblob(16))) FROM n`,
  )
    .bind(count, `${status}-${crypto.randomUUID()}`, capability, status, nowMs)
    .run();
}

/** Registered bots that are not connected (a big fleet, most of it offline), in one statement (setup). */
async function fillOfflineBots(count: number) {
  const nowMs = Date.now();
  await env.DB.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
     INSERT INTO bots (id, name, capabilities, created_at, updated_at) SELECT ?2 || '-' || i, 'offline', '[]', ?3, ?3 FROM n`,
  )
    .bind(count, `offline-${crypto.randomUUID()}`, nowMs)
    .run();
}

/** Rows D1 read for one result (its write claims the bot's next task in the same batch). */
async function rowsReadByAResult(sock: BotSocket, botId: string, cap: string): Promise<number> {
  const task = (await post("/api/v1/tasks", { capability: cap, payload: {} })).body;
  await sock.next("task_assigned");
  const before = d1RoundTrips.rowsRead;
  expect((await sock.complete(task.id)).payload.status).toBe("completed");
  await resultWritten(botId);
  return d1RoundTrips.rowsRead - before;
}

describe("the hot path's D1 rows read (what production D1 bills, and what a statement really costs)", () => {
  /** Rows read by a result (with its next claim) of a fresh bot, before and after `grow` adds rows elsewhere. */
  async function resultRowsAround(grow: () => Promise<void>) {
    const cap = uniqueCapability("rows");
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const small = await rowsReadByAResult(sock, bot.id, cap);
    await grow();
    const large = await rowsReadByAResult(sock, bot.id, cap);
    sock.close();
    return { small, large };
  }

  it("a result and the next claim read the same few rows however many finished tasks the table holds", async () => {
    const { small, large } = await resultRowsAround(() => fillTasks(3000, "completed", uniqueCapability("done")));
    // A statement that scans tasks (a lookup by an unindexed column) reads every row: 3,000 more per scan.
    expect(small).toBeGreaterThan(0);
    expect(large - small).toBeLessThan(50);
  });

  it("a claim reads the same few rows however long another capability's backlog is", async () => {
    // Pending work this bot cannot run (nobody here has the capability): the claim must not walk it.
    const { small, large } = await resultRowsAround(() => fillTasks(3000, "pending", uniqueCapability("backlog")));
    expect(large - small).toBeLessThan(50);
  });

  it("a reconnect reads the same few rows however long another capability's backlog is", async () => {
    // A connect checks, in its one batch, whether anything is due that the bot could take: that check
    // must seek the bot's own capabilities, not walk every pending task.
    const cap = uniqueCapability("rows");
    const bot = await registerBot([cap]);
    const reconnectRowsRead = async () => {
      const before = d1RoundTrips.rowsRead;
      const sock = await BotSocket.open(bot.id, bot.token);
      await sock.next("connected");
      await sock.sync();
      const rows = d1RoundTrips.rowsRead - before;
      sock.close();
      return rows;
    };
    await reconnectRowsRead(); // the first connect: its capabilities are not known to its object yet
    const small = await reconnectRowsRead();
    await fillTasks(3000, "pending", uniqueCapability("backlog"));
    const large = await reconnectRowsRead();
    expect(small).toBeGreaterThan(0);
    expect(large - small).toBeLessThan(50);
  });

  it("a create that gives its task to a bot reads the same few rows however many bots are registered", async () => {
    // Rows read to give a task to a bot registered now, with whatever the bots table holds before it.
    const createRowsRead = async () => {
      const cap = uniqueCapability("rows");
      const bot = await registerBot([cap]);
      const sock = await BotSocket.open(bot.id, bot.token);
      await sock.next("connected");
      const before = d1RoundTrips.rowsRead;
      const task = (await post("/api/v1/tasks", { capability: cap, payload: {} })).body;
      const rows = d1RoundTrips.rowsRead - before;
      expect((await sock.next("task_assigned")).payload.task_id).toBe(task.id);
      await sock.complete(task.id);
      sock.close();
      return rows;
    };
    const small = await createRowsRead();
    // A big fleet, mostly offline, registered before the bot that gets the task (a lookup of the bot by
    // anything but an index walks them all).
    await fillOfflineBots(3000);
    const large = await createRowsRead();
    expect(small).toBeGreaterThan(0);
    expect(large - small).toBeLessThan(50);
  });

  it("a create reads the same few rows however many idle bots of other capabilities are ahead in line", async () => {
    // A mixed fleet: bots of a capability with no work sit idle at the front of the dispatch order (least
    // recently used first), ahead of the busier capability's bots. Rows in one statement (setup); they are
    // never offered anything here (no task has their capability) and are deleted at the end.
    const cap = uniqueCapability("rows");
    const other = uniqueCapability("idle");
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const createRowsRead = async () => {
      const before = d1RoundTrips.rowsRead;
      const task = (await post("/api/v1/tasks", { capability: cap, payload: {} })).body;
      const rows = d1RoundTrips.rowsRead - before;
      expect(task.bot_id).toBe(bot.id);
      await sock.next("task_assigned");
      await sock.complete(task.id);
      return rows;
    };
    const small = await createRowsRead();
    const nowMs = Date.now();
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
       INSERT INTO bots (id, name, capabilities, connected, last_assigned_at, created_at, updated_at)
       SELECT ?1 || '-' || i, 'idle-other', json_array(?1), 1, 0, ?2, ?2 FROM n`,
    )
      .bind(other, nowMs)
      .run();
    const large = await createRowsRead();
    await env.DB.prepare("DELETE FROM bots WHERE name = 'idle-other'").run();
    sock.close();
    expect(small).toBeGreaterThan(0);
    expect(large - small).toBeLessThan(50);
  });

  it("why a pending task waits (waiting_for) reads the same few rows however many bots of other capabilities are connected", async () => {
    const cap = uniqueCapability("nobody");
    const task = (await post("/api/v1/tasks", { capability: cap, payload: {} })).body;
    // The read by id's own statement, run for its D1 meta (a `get` carries none); the API reads say the same.
    const readRows = async () => {
      expect((await get(`/api/v1/tasks/${task.id}`)).body.waiting_for).toBe(`capability:${cap}`);
      const result = (await taskViewQuery(getDb(env.DB), task.id, Date.now()).run()) as unknown as { meta: { rows_read: number } };
      return result.meta.rows_read;
    };
    const small = await readRows();
    const other = uniqueCapability("busy");
    const nowMs = Date.now();
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
       INSERT INTO bots (id, name, capabilities, connected, current_task_id, created_at, updated_at)
       SELECT ?1 || '-' || i, 'busy-other', json_array(?1), 1, 'elsewhere-' || i, ?2, ?2 FROM n`,
    )
      .bind(other, nowMs)
      .run();
    const large = await readRows();
    await env.DB.prepare("DELETE FROM bots WHERE name = 'busy-other'").run();
    expect(large - small).toBeLessThan(50);
  });

  it("a create reads the one idle bot it gives its task to, not every idle bot that could take it", async () => {
    const cap = uniqueCapability("rows");
    const connect = async (count: number) => {
      const socks = await Promise.all(
        Array.from({ length: count }, async () => {
          const b = await registerBot([cap]);
          const sock = await BotSocket.open(b.id, b.token);
          await sock.next("connected");
          return { id: b.id as string, sock };
        }),
      );
      return socks;
    };
    // Rows read by a create whose task one of the idle bots takes (it finishes it, so all are idle again).
    const createRowsRead = async (socks: { id: string; sock: BotSocket }[]) => {
      const before = d1RoundTrips.rowsRead;
      const task = (await post("/api/v1/tasks", { capability: cap, payload: {} })).body;
      const rows = d1RoundTrips.rowsRead - before;
      const holder = socks.find((s) => s.id === task.bot_id)!.sock;
      await holder.next("task_assigned");
      await holder.complete(task.id);
      return rows;
    };
    const socks = await connect(1);
    const oneIdle = await createRowsRead(socks);
    socks.push(...(await connect(19)));
    const twentyIdle = await createRowsRead(socks);
    // Walked in dispatch order (healthier, then least recently used) down bots_dispatch_idx, the first
    // that can run it is the one; a pass over all twenty (and a sort) reads two rows more for each.
    expect(twentyIdle - oneIdle).toBeLessThan(10);
    for (const s of socks) s.sock.close();
  });
});
