/** The bot client against a local fake coordinator (a plain `ws` server): protocol, handlers, reconnect. */
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { BotClient } from "../../bot/src/client";
import { echoHandler, parseShellRules, shellHandler, type TaskHandler } from "../../bot/src/handlers";
import { backoffDelayMs } from "../../src/core/backoff";

let server: WebSocketServer | null = null;
const workDir = mkdtempSync(path.join(os.tmpdir(), "cbc-bot-work-"));
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

/** Handlers that never touch files get a context whose file calls fail loudly. */
const NO_FILES = {
  upload: async () => {
    throw new Error("no uploads in this test");
  },
  inputs: [],
  download: async () => {
    throw new Error("no downloads in this test");
  },
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
      handlers: { echo: echoHandler, shell: shellHandler({ allow: [], timeoutMs: 1000, maxOutputBytes: 100, workDir }) },
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

  it("cancel aborts the handler's signal, the work stops at once, no result is sent and the bot takes the next task", async () => {
    const fake = await fakeCoordinator();
    const seen: { aborted: boolean; settledAfterMs: number | null }[] = [];
    // The real echo handler (it waits delay_ms), watched: did its signal fire, and when did it stop?
    const watched: TaskHandler = async (payload, ctx) => {
      const record = { aborted: false, settledAfterMs: null as number | null };
      seen.push(record);
      const started = Date.now();
      ctx.signal.addEventListener("abort", () => {
        record.aborted = true;
      });
      try {
        return await echoHandler(payload, ctx);
      } finally {
        record.settledAfterMs = Date.now() - started;
      }
    };
    const client = new BotClient({ url: fake.url, botId: "b1", token: "t", handlers: { echo: watched }, log: () => {} });
    await client.start();
    const conn = fake.connections[0]!;
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "slow", task_payload: { delay_ms: 5000 } } }));
    await waitFor("progress", () => conn.received.some((m) => m.includes("task_progress")));
    const cancelledAt = Date.now();
    conn.ws.send(JSON.stringify({ type: "task_cancelled", payload: { task_id: "slow", reason: "timeout" } }));
    await waitFor("handler stopped", () => seen[0]?.settledAfterMs !== null);
    expect(seen[0]!.aborted).toBe(true);
    expect(Date.now() - cancelledAt).toBeLessThan(1000); // stopped by the signal, not by finishing its 5 s
    // The next task runs (the cancelled one no longer occupies the bot), and only it reports a result.
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "next", task_payload: { n: 1 } } }));
    await waitFor("next result", () => conn.received.some((m) => m.includes("task_complete")));
    const results = conn.received.filter((m) => m.includes("task_complete")).map((m) => JSON.parse(m).payload.task_id);
    expect(results).toEqual(["next"]);
    client.stop();
  });

  it("runs one task at a time: a second assignment waits until the first is reported", async () => {
    const fake = await fakeCoordinator();
    const client = new BotClient({ url: fake.url, botId: "b1", token: "t", handlers: { echo: echoHandler }, log: () => {} });
    await client.start();
    const conn = fake.connections[0]!;
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "a", task_payload: { delay_ms: 300 } } }));
    conn.ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "b", task_payload: { delay_ms: 10 } } }));
    await waitFor("both results", () => conn.received.filter((m) => m.includes("task_complete")).length === 2);
    const order = conn.received
      .map((m) => JSON.parse(m))
      .filter((m) => m.type === "task_started" || m.type === "task_complete")
      .map((m) => `${m.type}:${m.payload.task_id}`);
    expect(order).toEqual(["task_started:a", "task_complete:a", "task_started:b", "task_complete:b"]);
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

  for (const [code, reason] of [
    [4004, "bot deleted"],
    [4001, "token revoked"],
  ] as const) {
    it(`stops for good when the coordinator closes with ${code} (${reason})`, async () => {
      const fake = await fakeCoordinator();
      let stopped = "";
      const client = new BotClient({
        url: fake.url,
        botId: "b1",
        token: "t",
        handlers: {},
        reconnectBaseMs: 10,
        log: () => {},
        onStopped: (r) => {
          stopped = r;
        },
      });
      await client.start();
      fake.connections[0]!.ws.close(code, reason);
      await waitFor("stop", () => stopped !== "");
      expect(stopped).toBe(reason);
      await new Promise((r) => setTimeout(r, 100)); // after the stop: ten reconnect delays' worth
      expect(fake.connections).toHaveLength(1); // no reconnect
    });
  }

  it("runs allow-listed executables with allowed arguments as an argument vector (no shell), nothing else", async () => {
    const ctx = { taskId: "t", attempt: 1, signal: new AbortController().signal, progress: () => {}, log: () => {}, ...NO_FILES };
    const handler = shellHandler({ allow: parseShellRules("echo:[a-z ;/-]+,uname"), timeoutMs: 5000, maxOutputBytes: 1000, workDir });
    expect(await handler({ command: "echo", args: ["hi; rm -rf /"] }, ctx)).toEqual({ exit_code: 0, stdout: "hi; rm -rf /\n", stderr: "" });
    await expect(handler({ command: "sh", args: ["-c", "id"] }, ctx)).rejects.toThrow(/not allow-listed/);
    await expect(handler({ command: "echo", args: ["$(id)"] }, ctx)).rejects.toThrow(/argument '\$\(id\)' is not allowed/);
    await expect(handler({ command: "uname", args: ["-a"] }, ctx)).rejects.toThrow(/not allowed/); // no arguments for uname
    await expect(handler({ command: "uname", args: [], cwd: "/" }, ctx)).rejects.toThrow(/cwd/);
  });

  it("shell commands run in the bot's work directory with a minimal environment (no token, no keys)", async () => {
    const ctx = { taskId: "t", attempt: 1, signal: new AbortController().signal, progress: () => {}, log: () => {}, ...NO_FILES };
    process.env.CLAWBOT_TOKEN = "secret-bot-token";
    process.env.OPENROUTER_API_KEY = "sk-or-v1-secret";
    try {
      const handler = shellHandler({ allow: parseShellRules("env,pwd"), timeoutMs: 5000, maxOutputBytes: 10_000, workDir });
      const env = ((await handler({ command: "env" }, ctx)) as { stdout: string }).stdout;
      expect(env).not.toContain("secret");
      expect(
        env
          .trim()
          .split("\n")
          .map((l) => l.split("=")[0])
          .sort(),
      ).toEqual(["HOME", "LANG", "PATH"]);
      expect(((await handler({ command: "pwd" }, ctx)) as { stdout: string }).stdout.trim()).toBe(workDir);
    } finally {
      delete process.env.CLAWBOT_TOKEN;
      delete process.env.OPENROUTER_API_KEY;
    }
  });

  it("the shell handler kills a command past its timeout and keeps only maxOutputBytes of output", async () => {
    const ctx = { taskId: "t", attempt: 1, signal: new AbortController().signal, progress: () => {}, log: () => {}, ...NO_FILES };
    const slow = shellHandler({ allow: parseShellRules("sleep:[0-9]+"), timeoutMs: 200, maxOutputBytes: 1000, workDir });
    const started = Date.now();
    await expect(slow({ command: "sleep", args: ["5"] }, ctx)).rejects.toThrow(/exited with SIGTERM/);
    expect(Date.now() - started).toBeLessThan(2000);
    const capped = shellHandler({ allow: parseShellRules("head:-c|[0-9]+|/dev/zero"), timeoutMs: 5000, maxOutputBytes: 10, workDir });
    const res = (await capped({ command: "head", args: ["-c", "100000", "/dev/zero"] }, ctx)) as { stdout: string };
    expect(Buffer.byteLength(res.stdout)).toBe(10);
  });

  it("the shell handler's child is killed when the task is cancelled", async () => {
    const abort = new AbortController();
    const ctx = { taskId: "t", attempt: 1, signal: abort.signal, progress: () => {}, log: () => {}, ...NO_FILES };
    const handler = shellHandler({ allow: parseShellRules("sleep:[0-9]+"), timeoutMs: 60_000, maxOutputBytes: 1000, workDir });
    const started = Date.now();
    const run = handler({ command: "sleep", args: ["30"] }, ctx);
    setTimeout(() => abort.abort(), 100);
    await expect(run).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("backoff grows exponentially with jitter and is capped", () => {
    expect(backoffDelayMs(0, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(500);
    expect(backoffDelayMs(3, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(4000);
    expect(backoffDelayMs(3, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 0)).toBe(2000);
    expect(backoffDelayMs(50, { baseDelayMs: 500, maxDelayMs: 30_000 }, () => 1)).toBe(30_000);
  });
});
