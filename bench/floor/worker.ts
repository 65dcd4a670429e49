/**
 * The platform floor (see wrangler.toml): the same protocol as the coordinator
 * — POST /api/v1/bots, POST /api/v1/tasks (and /tasks/batch), GET /api/v1/tasks/{id}, and the bot
 * control WebSocket with seed 001's messages — served by one Durable Object
 * whose state is in its own SQLite. What the coordinator adds on top (D1 as the
 * relational record, a Durable Object per bot, auth, validation) is measured
 * against this.
 */
import { DurableObject } from "cloudflare:workers";

interface Env {
  QUEUE: DurableObjectNamespace<FloorQueue>;
}

interface Attachment {
  botId: string;
  taskId: string | null;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

export class FloorQueue extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS tasks (
      id TEXT PRIMARY KEY, payload TEXT NOT NULL, status TEXT NOT NULL, bot_id TEXT, result TEXT, created_at INTEGER NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (status, created_at)");
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"type":"heartbeat"}', '{"type":"heartbeat_ack"}'));
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/api/v1/ws/control") return this.acceptBot(url.searchParams.get("bot_id") ?? "");
    if (request.method === "POST" && url.pathname === "/api/v1/bots") {
      await request.arrayBuffer(); // read the body before answering: the runtime refuses a stream left unread
      return json({ id: crypto.randomUUID(), token: "floor" }, 201);
    }
    if (request.method === "POST" && url.pathname === "/api/v1/tasks") {
      const body = (await request.json()) as { payload?: unknown };
      const id = crypto.randomUUID();
      this.sql.exec(
        "INSERT INTO tasks (id, payload, status, created_at) VALUES (?, ?, 'pending', ?)",
        id,
        JSON.stringify(body.payload ?? {}),
        Date.now(),
      );
      const idle = this.ctx
        .getWebSockets()
        .find((ws) => ws.readyState === WebSocket.OPEN && !(ws.deserializeAttachment() as Attachment).taskId);
      if (idle) this.assign(idle, id);
      return json(this.task(id), 201);
    }
    if (request.method === "POST" && url.pathname === "/api/v1/tasks/batch") {
      // Every insert in one event: the object's SQLite commits them together.
      const body = (await request.json()) as { tasks: { payload?: unknown }[] };
      const nowMs = Date.now();
      const ids = body.tasks.map((t) => {
        const id = crypto.randomUUID();
        this.sql.exec(
          "INSERT INTO tasks (id, payload, status, created_at) VALUES (?, ?, 'pending', ?)",
          id,
          JSON.stringify(t.payload ?? {}),
          nowMs,
        );
        return id;
      });
      for (const ws of this.ctx.getWebSockets())
        if (ws.readyState === WebSocket.OPEN && !(ws.deserializeAttachment() as Attachment).taskId) this.pull(ws);
      return json(
        ids.map((id) => this.task(id)),
        201,
      );
    }
    const match = /^\/api\/v1\/tasks\/([\w-]+)$/.exec(url.pathname);
    if (request.method === "GET" && match) {
      const task = this.task(match[1]!);
      return task ? json(task) : json({ error: { code: "task_not_found" } }, 404);
    }
    return json({ error: { code: "not_found" } }, 404);
  }

  private acceptBot(botId: string): Response {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    pair[1].serializeAttachment({ botId, taskId: null } satisfies Attachment);
    pair[1].send(
      JSON.stringify({ type: "connected", payload: { bot_id: botId, heartbeat_interval_s: 30, server_time: new Date().toISOString() } }),
    );
    this.pull(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const msg = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw)) as {
      type: string;
      payload: { task_id: string; success?: boolean; result?: unknown };
    };
    const { task_id } = msg.payload;
    if (msg.type === "task_started") {
      this.sql.exec("UPDATE tasks SET status = 'in_progress' WHERE id = ? AND status = 'assigned'", task_id);
      ws.send(JSON.stringify({ type: "task_ack", payload: { task_id, status: "in_progress", applied: true, ack_of: "task_started" } }));
    } else if (msg.type === "task_complete") {
      const status = msg.payload.success === false ? "failed" : "completed";
      this.sql.exec("UPDATE tasks SET status = ?, result = ? WHERE id = ?", status, JSON.stringify(msg.payload.result ?? null), task_id);
      ws.serializeAttachment({ ...(ws.deserializeAttachment() as Attachment), taskId: null });
      ws.send(JSON.stringify({ type: "task_ack", payload: { task_id, status, applied: true, ack_of: "task_complete" } }));
      this.pull(ws);
    }
  }

  /** A bot that goes away gives its task back to the queue (bots of an earlier round close their sockets). */
  async webSocketClose(ws: WebSocket): Promise<void> {
    const { taskId } = ws.deserializeAttachment() as Attachment;
    if (taskId)
      this.sql.exec("UPDATE tasks SET status = 'pending', bot_id = NULL WHERE id = ? AND status IN ('assigned', 'in_progress')", taskId);
  }

  private pull(ws: WebSocket): void {
    const next = this.sql.exec<{ id: string }>("SELECT id FROM tasks WHERE status = 'pending' ORDER BY created_at LIMIT 1").toArray()[0];
    if (next) this.assign(ws, next.id);
  }

  private assign(ws: WebSocket, taskId: string): void {
    const attachment = ws.deserializeAttachment() as Attachment;
    this.sql.exec("UPDATE tasks SET status = 'assigned', bot_id = ? WHERE id = ?", attachment.botId, taskId);
    ws.serializeAttachment({ ...attachment, taskId });
    const task = this.task(taskId)!;
    ws.send(
      JSON.stringify({
        type: "task_assigned",
        payload: { task_id: taskId, task_payload: task.payload, timeout_seconds: 300, attempt: 1, capability: null },
      }),
    );
  }

  private task(id: string) {
    const row = this.sql
      .exec<{ id: string; payload: string; status: string; bot_id: string | null; result: string | null }>(
        "SELECT id, payload, status, bot_id, result FROM tasks WHERE id = ?",
        id,
      )
      .toArray()[0];
    return row ? { ...row, payload: JSON.parse(row.payload), result: row.result ? JSON.parse(row.result) : null } : null;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (new URL(request.url).pathname === "/health") return json({ status: "healthy" });
    return env.QUEUE.getByName("floor").fetch(request);
  },
};
