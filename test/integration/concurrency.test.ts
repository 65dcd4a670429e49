import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, eventually, get, overlappingAssignments, post, registerBot, uniqueCapability } from "../helpers/api";

describe("dispatch races", () => {
  it("many tasks created at once over many bots: each task runs exactly once, no bot is offered two at once", async () => {
    const cap = uniqueCapability("race");
    const bots = await Promise.all(Array.from({ length: 8 }, (_, i) => registerBot([cap], `racer-${i}`)));
    const socks = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    const received = new Map<string, number>();
    const total = () => [...received.values()].reduce((a, b) => a + b, 0);

    // Each simulated bot works one task at a time: take an assignment, complete it, wait for the ack.
    const workers = socks.map(async (sock, i) => {
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline && total() < 40) {
        let msg: any;
        try {
          msg = await sock.next("task_assigned", 500);
        } catch {
          continue;
        }
        received.set(msg.payload.task_id, (received.get(msg.payload.task_id) ?? 0) + 1);
        await sock.complete(msg.payload.task_id, { by: i });
      }
    });
    const created = await Promise.all(Array.from({ length: 40 }, (_, n) => post("/api/v1/tasks", { payload: { n }, capability: cap })));
    expect(created.map((r) => r.status)).toEqual(Array(40).fill(201));
    await Promise.all(workers);

    // Read from each socket's full log: an assignment before the previous task's ack is a second task held.
    expect(socks.flatMap((s) => overlappingAssignments(s.log))).toEqual([]);
    expect(received.size).toBe(40);
    expect([...received.values()].every((n) => n === 1)).toBe(true);
    const ids = created.map((r) => r.body.id);
    const rows = await env.DB.prepare(
      `SELECT t.id, t.status, (SELECT count(*) FROM events e WHERE e.entity_id = t.id AND e.type = 'task_completed') AS completions
       FROM tasks t WHERE t.id IN (SELECT value FROM json_each(?))`,
    )
      .bind(JSON.stringify(ids))
      .all<{ id: string; status: string; completions: number }>();
    expect(rows.results).toHaveLength(40);
    expect(rows.results.filter((r) => r.status !== "completed" || r.completions !== 1)).toEqual([]);
    for (const s of socks) s.close();
  });

  it("parallel manual assigns of one task to different bots: exactly one wins", async () => {
    const cap = uniqueCapability("assign-race");
    const bots = await Promise.all(Array.from({ length: 5 }, (_, i) => registerBot([cap], `a-${i}`)));
    await Promise.all(bots.map((b) => post(`/api/v1/bots/${b.id}/heartbeat`, undefined, { token: b.token })));
    const task = (await post("/api/v1/tasks", { payload: {}, capability: cap })).body;
    const results = await Promise.all(bots.map((b) => post(`/api/v1/tasks/${task.id}/assign`, { bot_id: b.id })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(4);
    const winner = results.find((r) => r.status === 200)!.body.bot_id;
    const busy = await Promise.all(bots.map(async (b) => (await get(`/api/v1/bots/${b.id}`)).body.current_task_id));
    expect(busy.filter((t) => t === task.id)).toHaveLength(1);
    expect(busy[bots.findIndex((b) => b.id === winner)]).toBe(task.id);
  });

  it("parallel assigns of two tasks to one bot: the bot takes only one", async () => {
    const cap = uniqueCapability("bot-race");
    const bot = await registerBot([cap]);
    await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
    const [t1, t2] = await Promise.all([
      post("/api/v1/tasks", { payload: {}, capability: cap }),
      post("/api/v1/tasks", { payload: {}, capability: cap }),
    ]);
    const results = await Promise.all([t1, t2].map((t) => post(`/api/v1/tasks/${t.body.id}/assign`, { bot_id: bot.id })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    await eventually(async () => (await get(`/api/v1/bots/${bot.id}`)).body.status === "busy", 2000, "busy");
  });

  it("racing start and complete on one task record each transition once (guards are per write, not per version)", async () => {
    const cap = uniqueCapability("guard");
    const bot = await registerBot([cap]);
    await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
    for (let round = 0; round < 5; round++) {
      const task = (await post("/api/v1/tasks", { payload: { round }, capability: cap })).body;
      expect((await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id })).status).toBe(200);
      await Promise.all([post(`/api/v1/tasks/${task.id}/start`), post(`/api/v1/tasks/${task.id}/complete`, { result: round })]);
      const events = (await get(`/api/v1/tasks/${task.id}/events`)).body.map((e: any) => e.type);
      expect(events.filter((t: string) => t === "task_completed")).toHaveLength(1);
      expect(events.filter((t: string) => t === "task_started")).toHaveLength(1);
      expect((await get(`/api/v1/bots/${bot.id}`)).body.current_task_id).toBeNull();
    }
  });
});
