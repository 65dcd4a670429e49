import { describe, expect, it } from "vitest";
import { BotSocket, del, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

describe("bots", () => {
  it("registers a bot with seed 001's shape and returns its token once", async () => {
    const res = await post("/api/v1/bots", {
      name: "build-bot-01",
      capabilities: ["python", "docker", "python"],
      metadata: { version: "1.0" },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: "build-bot-01",
      capabilities: ["python", "docker"],
      status: "offline",
      metadata: { version: "1.0" },
    });
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.token).toMatch(/^cbc_bot_/);
    expect(res.body.created_at).toMatch(/Z$/);
    const fetched = await get(`/api/v1/bots/${res.body.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.token).toBeUndefined();
    expect(fetched.body.status).toBe("offline");
  });

  it("rejects bad registrations with a 400 envelope and creates nothing", async () => {
    const before = (await get("/api/v1/bots?limit=200")).body.length;
    expectError(await post("/api/v1/bots", { capabilities: ["x"] }), 400, "validation_failed");
    expectError(await post("/api/v1/bots", { name: "x", capabilities: "python" }), 400, "validation_failed");
    expectError(await post("/api/v1/bots", { name: "" }), 400, "validation_failed");
    expectError(await post("/api/v1/bots", undefined, { rawBody: "{not json" }), 400, "invalid_json");
    expect((await get("/api/v1/bots?limit=200")).body.length).toBe(before);
  });

  it("heartbeat makes a socketless bot online; busy/available hold and release it", async () => {
    const bot = await registerBot(["hb"]);
    const hb = await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
    expect(hb.status).toBe(200);
    expect(hb.body.status).toBe("online");
    expect(hb.body.last_heartbeat_at).not.toBeNull();

    const busy = await post(`/api/v1/bots/${bot.id}/busy`, undefined, { token: bot.token });
    expect(busy.body).toMatchObject({ status: "busy", held: true });
    const avail = await get("/api/v1/bots/available?capability=hb");
    expect(avail.body.map((b: any) => b.id)).not.toContain(bot.id);

    const released = await post(`/api/v1/bots/${bot.id}/available`, undefined, { token: bot.token });
    expect(released.body).toMatchObject({ status: "online", held: false });
    const avail2 = await get("/api/v1/bots/available?capability=hb");
    expect(avail2.body.map((b: any) => b.id)).toContain(bot.id);
  });

  it("lists with status/capability filters and paginates with Link + X-Next-Cursor", async () => {
    const cap = uniqueCapability();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await registerBot([cap], `page-${i}`)).id);
    const first = await get(`/api/v1/bots?capability=${cap}&limit=2`);
    expect(first.status).toBe(200);
    expect(first.body).toHaveLength(2);
    const cursor = first.headers.get("X-Next-Cursor");
    expect(cursor).toBeTruthy();
    expect(first.headers.get("Link")).toContain('rel="next"');
    const second = await get(`/api/v1/bots?capability=${cap}&limit=2&cursor=${cursor}`);
    const third = await get(`/api/v1/bots?capability=${cap}&limit=2&cursor=${second.headers.get("X-Next-Cursor")}`);
    const seen = [...first.body, ...second.body, ...third.body].map((b: any) => b.id);
    // The pages, joined, are exactly the whole list: same order, nothing twice, nothing missing.
    const whole = (await get(`/api/v1/bots?capability=${cap}&limit=200`)).body;
    expect(seen).toEqual(whole.map((b: any) => b.id));
    expect([...seen].sort()).toEqual([...ids].sort());
    // Newest first; bots created in the same millisecond are ordered by id, descending.
    const key = (b: any) => `${b.created_at}|${b.id}`;
    expect(whole.map(key)).toEqual(whole.map(key).sort().reverse());
    expect(third.headers.get("X-Next-Cursor")).toBeNull();
    const offline = await get(`/api/v1/bots?capability=${cap}&status=offline`);
    expect(offline.body).toHaveLength(5);
    expect((await get(`/api/v1/bots?capability=${cap}&status=online`)).body).toHaveLength(0);
    expectError(await get("/api/v1/bots?status=sleeping"), 400, "validation_failed");
    expectError(await get("/api/v1/bots?cursor=%%%"), 400, "validation_failed");
  });

  it("a connected bot is online; closing the socket makes it offline", async () => {
    const bot = await registerBot([uniqueCapability()]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const hello = await sock.next("connected");
    expect(hello.payload.bot_id).toBe(bot.id);
    expect((await get(`/api/v1/bots/${bot.id}`)).body.status).toBe("online");
    const conns = await get("/api/v1/ws/connections");
    expect(conns.body.connections.map((c: any) => c.bot_id)).toContain(bot.id);
    sock.close();
    const { eventually } = await import("../helpers/api");
    await eventually(async () => (await get(`/api/v1/bots/${bot.id}`)).body.status === "offline", 5000, "bot offline");
  });

  it("deletes a bot, revokes its token and 404s afterwards", async () => {
    const bot = await registerBot();
    expect((await del(`/api/v1/bots/${bot.id}`)).body).toEqual({ id: bot.id, deleted: true });
    expectError(await get(`/api/v1/bots/${bot.id}`), 404, "bot_not_found");
    expectError(await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token }), 401, "unauthorized");
    expectError(await del(`/api/v1/bots/${bot.id}`), 404, "bot_not_found");
  });
});
