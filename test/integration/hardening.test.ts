/** Hostile input and lost authority: each case broke the coordinator once; each test failed before its fix. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../../src/contracts/json-depth";
import { BotSocket, expectError, post, registerBot, uniqueCapability } from "../helpers/api";

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
});
