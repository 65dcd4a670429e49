/**
 * The one-batch dispatch paths under load, against `wrangler dev`: 500 tasks
 * created 25 at a time while 50 bots (the shipped client, in process, over real
 * WebSockets) complete them, so creates that claim a bot race results that claim
 * the next task (a create that ignores a bot's current task fails it: tried). A task never goes to two bots, a bot never holds two tasks, a
 * completion is applied once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BotClient } from "../../bot/src/client";
import { echoHandler } from "../../bot/src/handlers";
import { type Harness, mapLimit, startHarness, until } from "../../scripts/lib/harness";
import type { ServerMessage } from "../../src/contracts/ws";
import { overlappingAssignments } from "../helpers/protocol";

const BOTS = 50;
const TASKS = 500;
const CAP = "race";

describe("dispatch race at 500 tasks / 50 bots", () => {
  let h: Harness;
  const bots: { id: string; client: BotClient; log: ServerMessage[] }[] = [];

  beforeAll(async () => {
    h = await startHarness({ LOG_LEVEL: "error" });
    await mapLimit(
      Array.from({ length: BOTS }, (_, i) => i),
      10,
      async (i) => {
        const reg = await h.api("POST", "/api/v1/bots", { name: `race-${i}`, capabilities: [CAP] });
        expect(reg.status).toBe(201);
        const log: ServerMessage[] = [];
        const client = new BotClient({
          url: h.coordinator.url,
          botId: reg.body.id,
          token: reg.body.token,
          handlers: { echo: echoHandler },
          log: () => {},
          onMessage: (m) => log.push(m),
        });
        await client.start();
        bots.push({ id: reg.body.id, client, log });
      },
    );
  }, 120_000);

  afterAll(async () => {
    for (const b of bots) b.client.stop();
    await h?.stop();
  });

  it("each task to one bot, each bot one task at a time, each completion applied once", async () => {
    const ids = await mapLimit(
      Array.from({ length: TASKS }, (_, n) => n),
      25,
      async (n) => {
        // Work that takes a while (300–700 ms: more than 50 bots do at the rate tasks arrive), so creates meet busy bots and waiting tasks.
        const res = await h.api("POST", "/api/v1/tasks", { payload: { n, delay_ms: 300 + (n % 5) * 100 }, capability: CAP });
        expect(res.status).toBe(201);
        return res.body.id as string;
      },
    );
    await until(
      "every task completed",
      120_000,
      async () => bots.reduce((sum, b) => sum + b.client.completed, 0) >= TASKS && (await countUnfinished()) === 0,
      500,
    );

    // Who was offered what, from the bots' own sockets.
    const holders = new Map<string, string[]>();
    for (const b of bots)
      for (const m of b.log)
        if (m.type === "task_assigned") holders.set(m.payload.task_id, [...(holders.get(m.payload.task_id) ?? []), b.id]);
    const sharedOrRepeated = [...holders.entries()].filter(([, who]) => who.length !== 1);
    expect(sharedOrRepeated, "tasks offered more than once").toEqual([]);
    expect(holders.size).toBe(TASKS);
    for (const b of bots) expect(overlappingAssignments(b.log), `bot ${b.id} held two tasks`).toEqual([]);
    expect(bots.reduce((sum, b) => sum + b.client.executions, 0)).toBe(TASKS);
    expect(bots.filter((b) => b.client.completed > 0).length, "work spread over the fleet").toBeGreaterThan(BOTS / 2);

    // What a user reads back: every task completed once, with its own result, by the bot that was offered it.
    const tasks = await mapLimit(ids, 20, async (id) => (await h.api("GET", `/api/v1/tasks/${id}`)).body);
    for (const t of tasks) {
      expect(t).toMatchObject({ status: "completed", attempts: 1, result: { echo: t.payload } });
      expect(holders.get(t.id)).toEqual([t.bot_id]);
    }
    const completions = await mapLimit(
      ids,
      20,
      async (id) =>
        (await h.api("GET", `/api/v1/tasks/${id}/events`)).body.filter((e: { type: string }) => e.type === "task_completed").length,
    );
    expect(completions.filter((n) => n !== 1)).toEqual([]);
    const idle = await h.api("GET", `/api/v1/bots?capability=${CAP}&status=online&limit=100`);
    expect(idle.body).toHaveLength(BOTS); // all free again: no bot left holding a finished task
  }, 300_000); // creates and completions (120 s at most) + reading 1,000 responses

  async function countUnfinished(): Promise<number> {
    let n = 0;
    for (const status of ["pending", "assigned", "in_progress"])
      n += (await h.api("GET", `/api/v1/tasks?limit=200&status=${status}`)).body.length;
    return n;
  }
});
