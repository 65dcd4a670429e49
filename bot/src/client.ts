/**
 * The OpenClaw bot side of the control WebSocket: connects, heartbeats,
 * reconnects with exponential backoff + jitter, runs one task at a time
 * through pluggable handlers and reports progress and results.
 */
import WebSocket from "ws";
import type { BotMessageInput, ServerMessage, TaskAssignedMessage } from "../../src/contracts/ws";
import { CLOSE_CODES, HEARTBEAT_FRAME } from "../../src/contracts/ws-frames";
import { backoffDelayMs } from "../../src/core/backoff";
import type { TaskHandler } from "./handlers";

export interface BotClientOptions {
  url: string;
  botId: string;
  token: string;
  handlers: Record<string, TaskHandler>;
  defaultHandler?: string;
  heartbeatIntervalMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Called for every message from the coordinator (tests, benchmarks). */
  onMessage?: (msg: ServerMessage) => void;
  /** Called once when the client gives up for good (bot deleted, token refused). */
  onStopped?: (reason: string) => void;
}

export class BotClient {
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private running: { taskId: string; abort: AbortController } | null = null;
  /** Assignments that arrived while a task ran: a bot runs one task at a time, in the order it got them. */
  private queued: TaskAssignedMessage["payload"][] = [];
  private connectedOnce: Promise<void>;
  private resolveConnected!: () => void;
  completed = 0;

  constructor(private readonly opts: BotClientOptions) {
    this.connectedOnce = new Promise((r) => (this.resolveConnected = r));
  }

  /** Starts connecting; resolves once the first `connected` message arrives. */
  start(): Promise<void> {
    this.connect();
    return this.connectedOnce;
  }

  /** Stops for good: no reconnect, running task aborted. */
  stop(reason = "stopped"): void {
    if (!this.stopped) this.opts.onStopped?.(reason);
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.running?.abort.abort();
    this.ws?.close(1000, "bot stopping");
  }

  private log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown> = {}) {
    (this.opts.log ?? defaultLog)(level, msg, { bot_id: this.opts.botId, ...fields });
  }

  private connect(): void {
    if (this.stopped) return;
    const url = new URL("/api/v1/ws/control", this.opts.url.replace(/^http/, "ws"));
    url.searchParams.set("bot_id", this.opts.botId);
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on("open", () => {
      this.attempt = 0;
      this.heartbeat = setInterval(
        () => ws.readyState === WebSocket.OPEN && ws.send(HEARTBEAT_FRAME),
        this.opts.heartbeatIntervalMs ?? 30_000,
      );
    });
    ws.on("message", (data) => this.onMessage(data.toString()));
    ws.on("unexpected-response", (_req, res) => {
      this.log("warn", "coordinator refused the connection", { status: res.statusCode });
      if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) {
        this.log("error", "not retrying: check the bot id and token");
        this.stop(`refused with ${res.statusCode}`);
      }
    });
    ws.on("error", (err) => this.log("warn", "socket error", { error: err.message }));
    ws.on("close", (code, reason) => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      if (this.ws === ws) this.ws = null;
      if (this.stopped) return;
      if (code === CLOSE_CODES.botDeleted) {
        this.log("warn", "this bot was deleted on the coordinator; stopping");
        this.stop("bot deleted");
        return;
      }
      if (code === CLOSE_CODES.tokenRevoked) {
        this.log("error", "this bot's token was revoked; stopping (start it again with a new token)");
        this.stop("token revoked");
        return;
      }
      const policy = { baseDelayMs: this.opts.reconnectBaseMs ?? 500, maxDelayMs: this.opts.reconnectMaxMs ?? 30_000 };
      const delayMs = backoffDelayMs(this.attempt++, policy);
      this.log("info", "disconnected; reconnecting", { code, reason: reason.toString(), delay_ms: delayMs });
      this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
    });
  }

  private send(msg: BotMessageInput): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private onMessage(raw: string): void {
    let msg: ServerMessage;
    try {
      msg = JSON.parse(raw) as ServerMessage;
    } catch {
      this.log("warn", "coordinator sent non-JSON", { raw: raw.slice(0, 200) });
      return;
    }
    this.opts.onMessage?.(msg);
    switch (msg.type) {
      case "connected":
        this.log("info", "connected");
        this.resolveConnected();
        return;
      case "task_assigned":
        this.enqueue(msg.payload);
        return;
      case "task_cancelled": {
        this.queued = this.queued.filter((q) => q.task_id !== msg.payload.task_id);
        const running = this.running;
        if (running && running.taskId === msg.payload.task_id) {
          this.log("info", "task cancelled by coordinator", { task_id: running.taskId, reason: msg.payload.reason });
          running.abort.abort();
        }
        return;
      }
      case "error":
        this.log("warn", "coordinator reported an error", msg.payload);
        return;
    }
  }

  private enqueue(p: TaskAssignedMessage["payload"]): void {
    // Re-sent after a reconnect: already running or waiting.
    if (this.running?.taskId === p.task_id || this.queued.some((q) => q.task_id === p.task_id)) return;
    this.queued.push(p);
    if (!this.draining) void this.drain();
  }

  private draining = false;

  /** The one loop that runs tasks: while it drains the queue, nothing else starts a task. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let next = this.queued.shift(); next && !this.stopped; next = this.queued.shift()) await this.runTask(next);
    } finally {
      this.draining = false;
    }
  }

  private async runTask(p: TaskAssignedMessage["payload"]): Promise<void> {
    const abort = new AbortController();
    this.running = { taskId: p.task_id, abort };
    const payload = p.task_payload as { handler?: unknown } | null;
    const name = typeof payload?.handler === "string" ? payload.handler : (this.opts.defaultHandler ?? "echo");
    const handler = this.opts.handlers[name];
    this.log("info", "task started", { task_id: p.task_id, handler: name });
    this.send({ type: "task_started", payload: { task_id: p.task_id } });
    try {
      if (!handler) throw new Error(`this bot has no '${name}' handler`);
      const result = await handler(p.task_payload, {
        taskId: p.task_id,
        attempt: p.attempt ?? 1,
        signal: abort.signal,
        progress: (percent, message) =>
          this.send({ type: "task_progress", payload: { task_id: p.task_id, progress: Math.max(0, Math.min(100, percent)), message } }),
      });
      if (abort.signal.aborted) return;
      this.send({ type: "task_complete", payload: { task_id: p.task_id, success: true, result: result ?? null } });
      this.completed++;
      this.log("info", "task completed", { task_id: p.task_id });
    } catch (err) {
      if (abort.signal.aborted) return;
      this.send({ type: "task_complete", payload: { task_id: p.task_id, success: false, error: (err as Error).message ?? String(err) } });
      this.log("warn", "task failed", { task_id: p.task_id, error: String(err) });
    } finally {
      if (this.running?.abort === abort) this.running = null;
    }
  }
}

function defaultLog(level: string, msg: string, fields?: Record<string, unknown>) {
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}
