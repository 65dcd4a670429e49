/**
 * One Durable Object per bot: holds the bot's hibernating WebSocket, the
 * deadline of the task it runs, its reconnect grace, and retry wake-ups.
 * This file is the connection and the object's surface; what the bot does
 * with its task (deliver, start, settle, take the next) is bot-work.ts.
 *
 * Surface: typed RPC methods; `fetch` only accepts the WebSocket upgrade (the
 * Worker authenticates first). The object knows which bot it is from its own
 * name (see identity.ts), never from an argument. One alarm, armed for the
 * earliest entry of a stored schedule; every alarm entry is idempotent (it
 * re-reads D1 and acts only if the world still needs it), and the object
 * re-arms itself on start.
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSE_CODES, HEARTBEAT_ACK_FRAME, HEARTBEAT_FRAME, type ServerMessage } from "../contracts/ws";
import { isHeld } from "../core/task-machine";
import { getBot, markConnected, markDisconnected } from "../db/bots";
import type { TaskRow } from "../db/schema";
import { getTask } from "../db/tasks";
import { AppError, refusedForGood } from "../errors";
import { type Ctx, createCtx, lingeringCtx } from "../services/context";
import { applyTaskAction } from "../services/lifecycle";
import { countMetric, flushMetrics } from "../services/metrics";
import { publishFleet } from "../services/streams";
import { AlarmSchedule } from "./alarm-schedule";
import { type ParsedFrame, parseBotFrame } from "./bot-frames";
import { BotHealth, HEALTH_CHECK } from "./bot-health";
import { BotInbox } from "./bot-inbox";
import { BotWork, DEADLINE, KEPT_RETRY, RETRY_PREFIX, type ReleaseInfo } from "./bot-work";
import { countingWrites, type WriteCount } from "./counted-storage";
import { FleetActivity } from "./fleet-activity";
import { resolveObjectName } from "./identity";
import { KeptResult } from "./kept-result";
import { KeptValue } from "./kept-value";
import { WriteBehind } from "./write-behind";

const CAPABILITIES_KEY = "capabilities";
const GRACE = "grace";
/** A socket that closed: recorded in D1 this long after, unless the bot is back by then (a reconnect then costs no disconnect write). */
const DISCONNECT = "disconnect";
const DISCONNECT_REASON_KEY = "disconnect_reason";
const DISCONNECT_DEFER_MS = 1000;

interface SocketAttachment {
  connectedAtMs: number;
  /** The API token the socket was opened with (null: the ADMIN_TOKEN secret, or AUTH_MODE=open). */
  tokenId: string | null;
}

/** Set by the Worker on the upgrade it forwards, after it authenticated the caller. */
export const TOKEN_ID_HEADER = "X-Clawbot-Token-Id";

export class BotSession extends DurableObject<Env> {
  private readonly ctxBase: Ctx;
  /** This object's storage, its writes counted (counted-storage.ts): the hot path is meant to make none per task. */
  private readonly storage: DurableObjectStorage;
  readonly storageWrites: WriteCount = { count: 0 };
  private readonly alarms: AlarmSchedule;
  private readonly activity: FleetActivity;
  private readonly health: BotHealth;
  /** The bot's result written behind (kept-result.ts). */
  private readonly kept: KeptResult;
  /** The fleet activity merge and the health window, flushed a moment later (write-behind.ts). */
  private readonly writeBehind: WriteBehind;
  /** This object's bot; null only for an instance nobody ever addressed by name. */
  private botId: string | null = null;
  /** The bot's capabilities as D1 said at its last connect (null: it never connected). */
  private readonly capabilities: KeptValue<string[] | null>;
  /** The task the bot holds and the next it takes (bot-work.ts). */
  private readonly work: BotWork;

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    this.ctxBase = createCtx(env);
    // Answered by the runtime without waking this object: heartbeats cost nothing.
    state.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_FRAME, HEARTBEAT_ACK_FRAME));
    this.storage = countingWrites(state.storage, this.storageWrites);
    this.alarms = new AlarmSchedule(this.storage);
    this.capabilities = new KeptValue<string[] | null>(this.storage, CAPABILITIES_KEY, () => null);
    this.writeBehind = new WriteBehind(
      () => this.flushWriteBehind(),
      (err) => this.ctxBase.log.error("write-behind failed", { bot_id: this.botId, error: String(err) }),
    );
    this.activity = new FleetActivity(this.writeBehind);
    this.health = new BotHealth(this.storage, this.alarms, this.writeBehind, this.ctxBase.config.healthPolicy);
    this.kept = new KeptResult(this.storage);
    this.work = new BotWork({
      botId: () => this.botId,
      socket: () => this.openSockets()[0],
      send: (ws, msg) => this.send(ws, msg),
      refuse: (ws, code, message, details) => this.sendError(ws, code, message, details),
      alarms: this.alarms,
      health: this.health,
      activity: this.activity,
      capabilities: this.capabilities,
      inbox: this.inbox,
      kept: this.kept,
      lingering: lingeringCtx,
    });
    state.blockConcurrencyWhile(async () => {
      this.botId = await resolveObjectName(state, env.BOT_SESSION);
      // Re-arm on start: an alarm may have been lost with a killed runtime.
      await this.alarms.rearm();
      // A result the bot was told of before a restart reaches D1 (not awaited: the object answers meanwhile, and whoever reads the task waits for it).
      if (await this.kept.unapplied()) void this.work.settleKept(this.scoped());
    });
  }

  // ---------------------------------------------------------------- WebSocket

  async fetch(request: Request): Promise<Response> {
    const botId = this.botId;
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket" || !botId) {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const ctx = this.scoped();
    // One D1 round trip: mark connected, read the bot back, and the tasks it could take (with the capabilities it had last time).
    const knownCapabilities = await this.capabilities.get();
    const pull = knownCapabilities ? { capabilities: knownCapabilities } : null;
    // The connect counts in the bot's health; a score it moves rides in the same write.
    const healthScore = await this.health.connect(ctx, botId);
    const { bot, dispatchable } = await markConnected(ctx.db, botId, ctx.now(), pull, healthScore);
    if (!bot) return new Response("unknown bot", { status: 404 });
    const capabilitiesChanged = JSON.stringify(knownCapabilities) !== JSON.stringify(bot.capabilities);
    if (capabilitiesChanged) await this.capabilities.set(bot.capabilities);

    // A reconnect replaces an older socket (a bot holds one connection).
    for (const old of this.ctx.getWebSockets()) old.close(CLOSE_CODES.replaced, "replaced by a newer connection");

    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({
      connectedAtMs: ctx.now(),
      tokenId: request.headers.get(TOKEN_ID_HEADER) || null,
    } satisfies SocketAttachment);
    await this.alarms.clear(GRACE);
    await this.alarms.clear(DISCONNECT); // back before the close was recorded: nothing to record
    this.send(server, {
      type: "connected",
      payload: { bot_id: botId, heartbeat_interval_s: ctx.config.heartbeatIntervalS, server_time: new Date(ctx.now()).toISOString() },
    });
    ctx.log.info("bot connected");
    countMetric("clawbot_websocket_connects_total");
    await publishFleet(ctx, {
      type: "bot",
      data: {
        bot_id: botId,
        name: bot.name,
        status: bot.currentTaskId ? "busy" : "online",
        capabilities: bot.capabilities,
        current_task_id: bot.currentTaskId,
        tasks_completed: bot.tasksCompleted,
        tasks_failed: bot.tasksFailed,
      },
    });

    if (bot.currentTaskId) {
      // Back within the grace period: tell the bot its task again.
      const task = await getTask(ctx.db, bot.currentTaskId);
      if (task && isHeld(task.status) && task.botId === botId) await this.work.resume(ctx, task, server); // the connect's fleet event named it
    } else {
      // Read with the capabilities kept from last time: nothing due for them, nothing to claim. With none kept,
      // or capabilities changed since, the claim itself decides.
      if (!pull || capabilitiesChanged || dispatchable.length > 0) await this.work.claimBest(ctx, server, bot.capabilities);
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A bot's messages, applied one at a time in the order it sent them (start before complete). */
  private readonly inbox = new BotInbox();

  async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // handleMessage logs its own failures; what the message counted goes to the metrics store (at most once a second).
    return this.inbox.push(parseBotFrame(raw), (frame) => this.handleMessage(ws, frame)).finally(() => flushMetrics(this.ctxBase));
  }

  private async handleMessage(ws: WebSocket, frame: ParsedFrame): Promise<void> {
    const botId = this.botId;
    if (!botId) return;
    const ctx = this.scoped();
    if (!frame.ok) return this.sendError(ws, frame.code, frame.message, frame.details);
    const msg = frame.msg;
    try {
      switch (msg.type) {
        case "heartbeat":
          this.send(ws, { type: "heartbeat_ack" });
          return;
        // Awaited here, not returned: a refusal must reach the catch below.
        case "task_progress":
          await this.work.progress(ctx, ws, botId, msg.payload);
          return;
        case "task_log":
          await this.work.log(ctx, ws, msg.payload);
          return;
        case "task_started":
          await this.work.started(ctx, ws, botId, msg.payload.task_id);
          return;
        case "task_complete":
          await this.work.result(ctx, ws, botId, msg.payload);
          return;
      }
    } catch (err) {
      if (err instanceof AppError) {
        // A duplicate result, or one for a task that moved on (finished, cancelled, given to another bot),
        // is answered as refused for good, never applied twice: the bot can drop it.
        const current = err.details.status as string | undefined;
        if ((msg.type === "task_complete" || msg.type === "task_started") && refusedForGood(err) && current) {
          this.send(ws, { type: "task_ack", payload: { task_id: msg.payload.task_id, status: current, applied: false, ack_of: msg.type } });
          return;
        }
        return this.sendError(ws, err.code, err.message, err.details);
      }
      ctx.log.error("bot message failed", { type: msg.type, error: String(err) });
      this.sendError(ws, "internal_error", "the coordinator could not process this message");
    }
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Answer the bot's close frame, so its client sees the close at once instead of timing out waiting for it.
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      // already closed
    }
    await this.onSocketGone(ws, `closed ${code}${reason ? `: ${reason}` : ""}`);
  }

  async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    await this.onSocketGone(ws, `error: ${String(error)}`);
  }

  /**
   * The socket closed. D1 learns it a moment later (DISCONNECT_DEFER_MS), unless the bot is back by then:
   * a quick reconnect then costs the connect alone. Meanwhile dispatch may still offer this bot work; the
   * offer finds no socket, hands the task back and records the disconnect at once (offerTask, deliverClaimed).
   */
  private async onSocketGone(ws: WebSocket, reason: string): Promise<void> {
    if (this.openSockets().some((s) => s !== ws)) return; // replaced by a newer connection
    await this.storage.put(DISCONNECT_REASON_KEY, reason);
    await this.alarms.set(DISCONNECT, Date.now() + DISCONNECT_DEFER_MS);
  }

  /** The socket is gone: record it, and give a bot holding a task time to come back. */
  private async startGrace(ctx: Ctx, reason: string): Promise<void> {
    if (!this.botId) return;
    await this.alarms.clear(DISCONNECT);
    const bot = await markDisconnected(ctx.db, this.botId, ctx.now(), reason);
    if (bot?.currentTaskId) await this.alarms.set(GRACE, ctx.now() + ctx.config.botReconnectGraceMs);
    ctx.log.info("bot disconnected", { reason, current_task_id: bot?.currentTaskId ?? null });
    countMetric("clawbot_websocket_disconnects_total");
    void flushMetrics(ctx);
    await publishFleet(ctx, {
      type: "bot",
      data: { bot_id: this.botId, status: "disconnected", current_task_id: bot?.currentTaskId ?? null },
    });
  }

  // ---------------------------------------------------------------- RPC

  /**
   * Whoever reads or changes a task this bot holds, by id, asks this first: a result the bot was
   * told of but D1 does not have yet is written before the caller reads (kept-result.ts). True if
   * there was one, or if `taskId`'s was kept and written meanwhile (either way the caller reads again).
   */
  async settleResult(taskId?: string): Promise<boolean> {
    return this.work.settleKept(this.scoped(), taskId);
  }

  /**
   * Automatic dispatch: take this task if this bot is connected and idle. The
   * caller's row is enough: the claim is conditional on its version. Returns
   * the claimed row (the caller answers with it, no re-read), or null.
   */
  async offerTask(task: TaskRow): Promise<TaskRow | null> {
    const ws = this.openSockets()[0];
    if (!ws) {
      await this.wake(); // D1 thought this bot was connected: correct it so dispatch stops offering
      return null;
    }
    if (task.status !== "pending") return null;
    return this.work.claimAndSend(this.scoped(), ws, task);
  }

  /**
   * A task D1 already gave this bot (created and claimed in one batch): send it.
   * If the socket is gone (D1 thought the bot connected), the task goes back to
   * the queue with its attempt not counted, D1 learns the bot is gone, and false
   * tells the caller to dispatch it elsewhere.
   */
  async deliverClaimed(task: TaskRow): Promise<boolean> {
    const ctx = this.scoped();
    const ws = this.openSockets()[0];
    if (ws && task.botId === this.botId) {
      await this.work.deliver(ctx, ws, task);
      return true;
    }
    await applyTaskAction(ctx, task.id, { kind: "unassign", reason: "the bot's socket was gone" }, { knownRow: task, fromHolder: true });
    await this.wake();
    return false;
  }

  /**
   * A task this bot holds was assigned, started or re-broadcast through REST:
   * track its deadline and (with `push`) send it to the bot. True if a socket is open.
   */
  async taskAssigned(taskId: string, push = true): Promise<boolean> {
    const task = await getTask(this.ctxBase.db, taskId);
    if (!task || task.botId !== this.botId || !isHeld(task.status)) return false;
    const ws = this.openSockets()[0];
    await this.work.holding(this.scoped(), task, push ? ws : undefined);
    return Boolean(ws);
  }

  /** A task left this bot (completed, failed, cancelled, timed out, deleted) outside this object. */
  async taskReleased(taskId: string, info: ReleaseInfo): Promise<void> {
    await this.work.released(this.scoped(), taskId, info);
  }

  /** An admin cleared the bot's health: a fresh window, no quarantine; it takes work again. */
  async clearHealth(): Promise<void> {
    if (!this.botId) return;
    const ctx = this.scoped();
    await this.health.clear(ctx, this.botId);
    await this.work.pullNextTask(ctx);
  }

  /** The health alarm's work with a given clock (the alarm passes the real one; tests their own). */
  async checkHealth(nowMs: number): Promise<void> {
    if (!this.botId) return;
    await this.onHealthCheck({ ...this.scoped(), now: () => nowMs }, this.botId);
  }

  /** The bot may take work again (hold released, sweeper kick). */
  async wake(): Promise<void> {
    const ctx = this.scoped();
    if (this.openSockets().length === 0) {
      const bot = this.botId ? await getBot(ctx.db, this.botId) : undefined;
      // D1 says connected but no socket survived (runtime restart): correct it, with the usual grace.
      if (bot?.connected) await this.startGrace(ctx, "socket lost with a runtime restart");
      return;
    }
    await this.work.pullNextTask(ctx);
  }

  /**
   * The sweeper's liveness check: true if this bot's socket is open. If D1 says connected but no socket
   * survived (a runtime restart), D1 is corrected, with the usual grace. Takes no work (idle bots pull at
   * their own moments; the sweeper dispatches due tasks itself) and costs no D1 for a healthy bot.
   */
  async checkSocket(): Promise<boolean> {
    if (this.openSockets().length > 0) return true;
    const ctx = this.scoped();
    const bot = this.botId ? await getBot(ctx.db, this.botId) : undefined;
    if (bot?.connected) await this.startGrace(ctx, "socket lost with a runtime restart");
    return false;
  }

  /** Tokens were revoked: every socket opened with one of them closes at once, so nothing more is offered to or taken from it. */
  async tokensRevoked(tokenIds: string[]): Promise<number> {
    let closed = 0;
    for (const ws of this.ctx.getWebSockets()) {
      const { tokenId } = ws.deserializeAttachment() as SocketAttachment;
      if (tokenId && tokenIds.includes(tokenId)) {
        ws.close(CLOSE_CODES.tokenRevoked, "token revoked");
        closed++;
      }
    }
    if (closed) this.scoped().log.info("sockets closed: token revoked", { token_ids: tokenIds, closed });
    return closed;
  }

  async isConnected(): Promise<boolean> {
    return this.openSockets().length > 0;
  }

  /** The bot was deleted: close its socket and forget everything. */
  async shutdown(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) ws.close(CLOSE_CODES.botDeleted, "bot deleted");
    await this.storage.deleteAlarm();
    await this.storage.deleteAll();
    this.capabilities.forget();
    this.alarms.forget();
    this.health.forget();
    this.kept.forget();
    this.activity.forget();
    this.writeBehind.cancel();
  }

  // ---------------------------------------------------------------- alarm

  async alarm(): Promise<void> {
    const ctx = this.scoped();
    // Taken first, whatever follows: the schedule must learn that its alarm has rung, or it would not arm it again.
    const due = await this.alarms.takeDue(ctx.now());
    if (!this.botId) return;
    for (const key of due) {
      try {
        if (key === DEADLINE) await this.work.deadlineDue(ctx, this.botId);
        else if (key === DISCONNECT) await this.onDisconnectDue(ctx);
        else if (key === GRACE) await this.onGraceExpired(ctx, this.botId);
        else if (key === HEALTH_CHECK) await this.onHealthCheck(ctx, this.botId);
        else if (key.startsWith(RETRY_PREFIX)) await this.work.retryDue(ctx, key.slice(RETRY_PREFIX.length));
        else if (key === KEPT_RETRY) await this.work.settleKept(ctx);
      } catch (err) {
        ctx.log.error("alarm entry failed; the sweeper will reconcile", { entry: key, error: String(err) });
      }
    }
    await flushMetrics(ctx);
  }

  /** What waited in memory: the fleet's merged activity event, the health window's storage write. */
  private async flushWriteBehind(): Promise<void> {
    if (this.botId) this.activity.flush(this.scoped(), this.botId);
    await this.health.persist(() => this.kept.forgetApplied());
  }

  /** The health window slid: a quarantined bot may have recovered (then it takes work at once). */
  private async onHealthCheck(ctx: Ctx, botId: string): Promise<void> {
    if ((await this.health.reevaluate(ctx, botId)) === "recovered") await this.work.pullNextTask(ctx);
  }

  private async onDisconnectDue(ctx: Ctx): Promise<void> {
    if (this.openSockets().length > 0) return; // back in time
    await this.startGrace(ctx, (await this.storage.get<string>(DISCONNECT_REASON_KEY)) ?? "closed");
  }

  private async onGraceExpired(ctx: Ctx, botId: string): Promise<void> {
    if (this.openSockets().length > 0) return; // came back in time
    await this.work.settleKept(ctx); // a result the bot was told of is its task's outcome, not a loss
    // No socket and no grace left: the held task goes back to the queue (or fails for good).
    const bot = await getBot(ctx.db, botId);
    if (bot?.connected) await markDisconnected(ctx.db, botId, ctx.now(), "socket lost");
    if (!bot?.currentTaskId) return;
    await this.work.settleOwnTask(ctx, bot.currentTaskId, {
      kind: "fail",
      code: "bot_lost",
      error: `bot ${botId} disconnected and did not return within ${ctx.config.botReconnectGraceMs / 1000}s`,
      retry: true,
    });
  }

  private openSockets(): WebSocket[] {
    return this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  private send(ws: WebSocket, msg: ServerMessage): void {
    try {
      ws.send(JSON.stringify(msg));
    } catch {
      // The socket closed under us; webSocketClose handles the consequences.
    }
  }

  private sendError(ws: WebSocket, code: string, message: string, details: Record<string, unknown> = {}): void {
    this.send(ws, { type: "error", payload: { code, message, details } });
  }

  /** Each event this object handles (message, RPC, alarm) gets its own request_id for the logs. */
  private scoped(): Ctx {
    return {
      ...this.ctxBase,
      log: this.ctxBase.log.child({ bot_id: this.botId, component: "bot_session", request_id: crypto.randomUUID() }),
    };
  }
}
