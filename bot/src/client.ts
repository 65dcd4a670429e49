/**
 * The OpenClaw bot side of the control WebSocket: connects, heartbeats,
 * reconnects with exponential backoff + jitter, runs one task at a time
 * through pluggable handlers and reports progress and results.
 *
 * Delivery: every outcome is kept (ledger.ts) until the coordinator acks it and
 * is sent again after each reconnect; an assignment pushed again for a task
 * this bot already finished is answered with the kept outcome, not run twice.
 */
import WebSocket from "ws";
import type { BotMessageInput, ServerMessage, TaskAssignedMessage } from "../../src/contracts/ws";
import { CLOSE_CODES, HEARTBEAT_FRAME } from "../../src/contracts/ws-frames";
import { backoffDelayMs } from "../../src/core/backoff";
import { ArtifactTransfer } from "./artifacts";
import type { TaskHandler } from "./handlers";
import { type Outcome, OutcomeLedger } from "./ledger";

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
  /** Where unacknowledged outcomes and finished task ids survive a restart of this process (none: memory only). */
  stateFile?: string | null;
}

/** Error codes that refuse a result for good (the task moved on): sending it again cannot help. */
const FINAL_REFUSALS = new Set(["not_found", "forbidden", "invalid_transition", "validation_failed"]);

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
  private readonly ledger: OutcomeLedger;
  /** Kept outcomes already sent on the current connection (a repeated assignment need not trigger another copy). */
  private outcomesSentOnThisConnection = new Set<string>();
  completed = 0;
  /** Handler runs started by this process (a task run twice counts twice). */
  executions = 0;

  private readonly files: ArtifactTransfer;

  constructor(private readonly opts: BotClientOptions) {
    this.files = new ArtifactTransfer(opts.url, opts.token);
    this.connectedOnce = new Promise((r) => (this.resolveConnected = r));
    this.ledger = new OutcomeLedger(opts.stateFile ?? null, 500, (msg, fields) => this.log("warn", msg, fields));
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
    // No permessage-deflate: the control frames are a few hundred bytes of JSON, which deflate barely
    // shrinks, and each one compressed and inflated cost the coordinator's workerd about a twentieth of
    // its CPU per task (perf, BENCH_PROFILE=perf) besides a zlib context per socket held for the connection.
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${this.opts.token}` },
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
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
      case "connected": {
        this.outcomesSentOnThisConnection = new Set();
        const unacked = this.ledger.unacknowledged();
        this.log("info", "connected", unacked.length ? { resending_outcomes: unacked.length } : {});
        for (const kept of unacked) this.sendOutcome(kept.outcome);
        this.resolveConnected();
        return;
      }
      case "task_assigned":
        this.enqueue(msg.payload);
        return;
      case "task_ack": {
        const { task_id, applied, status, ack_of } = msg.payload;
        // Seed-era coordinators send no `ack_of`: an ack that leaves the task held answers `task_started`.
        const answersResult = ack_of ? ack_of === "task_complete" : status !== "assigned" && status !== "in_progress";
        if (answersResult && this.ledger.acknowledge(task_id) && !applied)
          this.log("warn", "coordinator refused this result for good (the task moved on)", { task_id, status });
        return;
      }
      case "task_cancelled": {
        this.queued = this.queued.filter((q) => q.task_id !== msg.payload.task_id);
        const running = this.running;
        if (running && running.taskId === msg.payload.task_id) {
          this.log("info", "task cancelled by coordinator", { task_id: running.taskId, reason: msg.payload.reason });
          running.abort.abort();
        }
        return;
      }
      case "error": {
        this.log("warn", "coordinator reported an error", msg.payload);
        const taskId = msg.payload.details?.task_id;
        if (typeof taskId === "string" && FINAL_REFUSALS.has(msg.payload.code) && this.ledger.acknowledge(taskId))
          this.log("warn", "dropping a result the coordinator refused for good", { task_id: taskId, code: msg.payload.code });
        return;
      }
    }
  }

  private enqueue(p: TaskAssignedMessage["payload"]): void {
    // Re-sent after a reconnect: already running or waiting.
    if (this.running?.taskId === p.task_id || this.queued.some((q) => q.task_id === p.task_id)) return;
    // Already finished here (its result may have been lost with the connection): answer with it, do not run it again.
    const kept = this.ledger.keptFor(p.task_id, p.attempt ?? 1);
    if (kept) {
      if (this.outcomesSentOnThisConnection.has(p.task_id)) return;
      this.log("info", "task already finished here; sending the kept result instead of running it again", { task_id: p.task_id });
      this.ledger.reopen(p.task_id);
      this.sendOutcome(kept.outcome);
      return;
    }
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
    this.executions++;
    this.log("info", "task started", { task_id: p.task_id, handler: name, attempt: p.attempt ?? 1 });
    this.send({ type: "task_started", payload: { task_id: p.task_id } });
    try {
      if (!handler) throw new Error(`this bot has no '${name}' handler`);
      const result = await handler(p.task_payload, {
        taskId: p.task_id,
        attempt: p.attempt ?? 1,
        signal: abort.signal,
        progress: (percent, message) =>
          this.send({ type: "task_progress", payload: { task_id: p.task_id, progress: Math.max(0, Math.min(100, percent)), message } }),
        log: (stream, lines) => {
          // The coordinator takes up to 200 lines of up to 4,000 characters per message.
          for (let i = 0; i < lines.length; i += 200) {
            const chunk = lines.slice(i, i + 200).map((l) => l.slice(0, 4000));
            this.send({ type: "task_log", payload: { task_id: p.task_id, stream, lines: chunk } });
          }
        },
        upload: (name, data, contentType, kind) => this.files.upload(p.task_id, name, data, contentType, kind),
        inputs: p.input_artifacts ?? [],
        download: (input) => this.files.download(input),
      });
      if (abort.signal.aborted) return;
      this.finish(p, { task_id: p.task_id, success: true, result: result ?? null });
      this.completed++;
      this.log("info", "task completed", { task_id: p.task_id });
    } catch (err) {
      if (abort.signal.aborted) return;
      this.finish(p, { task_id: p.task_id, success: false, error: (err as Error).message ?? String(err) });
      this.log("warn", "task failed", { task_id: p.task_id, error: String(err) });
    } finally {
      if (this.running?.abort === abort) this.running = null;
    }
  }

  /** Kept first, then sent: if the connection is down now, the reconnect sends it. */
  private finish(p: TaskAssignedMessage["payload"], outcome: Outcome): void {
    this.ledger.record(p.task_id, p.attempt ?? 1, outcome);
    this.sendOutcome(outcome);
  }

  private sendOutcome(outcome: Outcome): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.outcomesSentOnThisConnection.add(outcome.task_id);
    this.send({ type: "task_complete", payload: outcome });
  }
}

function defaultLog(level: string, msg: string, fields?: Record<string, unknown>) {
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}
