/**
 * The bot client's delivery guarantees against a fake coordinator (a plain `ws`
 * server that acks only when told): results survive lost connections and
 * restarts of the bot process, and finished work is not run again.
 */
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { BotClient, type BotClientOptions } from "../../bot/src/client";
import type { TaskHandler } from "../../bot/src/handlers";

let server: WebSocketServer | null = null;
const clients: BotClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  for (const c of server?.clients ?? []) c.terminate();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = null;
});

interface Conn {
  ws: WebSocket;
  received: any[];
}

async function fakeCoordinator() {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const connections: Conn[] = [];
  server.on("connection", (ws) => {
    const conn: Conn = { ws, received: [] };
    ws.on("message", (d) => {
      const msg = JSON.parse(d.toString());
      if (msg.type !== "heartbeat") conn.received.push(msg);
    });
    connections.push(conn);
    ws.send(
      JSON.stringify({ type: "connected", payload: { bot_id: "b1", heartbeat_interval_s: 30, server_time: new Date().toISOString() } }),
    );
  });
  const send = (conn: Conn, msg: unknown) => conn.ws.send(JSON.stringify(msg));
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    last: () => connections[connections.length - 1]!,
    assign: (conn: Conn, taskId: string, attempt = 1, taskPayload: unknown = {}) =>
      send(conn, {
        type: "task_assigned",
        payload: { task_id: taskId, task_payload: taskPayload, timeout_seconds: 60, attempt, capability: null },
      }),
    ack: (conn: Conn, taskId: string, applied = true, status = "completed") =>
      send(conn, { type: "task_ack", payload: { task_id: taskId, status, applied, ack_of: "task_complete" } }),
    /** Drops the connection as a crashed coordinator would (no close frame) and waits for the client to come back. */
    async drop(conn: Conn) {
      const before = connections.length;
      conn.ws.terminate();
      await waitFor("reconnect", () => connections.length > before);
      return connections[connections.length - 1]!;
    },
  };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const completions = (conn: Conn, taskId?: string) =>
  conn.received.filter((m) => m.type === "task_complete" && (taskId === undefined || m.payload.task_id === taskId));

/** A handler that runs until the test releases it, counting its runs. */
function gatedHandler() {
  const runs: string[] = [];
  let release: (() => void) | null = null;
  const handler: TaskHandler = async (_payload, ctx) => {
    runs.push(ctx.taskId);
    await new Promise<void>((r) => (release = r));
    return { done: ctx.taskId };
  };
  return { handler, runs, release: () => release?.() };
}

function startClient(url: string, handler: TaskHandler, extra: Partial<BotClientOptions> = {}) {
  const client = new BotClient({
    url,
    botId: "b1",
    token: "t",
    handlers: { echo: handler },
    reconnectBaseMs: 20,
    reconnectMaxMs: 50,
    log: () => {},
    ...extra,
  });
  clients.push(client);
  return client;
}

describe("bot client delivery", () => {
  it("a result finished while disconnected is sent after the reconnect, and again after each one until it is acked", async () => {
    const fake = await fakeCoordinator();
    const gate = gatedHandler();
    const client = startClient(fake.url, gate.handler, { reconnectBaseMs: 300, reconnectMaxMs: 300 });
    await client.start();
    fake.assign(fake.last(), "t1");
    await waitFor("running", () => gate.runs.length === 1);
    const dropped = fake.last();
    dropped.ws.terminate();
    await waitFor("client saw the drop", () => dropped.ws.readyState === dropped.ws.CLOSED);
    gate.release(); // finishes while the connection is down (the reconnect waits 300 ms)
    await waitFor("reconnect", () => fake.connections.length === 2);
    await waitFor("result sent after the reconnect", () => completions(fake.last(), "t1").length === 1);
    expect(completions(fake.last(), "t1")[0].payload).toEqual({ task_id: "t1", success: true, result: { done: "t1" } });

    // Not acked: the next connection gets it again. Acked: never again.
    const third = await fake.drop(fake.last());
    await waitFor("sent again", () => completions(third, "t1").length === 1);
    fake.ack(third, "t1");
    await new Promise((r) => setTimeout(r, 50));
    const fourth = await fake.drop(third);
    await new Promise((r) => setTimeout(r, 200));
    expect(completions(fourth)).toEqual([]);
    expect(gate.runs).toEqual(["t1"]);
  });

  it("an ack of task_started does not count as the ack of the result", async () => {
    const fake = await fakeCoordinator();
    const gate = gatedHandler();
    const client = startClient(fake.url, gate.handler);
    await client.start();
    const conn = fake.last();
    fake.assign(conn, "t1");
    await waitFor("running", () => gate.runs.length === 1);
    gate.release();
    await waitFor("result", () => completions(conn, "t1").length === 1);
    // The started-ack arrives after the result went out (both were in flight).
    conn.ws.send(
      JSON.stringify({ type: "task_ack", payload: { task_id: "t1", status: "in_progress", applied: true, ack_of: "task_started" } }),
    );
    const next = await fake.drop(conn);
    await waitFor("result sent again", () => completions(next, "t1").length === 1);
  });

  it("a repeated assignment of a finished task is answered with the kept result, not run again; a retry after a failure runs", async () => {
    const fake = await fakeCoordinator();
    let runs = 0;
    let failNext = false;
    const handler: TaskHandler = async (_p, ctx) => {
      runs++;
      if (failNext) throw new Error("boom");
      return { run: runs, task: ctx.taskId };
    };
    const client = startClient(fake.url, handler);
    await client.start();
    let conn = fake.last();
    fake.assign(conn, "t1", 1);
    await waitFor("result", () => completions(conn, "t1").length === 1);
    // The coordinator restarted before it stored the result, and pushes the assignment again.
    conn = await fake.drop(conn);
    fake.assign(conn, "t1", 1);
    await waitFor("kept result", () => completions(conn, "t1").length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(completions(conn, "t1").map((m) => m.payload.result)).toEqual([{ run: 1, task: "t1" }]);
    expect(runs).toBe(1);
    expect(client.executions).toBe(1);
    expect(conn.received.filter((m) => m.type === "task_started")).toEqual([]);

    // A failure is kept for its own attempt; the coordinator's retry (a later attempt) runs the task again.
    failNext = true;
    fake.assign(conn, "t2", 1);
    await waitFor("failure", () => completions(conn, "t2").length === 1);
    fake.ack(conn, "t2", true, "pending");
    failNext = false;
    fake.assign(conn, "t2", 2);
    await waitFor("retry result", () => completions(conn, "t2").length === 2);
    expect(completions(conn, "t2").map((m) => m.payload.success)).toEqual([false, true]);
    expect(runs).toBe(3);
  });

  it("a result refused for good (applied:false, or a not_found error) is dropped, not sent forever", async () => {
    const fake = await fakeCoordinator();
    const client = startClient(fake.url, async () => ({ ok: true }));
    await client.start();
    let conn = fake.last();
    fake.assign(conn, "moved-on");
    fake.assign(conn, "deleted");
    await waitFor("results", () => completions(conn).length === 2);
    fake.ack(conn, "moved-on", false, "assigned");
    conn.ws.send(JSON.stringify({ type: "error", payload: { code: "not_found", message: "no task", details: { task_id: "deleted" } } }));
    await new Promise((r) => setTimeout(r, 50));
    conn = await fake.drop(conn);
    await new Promise((r) => setTimeout(r, 200));
    expect(completions(conn)).toEqual([]);
  });

  it("with a state file, a restarted bot process sends its unacked result and does not run the finished task again", async () => {
    const fake = await fakeCoordinator();
    const stateFile = path.join(mkdtempSync(path.join(os.tmpdir(), "cbc-bot-state-")), "nested", "state.json");
    let runs = 0;
    const handler: TaskHandler = async () => ({ run: ++runs });
    const first = startClient(fake.url, handler, { stateFile });
    await first.start();
    fake.assign(fake.last(), "t1");
    await waitFor("result", () => completions(fake.last(), "t1").length === 1);
    first.stop(); // the process dies before the coordinator acked

    const second = startClient(fake.url, handler, { stateFile });
    await second.start();
    const conn = fake.last();
    await waitFor("kept result sent on connect", () => completions(conn, "t1").length === 1);
    expect(completions(conn, "t1")[0].payload.result).toEqual({ run: 1 });
    fake.assign(conn, "t1");
    await new Promise((r) => setTimeout(r, 100));
    expect(runs).toBe(1);
    expect(second.executions).toBe(0);
    fake.ack(conn, "t1");
    await waitFor("ack persisted", () => JSON.parse(readFileSync(stateFile, "utf8")).finished[0].acked === true);
  });

  it("a damaged state file does not keep the bot from starting", async () => {
    const fake = await fakeCoordinator();
    const stateFile = path.join(mkdtempSync(path.join(os.tmpdir(), "cbc-bot-state-")), "state.json");
    writeFileSync(stateFile, "{not json");
    const warnings: string[] = [];
    const client = startClient(fake.url, async () => ({ ok: true }), {
      stateFile,
      log: (level, msg) => level === "warn" && warnings.push(msg),
    });
    await client.start();
    fake.assign(fake.last(), "t1");
    await waitFor("result", () => completions(fake.last(), "t1").length === 1);
    expect(warnings).toContain("ignoring an unreadable state file");
  });
});
