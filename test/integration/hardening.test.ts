/** Hostile input and lost authority: each case broke the coordinator once; each test failed before its fix. */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../../src/contracts/json-depth";
import { sha256Hex } from "../../src/crypto/encoding";
import worker from "../../src/index";
import { ADMIN_TOKEN, BotSocket, del, eventually, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

/** A bot registration whose JSON nests exactly `depth` levels (the body object is level 1). */
const botBodyOfDepth = (depth: number) => `{"name":"deep","metadata":{"a":${"[".repeat(depth - 2)}${"]".repeat(depth - 2)}}}`;

describe("hardening", () => {
  it("JSON nested deeper than 64 levels is 400 validation_failed, in any field; 64 levels are fine", async () => {
    const count = async () => (await env.DB.prepare("SELECT count(*) AS n FROM bots WHERE name = 'deep'").first<{ n: number }>())!.n;
    const before = await count();
    // 100,000 levels in a body well under 256 KiB: refused, nothing stored, no 500.
    const huge = `{"name":"deep","metadata":{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`;
    expect(huge.length).toBeLessThan(256 * 1024);
    expectError(await post("/api/v1/bots", undefined, { rawBody: huge }), 400, "validation_failed");
    expectError(await post("/api/v1/bots", undefined, { rawBody: botBodyOfDepth(MAX_JSON_DEPTH + 1) }), 400, "validation_failed");
    expect(await count()).toBe(before);
    expect((await post("/api/v1/bots", undefined, { rawBody: botBodyOfDepth(MAX_JSON_DEPTH) })).status).toBe(201);
    // Brackets inside strings are text, not nesting.
    expect((await post("/api/v1/bots", { name: "deep", metadata: { note: "[".repeat(1000) } })).status).toBe(201);
  });

  it("a WebSocket message nested too deep is answered with validation_failed and changes nothing", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    const task = (await post("/api/v1/tasks", { payload: {}, capability: cap })).body;
    await sock.next("task_assigned");
    sock.send(
      `{"type":"task_complete","payload":{"task_id":"${task.id}","success":true,"result":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`,
    );
    expect((await sock.next("error")).payload.code).toBe("validation_failed");
    const row = await env.DB.prepare("SELECT status FROM tasks WHERE id = ?").bind(task.id).first<{ status: string }>();
    expect(row!.status).toBe("assigned");
    sock.close();
  });

  it("auth fails closed: unknown token kinds, kindless bot tokens and non-bot tokens in URLs are refused", async () => {
    const now = Date.now();
    const insert = async (kind: string, botId: string | null) => {
      const secret = `cbc_x_${crypto.randomUUID()}`;
      await env.DB.prepare("INSERT INTO tokens (id, kind, name, bot_id, token_hash, created_at) VALUES (?, ?, 'odd', ?, ?, ?)")
        .bind(crypto.randomUUID(), kind, botId, await sha256Hex(secret), now)
        .run();
      return secret;
    };
    // A row of a kind the coordinator does not know (a typo, a future kind) grants nothing; it used to grant admin.
    expectError(await get("/api/v1/bots", { token: await insert("superuser", null) }), 401, "unauthorized");
    expectError(await get("/api/v1/bots", { token: await insert("bot", null) }), 401, "unauthorized");
    // ?token= is for a bot's own token on its socket only.
    const bot = await registerBot([uniqueCapability()]);
    expect((await BotSocket.upgrade(bot.id, ADMIN_TOKEN, "query")).status).toBe(401);
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "url" })).body.token;
    expect((await BotSocket.upgrade(bot.id, viewer, "query")).status).toBe(401);
    expect((await BotSocket.upgrade(bot.id, bot.token, "query")).status).toBe(101);
    expectError(await get(`/api/v1/bots?token=${bot.token}`, { token: null }), 401, "unauthorized");
  });

  it("an ADMIN_TOKEN shorter than 32 characters is refused: every request answers 503 with a clear message", async () => {
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request("http://coordinator.test/api/v1/bots", { headers: { Authorization: "Bearer short-admin-token" } }),
      { ...env, ADMIN_TOKEN: "short-admin-token" },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.message).toContain("ADMIN_TOKEN must be at least 32 characters");
  });

  it("revoking a token closes every socket opened with it (4001) at once; nothing is offered to or taken from it after", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const tokenRow = (await get("/api/v1/tokens")).body.find((t: any) => t.bot_id === bot.id);
    const revokedAt = Date.now();
    expect((await del(`/api/v1/tokens/${tokenRow.id}`)).body).toEqual({ id: tokenRow.id, revoked: true });
    await eventually(async () => sock.closed, 1000, "socket closed within 1 s");
    expect(sock.closed).toEqual({ code: 4001, reason: "token revoked" });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    // The bot is no longer a dispatch target, and the token cannot open a new socket.
    const task = (await post("/api/v1/tasks", { payload: {}, capability: cap })).body;
    expect((await get(`/api/v1/tasks/${task.id}`)).body).toMatchObject({ status: "pending", waiting_for: `capability:${cap}` });
    expect((await BotSocket.upgrade(bot.id, bot.token)).status).toBe(401);

    // An admin token may open any bot's socket: revoking it closes those too.
    const admin = (await post("/api/v1/tokens", { kind: "admin", name: "ops" })).body;
    const other = await registerBot([uniqueCapability()]);
    const adminSock = await BotSocket.open(other.id, admin.token);
    await adminSock.next("connected");
    const ownSock = await BotSocket.open(other.id, other.token); // replaces it (one socket per bot)…
    await ownSock.next("connected");
    const adminSock2 = await BotSocket.open(other.id, admin.token); // …and is replaced back
    await adminSock2.next("connected");
    await del(`/api/v1/tokens/${admin.id}`);
    await eventually(async () => adminSock2.closed, 1000, "admin-token socket closed");
    expect(adminSock2.closed!.code).toBe(4001);
    adminSock.close();
    ownSock.close();
  });

  it("a workflow of 1,000 steps is created, started and cancelled at step 0 (every statement binds a bounded list)", async () => {
    const cap = uniqueCapability();
    const created = await post("/api/v1/workflows", {
      name: "huge",
      capability: cap,
      task_payloads: Array.from({ length: 1000 }, (_, n) => ({ n })),
    });
    expect(created.status, JSON.stringify(created.body).slice(0, 300)).toBe(201);
    expect(created.body.task_ids).toHaveLength(1000);
    expect((await post(`/api/v1/workflows/${created.body.id}/start`)).status).toBe(200);
    const cancelled = await post(`/api/v1/tasks/${created.body.task_ids[0]}/cancel`, { reason: "too big" });
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    const { workflow, tasks } = (await get(`/api/v1/workflows/${created.body.id}/tasks`)).body;
    expect(workflow.status).toBe("cancelled");
    expect(tasks).toHaveLength(1000);
    expect(tasks.filter((t: any) => t.status !== "cancelled")).toEqual([]);
    expect(tasks.slice(0, 3).map((t: any) => t.payload)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expectError(
      await post("/api/v1/workflows", { name: "too big", task_payloads: Array.from({ length: 1001 }, () => ({})) }),
      400,
      "validation_failed",
    );
  });

  it("lists at the maximum page size work: 200 workflows with their task ids, 200 deployments with their bots", async () => {
    const now = Date.now();
    const wfs = JSON.stringify(Array.from({ length: 205 }, (_, n) => ({ id: `wf-page-${n}-${crypto.randomUUID()}`, at: now - n })));
    await env.DB.prepare(
      "INSERT INTO workflows (id, name, created_at, updated_at) SELECT json_extract(value, '$.id'), 'page', json_extract(value, '$.at'), json_extract(value, '$.at') FROM json_each(?)",
    )
      .bind(wfs)
      .run();
    const page = await get("/api/v1/workflows?limit=200");
    expect(page.status, JSON.stringify(page.body).slice(0, 300)).toBe(200);
    expect(page.body).toHaveLength(200);
    const deps = JSON.stringify(
      Array.from({ length: 205 }, (_, n) => ({ id: `dep-page-${n}-${crypto.randomUUID()}`, bot: crypto.randomUUID(), at: now - n })),
    );
    await env.DB.prepare(
      `INSERT INTO deployments (id, name, provider, region, plan, status, bot_id, last_progress_at, created_at, updated_at)
       SELECT json_extract(value, '$.id'), 'page', 'local', 'fsn1', 'cx22', 'ERROR', json_extract(value, '$.bot'), 0, json_extract(value, '$.at'), json_extract(value, '$.at') FROM json_each(?)`,
    )
      .bind(deps)
      .run();
    const deployments = await get("/api/v1/deployments?limit=200");
    expect(deployments.status, JSON.stringify(deployments.body).slice(0, 300)).toBe(200);
    expect(deployments.body).toHaveLength(200);
    expect(deployments.body.every((d: any) => d.bot_online === false)).toBe(true);
  });

  it("deployments refuse an unsafe configuration with a clear 503: plain-http PUBLIC_URL for a real provider, a malformed key limit", async () => {
    const create = async (over: Record<string, string>) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request("http://coordinator.test/api/v1/deployments", {
          method: "POST",
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
          body: JSON.stringify({ name: "unsafe" }),
        }),
        { ...env, ...over },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return { status: res.status, body: (await res.json()) as any };
    };
    const before = (await env.DB.prepare("SELECT count(*) AS n FROM deployments WHERE name = 'unsafe'").first<{ n: number }>())!.n;
    const http = await create({ VPS_PROVIDER: "hetzner", PUBLIC_URL: "http://coordinator.example.com" });
    expect(http.status).toBe(503);
    expect(http.body.error.message).toContain("PUBLIC_URL must be https://");
    const limit = await create({ OPENROUTER_KEY_LIMIT_USD: "ten dollars" });
    expect(limit.status).toBe(503);
    expect(limit.body.error.message).toContain("OPENROUTER_KEY_LIMIT_USD");
    expect((await env.DB.prepare("SELECT count(*) AS n FROM deployments WHERE name = 'unsafe'").first<{ n: number }>())!.n).toBe(before);
  });
});
