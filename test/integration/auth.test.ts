import { describe, expect, it } from "vitest";
import { BotSocket, del, expectError, get, post, registerBot, taskHeldViaRest, uniqueCapability } from "../helpers/api";

describe("auth", () => {
  it("requires a token on the API and rejects bad ones, with a request_id", async () => {
    const none = expectError(await get("/api/v1/bots", { token: null }), 401, "unauthorized");
    expect(none.request_id).toBeTruthy();
    expectError(await get("/api/v1/bots", { token: "wrong" }), 401, "unauthorized");
    expectError(await get("/api/v1/bots", { token: null, headers: { Authorization: "Basic abc" } }), 401, "unauthorized");
    // ?token= is only for the WebSocket, never for REST.
    expectError(await get("/api/v1/bots?token=test-admin-token-0123456789abcdef", { token: null }), 401, "unauthorized");
  });

  it("health, root, openapi and docs are public", async () => {
    expect((await get("/health", { token: null })).status).toBe(200);
    expect((await get("/", { token: null })).status).toBe(200);
    expect((await get("/openapi.json", { token: null })).status).toBe(200);
  });

  it("a bot token acts only as its own bot", async () => {
    const me = await registerBot([uniqueCapability()], "me");
    const other = await registerBot([], "other");
    expect((await get(`/api/v1/bots/${me.id}`, { token: me.token })).status).toBe(200);
    expectError(await get(`/api/v1/bots/${other.id}`, { token: me.token }), 403, "forbidden");
    expectError(await post(`/api/v1/bots/${other.id}/heartbeat`, undefined, { token: me.token }), 403, "forbidden");
    expectError(await post(`/api/v1/bots/${other.id}/busy`, undefined, { token: me.token }), 403, "forbidden");
    expectError(await post("/api/v1/bots", { name: "x" }, { token: me.token }), 403, "forbidden");
    expectError(await post("/api/v1/tasks", { payload: {} }, { token: me.token }), 403, "forbidden");
    expectError(await del(`/api/v1/bots/${other.id}`, { token: me.token }), 403, "forbidden");
    expectError(await get("/api/v1/tasks", { token: me.token }), 403, "forbidden");
    // Cannot open another bot's socket, can open its own (header or ?token=).
    expect((await BotSocket.upgrade(other.id, me.token)).status).toBe(403);
    expect((await BotSocket.upgrade(other.id, null)).status).toBe(401);
    const sock = await BotSocket.open(me.id, me.token, "query");
    await sock.next("connected");
    sock.close();
  });

  it("a bot cannot complete a task it does not hold", async () => {
    const cap = uniqueCapability();
    const holder = await registerBot([cap], "holder");
    const thief = await registerBot([cap], "thief");
    const task = await taskHeldViaRest(holder, { payload: {}, capability: cap });
    expectError(await post(`/api/v1/tasks/${task.id}/complete`, { result: 1 }, { token: thief.token }), 403, "forbidden");
    expect((await get(`/api/v1/tasks/${task.id}`)).body.status).toBe("assigned");
  });

  it("a bot may not cancel even the task it holds: cancelling is an operator's act", async () => {
    const cap = uniqueCapability();
    const holder = await registerBot([cap], "holder");
    const task = await taskHeldViaRest(holder, { payload: {}, capability: cap });
    expectError(await post(`/api/v1/tasks/${task.id}/cancel`, { reason: "mine" }, { token: holder.token }), 403, "forbidden");
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "assigned", bot_id: holder.id });
    // What a bot may do to its own task still works.
    expect((await post(`/api/v1/tasks/${task.id}/start`, undefined, { token: holder.token })).status).toBe(200);
    expect((await post(`/api/v1/tasks/${task.id}/cancel`, { reason: "operator" })).body.status).toBe("cancelled");
  });

  it("admin creates, lists and revokes viewer and admin tokens; viewers only read", async () => {
    const created = await post("/api/v1/tokens", { kind: "viewer", name: "dashboard" });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^cbc_viewer_/);
    const viewer = created.body.token as string;
    expect((await get("/api/v1/bots", { token: viewer })).status).toBe(200);
    expectError(await post("/api/v1/bots", { name: "nope" }, { token: viewer }), 403, "forbidden");
    expectError(await post("/api/v1/tokens", { kind: "admin", name: "x" }, { token: viewer }), 403, "forbidden");
    const listed = (await get("/api/v1/tokens")).body;
    const row = listed.find((t: any) => t.id === created.body.id);
    expect(row).toMatchObject({ kind: "viewer", name: "dashboard", revoked_at: null });
    expect(JSON.stringify(listed)).not.toContain(viewer);
    expect((await del(`/api/v1/tokens/${created.body.id}`)).body).toEqual({ id: created.body.id, revoked: true });
    expectError(await get("/api/v1/bots", { token: viewer }), 401, "unauthorized");
    expectError(await del(`/api/v1/tokens/${created.body.id}`), 404, "token_not_found");

    const admin2 = (await post("/api/v1/tokens", { kind: "admin", name: "ci" })).body.token;
    expect((await post("/api/v1/bots", { name: "by-ci" }, { token: admin2 })).status).toBe(201);
    expectError(await post("/api/v1/tokens", { kind: "bot", name: "x" }), 400, "validation_failed");
  });
});
