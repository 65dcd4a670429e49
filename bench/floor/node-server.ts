/**
 * The Node floor for `npm run bench`: the coordinator's create (one and batch) / WebSocket /
 * read protocol served by one plain Node process holding the queue in memory
 * (no durability at all). The least any server costs on this machine.
 */
import { createServer, type Server } from "node:http";
import { type WebSocket, WebSocketServer } from "ws";

interface Task {
  id: string;
  payload: unknown;
  status: string;
  bot_id: string | null;
  result: unknown;
}

export async function startNodeFloor(): Promise<{ url: string; close(): Promise<void> }> {
  const tasks = new Map<string, Task>();
  const pending: string[] = [];
  const bots = new Map<WebSocket, { botId: string; taskId: string | null }>();

  const assign = (ws: WebSocket, taskId: string) => {
    const bot = bots.get(ws)!;
    const task = tasks.get(taskId)!;
    Object.assign(task, { status: "assigned", bot_id: bot.botId });
    bot.taskId = taskId;
    ws.send(
      JSON.stringify({
        type: "task_assigned",
        payload: { task_id: taskId, task_payload: task.payload, timeout_seconds: 300, attempt: 1, capability: null },
      }),
    );
  };
  const pull = (ws: WebSocket) => {
    const next = pending.shift();
    if (next) assign(ws, next);
  };
  const send = (res: import("node:http").ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://floor");
      if (req.method === "GET" && url.pathname === "/health") return send(res, 200, { status: "healthy" });
      if (req.method === "POST" && url.pathname === "/api/v1/bots") return send(res, 201, { id: crypto.randomUUID(), token: "floor" });
      if (req.method === "POST" && url.pathname === "/api/v1/tasks") {
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { payload?: unknown };
        const task: Task = { id: crypto.randomUUID(), payload: body.payload ?? {}, status: "pending", bot_id: null, result: null };
        tasks.set(task.id, task);
        const idle = [...bots.entries()].find(([, b]) => !b.taskId)?.[0];
        if (idle) assign(idle, task.id);
        else pending.push(task.id);
        return send(res, 201, task);
      }
      if (req.method === "POST" && url.pathname === "/api/v1/tasks/batch") {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { tasks: { payload?: unknown }[] };
        const created = body.tasks.map(
          (t): Task => ({ id: crypto.randomUUID(), payload: t.payload ?? {}, status: "pending", bot_id: null, result: null }),
        );
        for (const task of created) {
          tasks.set(task.id, task);
          pending.push(task.id);
        }
        for (const [ws, bot] of bots) if (!bot.taskId) pull(ws);
        return send(res, 201, created);
      }
      const match = /^\/api\/v1\/tasks\/([\w-]+)$/.exec(url.pathname);
      const task = match ? tasks.get(match[1]!) : undefined;
      if (req.method === "GET" && task) return send(res, 200, task);
      send(res, 404, { error: { code: "not_found" } });
    });
  });
  const wss = new WebSocketServer({ server, path: "/api/v1/ws/control" });
  wss.on("connection", (ws, req) => {
    const botId = new URL(req.url ?? "/", "http://floor").searchParams.get("bot_id") ?? "";
    bots.set(ws, { botId, taskId: null });
    ws.on("close", () => bots.delete(ws));
    ws.send(
      JSON.stringify({ type: "connected", payload: { bot_id: botId, heartbeat_interval_s: 30, server_time: new Date().toISOString() } }),
    );
    ws.on("message", (raw) => {
      const msg = JSON.parse(raw.toString()) as { type: string; payload?: { task_id: string; success?: boolean; result?: unknown } };
      if (msg.type === "heartbeat") return ws.send('{"type":"heartbeat_ack"}');
      const taskId = msg.payload!.task_id;
      const task = tasks.get(taskId);
      if (!task) return;
      if (msg.type === "task_started") {
        task.status = "in_progress";
        ws.send(
          JSON.stringify({ type: "task_ack", payload: { task_id: taskId, status: task.status, applied: true, ack_of: "task_started" } }),
        );
      } else if (msg.type === "task_complete") {
        Object.assign(task, { status: msg.payload!.success === false ? "failed" : "completed", result: msg.payload!.result ?? null });
        bots.get(ws)!.taskId = null;
        ws.send(
          JSON.stringify({ type: "task_ack", payload: { task_id: taskId, status: task.status, applied: true, ack_of: "task_complete" } }),
        );
        pull(ws);
      }
    });
    pull(ws);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => r());
      }),
  };
}
