/** What the README promises about every request: ids, limits at their exact boundaries, how tokens are kept, /health. */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_MESSAGE_BYTES } from "../../src/contracts/ws-frames";
import { sha256Hex } from "../../src/crypto/encoding";
import worker from "../../src/index";
import { BotSocket, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

/** A JSON task body of exactly `bytes` bytes (UTF-8). */
function bodyOfBytes(bytes: number, filler = "x"): string {
  const empty = JSON.stringify({ payload: { blob: "" }, capability: uniqueCapability() });
  const fill = bytes - new TextEncoder().encode(empty).byteLength;
  const unit = new TextEncoder().encode(filler).byteLength;
  const text = JSON.stringify({
    payload: { blob: filler.repeat(Math.floor(fill / unit)) + "x".repeat(fill % unit) },
    capability: JSON.parse(empty).capability,
  });
  expect(new TextEncoder().encode(text).byteLength).toBe(bytes);
  return text;
}

describe("limits and guarantees", () => {
  it("request bodies: exactly 256 KiB is accepted, one byte more is 413 and stores nothing", async () => {
    expect((await post("/api/v1/tasks", undefined, { rawBody: bodyOfBytes(MAX_MESSAGE_BYTES) })).status).toBe(201);
    const over = bodyOfBytes(MAX_MESSAGE_BYTES + 1);
    expectError(await post("/api/v1/tasks", undefined, { rawBody: over }), 413, "payload_too_large");
    const stored = await env.DB.prepare("SELECT count(*) AS n FROM tasks WHERE capability = ?")
      .bind(JSON.parse(over).capability)
      .first<{ n: number }>();
    expect(stored!.n).toBe(0);
  });

  it("WebSocket messages are capped in bytes, not characters", async () => {
    const bot = await registerBot([uniqueCapability()]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    // Under the cap in UTF-16 units, over it in UTF-8 bytes (each "é" is two bytes).
    const frame = JSON.stringify({
      type: "task_progress",
      payload: { task_id: "t", progress: 1, message: "é".repeat(MAX_MESSAGE_BYTES / 2) },
    });
    expect(frame.length).toBeLessThan(MAX_MESSAGE_BYTES + 200);
    expect(new TextEncoder().encode(frame).byteLength).toBeGreaterThan(MAX_MESSAGE_BYTES);
    sock.send(frame);
    expect((await sock.next("error")).payload.code).toBe("payload_too_large");
    sock.close();
  });

  it("list limits: 200 is the largest page, 201 is refused", async () => {
    expect((await get("/api/v1/tasks?limit=200")).status).toBe(200);
    expectError(await get("/api/v1/tasks?limit=201"), 400, "validation_failed");
    expectError(await get("/api/v1/bots?limit=0"), 400, "validation_failed");
  });

  it("X-Request-Id is on every response, echoed when the caller sends one, and in every error", async () => {
    // (the shared request helper also checks it on every call of every test)
    const own = await get("/api/v1/bots", { headers: { "X-Request-Id": "trace-123" } });
    expect(own.headers.get("X-Request-Id")).toBe("trace-123");
    const missing = await get("/api/v1/tasks/nope");
    expect(missing.body.error.request_id).toBe(missing.headers.get("X-Request-Id"));
    const unknownRoute = await get("/nowhere", { token: null });
    expect(unknownRoute.headers.get("X-Request-Id")).toBeTruthy();
  });

  it("tokens are stored only as SHA-256 hashes", async () => {
    const created = (await post("/api/v1/tokens", { kind: "viewer", name: "hash-check" })).body;
    const bot = await registerBot([]);
    for (const [id, secret] of [
      [created.id, created.token],
      [null, bot.token],
    ] as const) {
      const row = await env.DB.prepare("SELECT * FROM tokens WHERE token_hash = ?")
        .bind(await sha256Hex(secret))
        .first<Record<string, unknown>>();
      expect(row).not.toBeNull();
      if (id) expect(row!.id).toBe(id);
      expect(JSON.stringify(row)).not.toContain(secret);
    }
    const everything = await env.DB.prepare("SELECT * FROM tokens").all();
    expect(JSON.stringify(everything.results)).not.toContain(created.token);
    expect(JSON.stringify(everything.results)).not.toContain(bot.token);
  });

  it("/health answers 503 with the failing check when D1 does not answer", async () => {
    const failingD1 = {
      prepare() {
        throw new Error("D1 is down");
      },
    } as unknown as D1Database;
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request("http://coordinator.test/health"), { ...env, DB: failingD1 }, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      status: "unhealthy",
      checks: { database: { status: "error", error: "database unreachable" } },
    });
  });
});
