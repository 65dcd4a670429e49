/**
 * Rate limits: a token's requests per second (429 rate_limited with
 * Retry-After, nothing changed), tasks per minute per token and per
 * capability, bots never limited, and a capability's concurrency limit
 * honoured by dispatch.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, BotSocket, call, del, eventually, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

const put = (path: string, body: unknown) => call("PUT", path, body);

async function adminToken(name = "limited") {
  const res = await post("/api/v1/tokens", { kind: "admin", name });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}
const as = (token: string) => ({ token });
const countTasks = async (cap: string) =>
  (await env.DB.prepare("SELECT count(*) n FROM tasks WHERE capability = ?").bind(cap).first<{ n: number }>())!.n;

describe("rate limits", () => {
  it("a token's requests per second: the burst passes, then 429 rate_limited with Retry-After; other tokens and bots are not held back", async () => {
    const noisy = await adminToken("noisy");
    const set = await put(`/api/v1/rate-limits/tokens/${noisy.id}`, { requests_per_second: 1, burst: 3 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ scope: "token", subject: noisy.id, requests_per_second: 1, burst: 3, tasks_per_minute: null });

    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof get>> | null = null;
    for (let i = 0; i < 5; i++) {
      const res = await get("/api/v1/tasks?limit=1", as(noisy.token));
      statuses.push(res.status);
      if (res.status === 429) refused = res;
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    expectError(refused!, 429, "rate_limited");
    expect(Number(refused!.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(refused!.body.error.details).toMatchObject({ limit: "requests_per_second", requests_per_second: 1, burst: 3 });

    // Counted for the operators (GET /metrics).
    const metrics = await (
      await SELF.fetch("http://coordinator.test/metrics", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).text();
    expect(metrics).toMatch(/^clawbot_rate_limited_total\{limit="requests_per_second",scope="token"\} [1-9]/m);

    // A refused create makes nothing.
    const cap = uniqueCapability("rl");
    expectError(await post("/api/v1/tasks", { capability: cap }, as(noisy.token)), 429, "rate_limited");
    expect(await countTasks(cap)).toBe(0);

    // Meanwhile: another token, and a bot with its own token, go on.
    expect((await get("/api/v1/tasks?limit=1")).status).toBe(200);
    const bot = await registerBot([cap]);
    for (let i = 0; i < 5; i++) expect((await post(`/api/v1/bots/${bot.id}/heartbeat`, {}, as(bot.token))).status).toBe(200);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    sock.close();

    // Limits listed; removed, the token is free again.
    const listed = await get("/api/v1/rate-limits");
    expect(listed.body.limits).toContainEqual(expect.objectContaining({ scope: "token", subject: noisy.id }));
    expect(listed.body.defaults).toEqual({ requests_per_second: null, burst: null, tasks_per_minute: null });
    expect((await del(`/api/v1/rate-limits/tokens/${noisy.id}`)).body).toEqual({ id: noisy.id, deleted: true });
    expect((await get("/api/v1/tasks?limit=1", as(noisy.token))).status).toBe(200);
  });

  it("tasks per minute, per token and per capability: a batch counts every task, all or nothing", async () => {
    const client = await adminToken("batcher");
    await put(`/api/v1/rate-limits/tokens/${client.id}`, { tasks_per_minute: 5 });
    const cap = uniqueCapability("rlt");
    const batch = (n: number) => ({ tasks: Array.from({ length: n }, (_, i) => ({ capability: cap, payload: { i } })) });
    expect((await post("/api/v1/tasks/batch", batch(4), as(client.token))).status).toBe(201);
    const refused = await post("/api/v1/tasks/batch", batch(2), as(client.token));
    expectError(refused, 429, "rate_limited");
    expect(refused.body.error.details).toMatchObject({ limit: "tasks_per_minute", scope: "token", tasks_per_minute: 5 });
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(await countTasks(cap)).toBe(4);
    expect((await post("/api/v1/tasks", { capability: cap }, as(client.token))).status).toBe(201); // the fifth
    // More than a whole minute's worth in one request can never pass: a 400, not a 429.
    expectError(await post("/api/v1/tasks/batch", batch(6), as(client.token)), 400, "validation_failed");

    // A capability's limit holds for every client together.
    const busy = uniqueCapability("rlc");
    expect((await put(`/api/v1/rate-limits/capabilities/${busy}`, { tasks_per_minute: 2 })).status).toBe(200);
    expect((await post("/api/v1/tasks", { capability: busy })).status).toBe(201);
    expect((await post("/api/v1/jobs", { task: { capability: busy } })).status).toBe(202);
    const third = await post("/api/v1/tasks", { capability: busy });
    expectError(third, 429, "rate_limited");
    expect(third.body.error.details).toMatchObject({ scope: "capability", capability: busy });
    expect((await post("/api/v1/tasks", { capability: uniqueCapability("other") })).status).toBe(201);
    expect(await countTasks(busy)).toBe(2);
    await del(`/api/v1/rate-limits/capabilities/${busy}`);
    expect((await post("/api/v1/tasks", { capability: busy })).status).toBe(201);
  });

  it("max_running: dispatch starts at most N tasks of the capability at once; a finished one frees a slot", async () => {
    const cap = uniqueCapability("rlm");
    expect((await put(`/api/v1/rate-limits/capabilities/${cap}`, { max_running: 2 })).body).toMatchObject({ max_running: 2 });
    const socks: BotSocket[] = [];
    for (let i = 0; i < 4; i++) {
      const bot = await registerBot([cap]);
      const sock = await BotSocket.open(bot.id, bot.token);
      await sock.next("connected");
      socks.push(sock);
    }
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await post("/api/v1/tasks", { capability: cap, payload: { i } })).body.id);
    const statuses = async () => Promise.all(ids.map(async (id) => (await get(`/api/v1/tasks/${id}`)).body));
    await eventually(async () => (await statuses()).filter((t) => t.status === "assigned").length === 2, 5000, "two assigned");
    const waiting = (await statuses()).filter((t) => t.status === "pending");
    expect(waiting).toHaveLength(3);
    expect(waiting.every((t) => t.waiting_for === "max_running")).toBe(true);

    // One finishes: its bot takes the next (the count never exceeds two).
    const holders = (await statuses()).filter((t) => t.status === "assigned");
    const done = await post(`/api/v1/tasks/${holders[0].id}/complete`, { result: { ok: true } });
    expect(done.status).toBe(200);
    await eventually(
      async () => {
        const now = await statuses();
        return now.filter((t) => t.status === "completed").length === 1 && now.filter((t) => t.status === "assigned").length === 2;
      },
      5000,
      "the freed slot taken",
    );
    expect((await statuses()).filter((t) => t.status === "assigned" || t.status === "in_progress").length).toBe(2);

    // Raising the limit dispatches what waited.
    await put(`/api/v1/rate-limits/capabilities/${cap}`, { max_running: 10 });
    await eventually(async () => (await statuses()).filter((t) => t.status === "assigned").length === 4, 5000, "all four bots busy");
    for (const s of socks) s.close();
  });

  it("bad limits are a 400 naming the field and change nothing; an unknown token is a 404; bots cannot be limited", async () => {
    const t = await adminToken("bad");
    const before = await get("/api/v1/rate-limits");
    for (const [body, field] of [
      [{ requests_per_second: 0 }, "requests_per_second"],
      [{ requests_per_second: -1 }, "requests_per_second"],
      [{ burst: 1.5 }, "burst"],
      [{ tasks_per_minute: "many" }, "tasks_per_minute"],
      [{ max_running: 1 }, "max_running"], // not a token's
    ] as const) {
      const res = await put(`/api/v1/rate-limits/tokens/${t.id}`, body);
      expectError(res, 400, "validation_failed");
      expect(JSON.stringify(res.body.error.details)).toContain(field);
    }
    expectError(await put("/api/v1/rate-limits/capabilities/x", { max_running: -1 }), 400, "validation_failed");
    expectError(await put("/api/v1/rate-limits/capabilities/x", { requests_per_second: 1 }), 400, "validation_failed");
    expectError(await put("/api/v1/rate-limits/tokens/missing", { tasks_per_minute: 1 }), 404, "token_not_found");
    const bot = await registerBot([]);
    const botTokenId = (await get("/api/v1/tokens")).body.find((k: any) => k.bot_id === bot.id).id;
    expectError(await put(`/api/v1/rate-limits/tokens/${botTokenId}`, { requests_per_second: 1 }), 400, "validation_failed");
    expectError(await del(`/api/v1/rate-limits/tokens/${t.id}`), 404, "not_found");
    expect((await get("/api/v1/rate-limits")).body).toEqual(before.body);
  });
});
