/** The bot client against a local fake coordinator (a plain `ws` server): protocol, handlers, reconnect. */
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { BotClient } from "../../bot/src/client";
import { echoHandler, shellHandler } from "../../bot/src/handlers";
import { backoffDelayMs } from "../../src/core/backoff";

let server: WebSocketServer | null = null;
afterEach(async () => {
  for (const c of server?.clients ?? []) c.terminate();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = null;
});

async function fakeCoordinator() {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const connections: { ws: WebSocket; url: string; auth: string | undefined; received: any[] }[] = [];
  server.on("connection", (ws, req) => {
    const conn = { ws, url: req.url!, auth: req.headers.authorization, received: [] as any[] };
    ws.on("message", (d) => conn.received.push(d.toString()));
    connections.push(conn);
    ws.send(
      JSON.stringify({ type: "connected", payload: { bot_id: "b1", heartbeat_interval_s: 1, server_time: new Date().toISOString() } }),
    );
  });
  return { url: `http://127.0.0.1:${port}`, connections };
}

const waitFor = async (what: string, check: () => boolean, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("bot client", () => {
  it("connects with its token, heartbeats with the exact frame, runs a task and reports it", async () => {
    const fake = await fakeCoordinator();
    const client = new BotClient({
      url: fake.url,
      botId: "b1",
      token: "t0k",
      handlers: { echo: echoHandler },
      heartbeatIntervalMs: 50,
      log: () => {},
    });
    await client.start();
    const conn = fake.connections[0]!;
    expect(conn.url).toBe("/api/v1/ws/control?bot_id=b1");
    expect(conn.auth).toBe("Bearer t0k");
    await waitFor("heartbeat", () => conn.received.includes('{"type":"heartbeat"}'));
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "t1", task_payload: { x: 1 } } }));
    await waitFor("completion", () => conn.received.some((m) => m.includes("task_complete")));
    const msgs = conn.received.filter((m) => !m.includes("heartbeat")).map((m) => JSON.parse(m));
    expect(msgs).toEqual([
      { type: "task_started", payload: { task_id: "t1" } },
      { type: "task_complete", payload: { task_id: "t1", success: true, result: { echo: { x: 1 } } } },
    ]);
    client.stop();
  });

  it("reports a handler error as success=false, and an unknown handler too", async () => {
    const fake = await fakeCoordinator();
    const client = new BotClient({
      url: fake.url,
      botId: "b1",
      token: "t",
      handlers: { echo: echoHandler, shell: shellHandler({ allow: [], timeoutMs: 1000, maxOutputBytes: 100 }) },
      log: () => {},
    });
    await client.start();
    const conn = fake.connections[0]!;
    conn.ws.send(
      JSON.stringify({
        type: "task_assigned",
        payload: { task_id: "t2", task_payload: { handler: "shell", command: "rm", args: ["-rf", "/"] } },
      }),
    );
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "t3", task_payload: { handler: "nope" } } }));
    await waitFor("two results", () => conn.received.filter((m) => m.includes("task_complete")).length === 2);
    const results = conn.received.filter((m) => m.includes("task_complete")).map((m) => JSON.parse(m).payload);
    expect(results.find((r) => r.task_id === "t2")).toMatchObject({
      success: false,
      error: "command 'rm' is not allow-listed on this bot",
    });
    expect(results.find((r) => r.task_id === "t3")).toMatchObject({ success: false, error: "this bot has no 'nope' handler" });
    client.stop();
  });

  it("stops a running task when the coordinator cancels it, and sends no result", async () => {
    const fake = await fakeCoordinator();
    const client = new BotClient({ url: fake.url, botId: "b1", token: "t", handlers: { echo: echoHandler }, log: () => {} });
    await client.start();
    const conn = fake.connections[0]!;
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "slow", task_payload: { delay_ms: 5000 } } }));
    await waitFor("progress", () => conn.received.some((m) => m.includes("task_progress")));
    conn.ws.send(JSON.stringify({ type: "task_cancelled", payload: { task_id: "slow", reason: "timeout" } }));
    await new Promise((r) => setTimeout(r, 200));
    expect(conn.received.some((m) => m.includes("task_complete"))).toBe(false);
    client.stop();
  });

  it("reconnects with backoff after the server drops it", async () => {
    const fake = await fakeCoordinator();
    const client = new BotClient({
      url: fake.url,
      botId: "b1",
      token: "t",
      handlers: {},
      reconnectBaseMs: 20,
      reconnectMaxMs: 100,
      log: () => {},
    });
    await client.start();
    fake.connections[0]!.ws.terminate();
    await waitFor("reconnect", () => fake.connections.length === 2);
    fake.connections[1]!.ws.close(1011, "restart");
    await waitFor("second reconnect", () => fake.connections.length === 3);
    client.stop();
  });

  it("stops for good when the coordinator says the bot was deleted (4004)", async () => {
    const fake = await fakeCoordinator();
    let stopped = "";
    const client = new BotClient({
      url: fake.url,
      botId: "b1",
      token: "t",
      handlers: {},
      reconnectBaseMs: 10,
      log: () => {},
      onStopped: (r) => (stopped = r),
    });
    await client.start();
    fake.connections[0]!.ws.close(4004, "bot deleted");
    await waitFor("stop", () => stopped !== "");
    expect(stopped).toBe("bot deleted");
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.connections).toHaveLength(1); // no reconnect
  });

  it("runs allow-listed executables with an argument vector (no shell)", async () => {
    const handler = shellHandler({ allow: ["echo"], timeoutMs: 5000, maxOutputBytes: 1000 });
    const ctx = { taskId: "t", attempt: 1, signal: new AbortController().signal, progress: () => {} };
    expect(await handler({ command: "echo", args: ["hi; rm -rf /"] }, ctx)).toEqual({ exit_code: 0, stdout: "hi; rm -rf /\n", stderr: "" });
    await expect(handler({ command: "sh", args: ["-c", "id"] }, ctx)).rejects.toThrow(/not allow-listed/);
  });

  it("backoff grows exponentially with jitter and is capped", () => {
    expect(backoffDelayMs(0, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(500);
    expect(backoffDelayMs(3, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(4000);
    expect(backoffDelayMs(3, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 0)).toBe(2000);
    expect(backoffDelayMs(50, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(30_000);
  });
});
