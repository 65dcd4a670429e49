/** `POST /tasks/batch`: all-or-nothing validation, one call for many tasks, idle bots pull them, idempotency per task and per batch. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips } from "../../src/db/client";
import { BotSocket, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

const storedWith = async (capability: string) =>
  (await env.DB.prepare("SELECT COUNT(*) AS n FROM tasks WHERE capability = ?").bind(capability).first<{ n: number }>())!.n;

describe("POST /tasks/batch", () => {
  it("twenty idle bots woken by one batch each take a different task at once, one round trip per claim", async () => {
    const cap = uniqueCapability("spread");
    const bots = await Promise.all(Array.from({ length: 20 }, () => registerBot([cap])));
    const sockets = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    await Promise.all(sockets.map((s) => s.next("connected")));
    // (First in the file: no bot of an earlier test is still closing, so the count is this test's alone.)
    // What a batch costs with no bot to wake (after a first one has woken whatever else was idle), in
    // statements: group commit may fold the claims into fewer round trips, but not into fewer statements.
    const nobody = { tasks: [{ payload: {}, capability: uniqueCapability("nobody") }] };
    await post("/api/v1/tasks/batch", nobody);
    let before = d1RoundTrips.statements;
    await post("/api/v1/tasks/batch", nobody);
    const batchAlone = d1RoundTrips.statements - before;
    before = d1RoundTrips.statements;
    const res = await post("/api/v1/tasks/batch", { tasks: Array.from({ length: 40 }, (_, n) => ({ payload: { n }, capability: cap })) });
    expect(res.status).toBe(201);
    // No bot completes anything: what each holds is what the batch's wake-up gave it (a bot that lost
    // every race for the same few candidates would hold nothing until the sweeper came by).
    const assigned = await Promise.all(sockets.map((s) => s.next("task_assigned", 5000)));
    const held = assigned.map((m) => m.payload.task_id as string);
    expect(new Set(held).size).toBe(20);
    const pending = await env.DB.prepare("SELECT COUNT(*) AS n FROM tasks WHERE capability = ? AND status = 'pending'")
      .bind(cap)
      .first<{ n: number }>();
    expect(pending!.n).toBe(20);
    // Beyond the batch itself, one claim per bot (its three statements: the task, answering with its row; the bot; the event): none
    // lost to another bot, none read first (the old pull: 20 reads and dozens of failed claims), and the
    // one-task batch of another capability woke none of these bots. A few more may be the metrics
    // store's once-a-second write landing in either window.
    const claimStatements = d1RoundTrips.statements - before - batchAlone;
    expect(claimStatements).toBeGreaterThanOrEqual(20 * 3);
    expect(claimStatements).toBeLessThanOrEqual(20 * 3 + 6);
    for (const s of sockets) s.close();
  });

  it("creates every task in request order, and idle bots pull them until all are done", async () => {
    const cap = uniqueCapability("batch");
    const bots = await Promise.all([1, 2, 3].map(() => registerBot([cap])));
    const sockets = await Promise.all(bots.map((b) => BotSocket.open(b.id, b.token)));
    const res = await post("/api/v1/tasks/batch", { tasks: Array.from({ length: 30 }, (_, n) => ({ payload: { n }, capability: cap })) });
    expect(res.status).toBe(201);
    expect(res.body.map((t: any) => t.payload.n)).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(new Set(res.body.map((t: any) => t.id)).size).toBe(30);

    // Each socket runs what it is given, one at a time, until nothing is left.
    const done = new Set<string>();
    await Promise.all(
      sockets.map(async (sock) => {
        while (done.size < 30) {
          const next = await sock.next("task_assigned", 3000).catch(() => null);
          if (!next) break;
          done.add(next.payload.task_id);
          await sock.complete(next.payload.task_id);
        }
      }),
    );
    expect(done.size).toBe(30);
    const listed = (await get(`/api/v1/tasks?limit=200&status=completed`)).body.filter((t: any) => t.capability === cap);
    expect(listed).toHaveLength(30);
    for (const s of sockets) s.close();
  });

  it("validates every task before storing any: one bad item is a 400 naming it, and nothing is stored", async () => {
    const cap = uniqueCapability("batch-bad");
    const tasks = Array.from({ length: 500 }, (_, n) => ({ payload: { n }, capability: cap, priority: n === 37 ? "high" : 0 }));
    const res = expectError(await post("/api/v1/tasks/batch", { tasks }), 400, "validation_failed");
    expect(res.details.issues.map((i: any) => i.path)).toEqual(["tasks.37.priority"]);
    expect(await storedWith(cap)).toBe(0);

    expectError(await post("/api/v1/tasks/batch", { tasks: [] }), 400, "validation_failed");
    const tooMany = Array.from({ length: 501 }, () => ({ payload: {}, capability: cap }));
    expectError(await post("/api/v1/tasks/batch", { tasks: tooMany }), 400, "validation_failed");
    const twice = [
      { payload: {}, capability: cap, idempotency_key: `k-${cap}` },
      { payload: { other: true }, capability: cap, idempotency_key: `k-${cap}` },
    ];
    const dup = expectError(await post("/api/v1/tasks/batch", { tasks: twice }), 400, "validation_failed");
    expect(dup.details.field).toBe("tasks.1.idempotency_key");
    expect(await storedWith(cap)).toBe(0);
    // A bot may not create tasks.
    const bot = await registerBot([cap]);
    expectError(await post("/api/v1/tasks/batch", { tasks: [{ payload: {} }] }, { token: bot.token }), 403, "forbidden");
  });

  it("the batch's idempotency key: the same batch returns the same tasks; a changed task is a 409 and nothing new", async () => {
    const cap = uniqueCapability("batch-key");
    const tasks = Array.from({ length: 5 }, (_, n) => ({ payload: { n }, capability: cap }));
    const first = await post("/api/v1/tasks/batch", { tasks }, { headers: { "Idempotency-Key": `b-${cap}` } });
    expect(first.status).toBe(201);
    const again = await post("/api/v1/tasks/batch", { tasks, idempotency_key: `b-${cap}` });
    expect(again.status).toBe(200);
    expect(again.body.map((t: any) => t.id)).toEqual(first.body.map((t: any) => t.id));
    const changed = tasks.map((t, n) => (n === 3 ? { ...t, payload: { n: 99 } } : t));
    const conflict = expectError(
      await post("/api/v1/tasks/batch", { tasks: changed, idempotency_key: `b-${cap}` }),
      409,
      "idempotency_conflict",
    );
    expect(conflict.details.index).toBe(3);
    expect(await storedWith(cap)).toBe(5);
  });

  it("per-task keys: tasks already made are returned, the rest are created; parallel batches make each task once, never a 500", async () => {
    const cap = uniqueCapability("batch-par");
    const single = await post("/api/v1/tasks", { payload: { n: 0 }, capability: cap, idempotency_key: `t-${cap}-0` });
    expect(single.status).toBe(201);
    const tasks = Array.from({ length: 4 }, (_, n) => ({ payload: { n }, capability: cap, idempotency_key: `t-${cap}-${n}` }));
    const mixed = await post("/api/v1/tasks/batch", { tasks });
    expect(mixed.status).toBe(201);
    expect(mixed.body[0].id).toBe(single.body.id);
    expect(await storedWith(cap)).toBe(4);

    const more = Array.from({ length: 20 }, (_, n) => ({ payload: { n }, capability: cap }));
    const parallel = await Promise.all(
      Array.from({ length: 6 }, () => post("/api/v1/tasks/batch", { tasks: more, idempotency_key: `p-${cap}` })),
    );
    expect(parallel.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    const ids = parallel.map((r) => JSON.stringify(r.body.map((t: any) => t.id)));
    expect(new Set(ids).size).toBe(1);
    expect(await storedWith(cap)).toBe(24);
  });
});
