/**
 * One Durable Object per bot: holds the bot's hibernating WebSocket, the
 * deadline of the task it runs, its reconnect grace, and retry wake-ups.
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
import type { Attempt } from "../core/health";
import { isHeld, type TaskAction, taskDeadlineMs } from "../core/task-machine";
import { getBot, markConnected, markDisconnected } from "../db/bots";
import type { TaskRow } from "../db/schema";
import { claimBestTask } from "../db/task-claims";
import { type BotTaskCounts, recordProgress } from "../db/task-writes";
import { getTask } from "../db/tasks";
import { AppError } from "../errors";
import { type Ctx, createCtx } from "../services/context";
import { claimForBot, dispatchReleasedSteps, dispatchTask } from "../services/dispatch";
import { publishStepAssigned, publishStepLog, publishStepProgress } from "../services/job-events";
import { applyTaskAction, type TransitionOutcome } from "../services/lifecycle";
import { countDispatch, countMetric, flushMetrics } from "../services/metrics";
import { publishFleet } from "../services/streams";
import { AlarmSchedule } from "./alarm-schedule";
import { assignmentOf, type ParsedFrame, parseBotFrame } from "./bot-frames";
import { BotHealth, HEALTH_CHECK } from "./bot-health";
import { BotInbox } from "./bot-inbox";
import { countingWrites, type WriteCount } from "./counted-storage";
import { type ActivityChange, FleetActivity } from "./fleet-activity";
import { resolveObjectName } from "./identity";
import { KeptValue } from "./kept-value";
import { WriteBehind } from "./write-behind";

const CAPABILITIES_KEY = "capabilities";
const DEADLINE = "deadline";
const GRACE = "grace";
/** A socket that closed: recorded in D1 this long after, unless the bot is back by then (a reconnect then costs no disconnect write). */
const DISCONNECT = "disconnect";
const DISCONNECT_REASON_KEY = "disconnect_reason";
const DISCONNECT_DEFER_MS = 1000;
const RETRY_PREFIX = "retry:";
/** Pending tasks a connecting bot's first write reads, to know whether a claim is worth its round trip. */
const PULL_BATCH = 5;
/** A task's progress reaches D1 at most this often (every message still reaches the job's watchers). */
const PROGRESS_WRITE_INTERVAL_MS = 1000;

interface SocketAttachment {
  connectedAtMs: number;
  /** The API token the socket was opened with (null: the ADMIN_TOKEN secret, or AUTH_MODE=open). */
  tokenId: string | null;
}

/** Set by the Worker on the upgrade it forwards, after it authenticated the caller. */
export const TOKEN_ID_HEADER = "X-Clawbot-Token-Id";

export interface ReleaseInfo {
  notify: boolean;
  reason: string;
  retryAtMs: number | null;
  /** The bot's finished attempts after the release (null: unknown, e.g. a deleted task). */
  counts: BotTaskCounts | null;
  /** The attempt the release ended, for the bot's health (null: it does not count). */
  attempt?: Attempt | null;
}

export class BotSession extends DurableObject<Env> {
  private readonly ctxBase: Ctx;
  /** This object's storage, its writes counted (counted-storage.ts): the hot path is meant to make none per task. */
  private readonly storage: DurableObjectStorage;
  readonly storageWrites: WriteCount = { count: 0 };
  private readonly alarms: AlarmSchedule;
  private readonly activity: FleetActivity;
  private readonly health: BotHealth;
  /** The fleet activity merge and the health window, flushed a moment later (write-behind.ts). */
  private readonly writeBehind: WriteBehind;
  /** This object's bot; null only for an instance nobody ever addressed by name. */
  private botId: string | null = null;
  /**
   * The row of the task this bot holds, as of this object's last read or write of it: the bot's
   * start and result are decided on it without reading D1 first (lifecycle's `knownRow`; the
   * write is version-guarded, so a stale copy costs a re-read, never a wrong write). Memory only.
   */
  private heldTask: TaskRow | null = null;
  /** The bot's capabilities as D1 said at its last connect (null: it never connected). */
  private readonly capabilities: KeptValue<string[] | null>;
  /** When each task's progress was last written to D1 (coalescing; memory only). */
  private readonly progressWrittenAtMs = new Map<string, number>();

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
    state.blockConcurrencyWhile(async () => {
      this.botId = await resolveObjectName(state, env.BOT_SESSION);
      // Re-arm on start: an alarm may have been lost with a killed runtime.
      await this.alarms.rearm();
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
    const pull = knownCapabilities ? { capabilities: knownCapabilities, limit: PULL_BATCH } : null;
    // The connect counts in the bot's health; a score it moves rides in the same write.
    const healthScore = await this.health.connect(ctx, botId);
    const { bot, dispatchable } = await markConnected(ctx.db, botId, ctx.now(), pull, healthScore);
    if (!bot) return new Response("unknown bot", { status: 404 });
    if (JSON.stringify(knownCapabilities) !== JSON.stringify(bot.capabilities)) {
      await this.capabilities.set(bot.capabilities);
    }

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
      if (task && isHeld(task.status) && task.botId === botId) {
        this.heldTask = task;
        await this.sendAssignment(server, task);
        await this.trackDeadline(task);
      }
    } else {
      // What was read with the capabilities kept from last time, filtered by the current ones (they may have
      // changed): nothing there, nothing to claim. Otherwise (or with no capabilities kept) the claim itself chooses.
      const canTake = (t: TaskRow) => t.capability === null || bot.capabilities.includes(t.capability);
      if (!pull || dispatchable.some(canTake)) await this.claimBest(ctx, server, bot.capabilities);
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
        case "task_progress": {
          const { task_id, progress, message } = msg.payload;
          // D1 takes a task's progress at most once a second (the row and the job follow); watchers get every message.
          const held = this.heldTask?.id === task_id ? this.heldTask : null;
          const lastWriteMs = this.progressWrittenAtMs.get(task_id) ?? 0;
          if (!held || ctx.now() - lastWriteMs >= PROGRESS_WRITE_INTERVAL_MS) {
            const jobId = held?.jobId ?? null;
            const applied = await recordProgress(ctx.db, { taskId: task_id, botId, jobId }, progress, message ?? null, ctx.now());
            if (!applied) return this.sendError(ws, "invalid_transition", "progress for a task this bot does not hold", { task_id });
            this.progressWrittenAtMs.set(task_id, ctx.now());
          }
          if (held?.jobId) await publishStepProgress(ctx, held, progress, message ?? null);
          return;
        }
        case "task_log": {
          const { task_id, stream, lines } = msg.payload;
          const held = this.heldTask?.id === task_id ? this.heldTask : null;
          if (!held) return this.sendError(ws, "invalid_transition", "log lines for a task this bot does not hold", { task_id });
          if (held.jobId) await publishStepLog(ctx, held, stream, lines);
          return;
        }
        case "task_started": {
          if (await this.startRidesWithResult(ctx, msg.payload.task_id)) {
            this.send(ws, {
              type: "task_ack",
              payload: { task_id: msg.payload.task_id, status: "in_progress", applied: true, ack_of: "task_started" },
            });
            return;
          }
          const outcome = await applyTaskAction(ctx, msg.payload.task_id, { kind: "start" }, this.reportOptions());
          this.heldTask = isHeld(outcome.task.status) && outcome.task.botId === botId ? outcome.task : null;
          await this.trackDeadline(outcome.task);
          this.send(ws, {
            type: "task_ack",
            payload: { task_id: outcome.task.id, status: outcome.task.status, applied: true, ack_of: "task_started" },
          });
          return;
        }
        case "task_complete": {
          const { task_id, success, result, error } = msg.payload;
          const action: TaskAction = success
            ? { kind: "complete", result, reporterBotId: botId }
            : { kind: "fail", code: "bot_error", error: error ?? "bot reported failure", retry: true };
          // The bot hears that its result was applied before it is offered anything else.
          await this.settleOwnTask(ctx, task_id, action, (outcome) =>
            this.send(ws, { type: "task_ack", payload: { task_id, status: outcome.task.status, applied: true, ack_of: "task_complete" } }),
          );
          return;
        }
      }
    } catch (err) {
      if (err instanceof AppError) {
        // A duplicate result, or one for a task that moved on (finished, cancelled, given to another bot),
        // is answered as refused for good, never applied twice: the bot can drop it.
        const current = err.details.status as string | undefined;
        const refusedForGood = err.code === "invalid_transition" || err.code === "forbidden";
        if ((msg.type === "task_complete" || msg.type === "task_started") && refusedForGood && current) {
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
    return this.claimAndSend(this.scoped(), ws, task);
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
      await this.deliver(ctx, ws, task);
      return true;
    }
    await applyTaskAction(ctx, task.id, { kind: "unassign", reason: "the bot's socket was gone" }, { knownRow: task });
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
    this.heldTask = task;
    await this.trackDeadline(task);
    this.noteActivity(this.scoped(), { currentTaskId: task.id });
    const ws = this.openSockets()[0];
    if (ws && push) await this.sendAssignment(ws, task);
    return Boolean(ws);
  }

  /** A task left this bot (completed, failed, cancelled, timed out, deleted) outside this object. */
  async taskReleased(taskId: string, info: ReleaseInfo): Promise<void> {
    if (this.heldTask?.id === taskId) this.heldTask = null;
    const ws = this.openSockets()[0];
    if (ws && info.notify) this.send(ws, { type: "task_cancelled", payload: { task_id: taskId, reason: info.reason } });
    if (info.retryAtMs !== null) await this.alarms.set(RETRY_PREFIX + taskId, info.retryAtMs);
    const ctx = this.scoped();
    if (info.attempt) await this.noteAttempt(ctx, info.attempt);
    this.noteActivity(ctx, { currentTaskId: null, counts: info.counts });
    await this.pullNextTask(ctx);
  }

  /** An admin cleared the bot's health: a fresh window, no quarantine; it takes work again. */
  async clearHealth(): Promise<void> {
    if (!this.botId) return;
    const ctx = this.scoped();
    await this.health.clear(ctx, this.botId);
    await this.pullNextTask(ctx);
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
    await this.pullNextTask(ctx);
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
        if (key === DEADLINE) await this.onDeadline(ctx, this.botId);
        else if (key === DISCONNECT) await this.onDisconnectDue(ctx);
        else if (key === GRACE) await this.onGraceExpired(ctx, this.botId);
        else if (key === HEALTH_CHECK) await this.onHealthCheck(ctx, this.botId);
        else if (key.startsWith(RETRY_PREFIX)) await this.onRetryDue(ctx, key.slice(RETRY_PREFIX.length));
      } catch (err) {
        ctx.log.error("alarm entry failed; the sweeper will reconcile", { entry: key, error: String(err) });
      }
    }
    await flushMetrics(ctx);
  }

  /** What waited in memory: the fleet's merged activity event, the health window's storage write. */
  private async flushWriteBehind(): Promise<void> {
    if (this.botId) this.activity.flush(this.scoped(), this.botId);
    await this.health.persist();
  }

  private async onDeadline(ctx: Ctx, botId: string): Promise<void> {
    // D1 decides, not this object's copy: the entry may be early (kept from an earlier task, see trackDeadline).
    const bot = await getBot(ctx.db, botId);
    if (!bot?.currentTaskId) return;
    const task = await getTask(ctx.db, bot.currentTaskId);
    if (!task || task.botId !== botId || !isHeld(task.status)) return;
    const deadline = deadlineOf(task);
    if (deadline !== null && deadline > ctx.now()) return this.alarms.set(DEADLINE, deadline); // early or restarted: not due yet
    const timeout: TaskAction = { kind: "fail", code: "timeout", error: `no result within ${task.timeoutSeconds}s`, retry: true };
    // The bot is told to stop before it is offered its next task.
    await this.settleOwnTask(ctx, task.id, timeout, () => {
      const ws = this.openSockets()[0];
      if (ws) this.send(ws, { type: "task_cancelled", payload: { task_id: task.id, reason: "timeout" } });
    });
  }

  /** The health window slid: a quarantined bot may have recovered (then it takes work at once). */
  private async onHealthCheck(ctx: Ctx, botId: string): Promise<void> {
    if ((await this.health.reevaluate(ctx, botId)) === "recovered") await this.pullNextTask(ctx);
  }

  private async onDisconnectDue(ctx: Ctx): Promise<void> {
    if (this.openSockets().length > 0) return; // back in time
    await this.startGrace(ctx, (await this.storage.get<string>(DISCONNECT_REASON_KEY)) ?? "closed");
  }

  private async onGraceExpired(ctx: Ctx, botId: string): Promise<void> {
    if (this.openSockets().length > 0) return; // came back in time
    // No socket and no grace left: the held task goes back to the queue (or fails for good).
    const bot = await getBot(ctx.db, botId);
    if (bot?.connected) await markDisconnected(ctx.db, botId, ctx.now(), "socket lost");
    if (!bot?.currentTaskId) return;
    await this.settleOwnTask(ctx, bot.currentTaskId, {
      kind: "fail",
      code: "bot_lost",
      error: `bot ${botId} disconnected and did not return within ${ctx.config.botReconnectGraceMs / 1000}s`,
      retry: true,
    });
  }

  private async onRetryDue(ctx: Ctx, taskId: string): Promise<void> {
    await this.pullNextTask(ctx);
    await dispatchTask(ctx, taskId);
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Settles the task this bot holds, then does the follow-ups locally: forget
   * the deadline, schedule a retry wake-up, take the next task, and dispatch a
   * released workflow step to whoever can run it. With a socket open, the next
   * task is claimed in the same D1 batch as the settlement.
   */
  private async settleOwnTask(
    ctx: Ctx,
    taskId: string,
    action: TaskAction,
    announce?: (outcome: TransitionOutcome) => void,
  ): Promise<TransitionOutcome> {
    const ws = this.openSockets()[0];
    const capabilities = ws && this.botId ? await this.capabilities.get() : undefined;
    const claimNext = ws && this.botId && capabilities ? { botId: this.botId, capabilities } : undefined;
    const outcome = await applyTaskAction(ctx, taskId, action, { ...this.reportOptions(), claimNext });
    if (this.heldTask?.id === taskId) this.heldTask = null;
    announce?.(outcome);
    if (outcome.retryAtMs !== null) await this.alarms.set(RETRY_PREFIX + taskId, outcome.retryAtMs);
    const counts = outcome.releasedBotId === this.botId ? outcome.releasedBotCounts : null;
    if (outcome.releasedBotId === this.botId && outcome.releasedAttempt) await this.noteAttempt(ctx, outcome.releasedAttempt);
    // The deadline entry is left as it is (see trackDeadline).
    if (outcome.claimedNext && ws) await this.deliver(ctx, ws, outcome.claimedNext, counts);
    else {
      this.noteActivity(ctx, { currentTaskId: this.heldTask?.id ?? null, counts });
      if (!outcome.claimTried) await this.pullNextTask(ctx);
    }
    await dispatchReleasedSteps(ctx, outcome.releasedStepTaskIds);
    return outcome;
  }

  /**
   * Takes the best pending task this bot can run. Whether the bot is idle and
   * not held is decided by the claim itself (conditional in D1), so no read of
   * the bot row is needed; its capabilities were cached when it connected.
   */
  private async pullNextTask(ctx: Ctx): Promise<void> {
    const ws = this.openSockets()[0];
    if (!ws || (await this.health.isQuarantined())) return; // (the claim would refuse it anyway)
    await this.claimBest(ctx, ws, (await this.capabilities.get()) ?? []);
  }

  /** Claims the best pending task this bot can run, chosen by the claim itself (claimBestTask), and sends it. */
  private async claimBest(ctx: Ctx, ws: WebSocket, capabilities: string[]): Promise<void> {
    if (!this.botId) return;
    const claimed = await claimBestTask(ctx.db, { botId: this.botId, capabilities }, ctx.now());
    if (claimed) await this.deliver(ctx, ws, claimed);
  }

  private async claimAndSend(ctx: Ctx, ws: WebSocket, task: TaskRow): Promise<TaskRow | null> {
    if (!this.botId) return null;
    const claimed = await claimForBot(ctx, task, this.botId, { requireConnected: true });
    if (!claimed) return null;
    await this.deliver(ctx, ws, claimed);
    return claimed;
  }

  /** A task this bot has just claimed: keep its row, send it, watch its deadline. */
  private async deliver(ctx: Ctx, ws: WebSocket, claimed: TaskRow, counts: BotTaskCounts | null = null): Promise<void> {
    this.heldTask = claimed;
    this.progressWrittenAtMs.clear();
    countDispatch(claimed, ctx.now());
    await this.sendAssignment(ws, claimed);
    await this.trackDeadline(claimed);
    await this.alarms.clear(RETRY_PREFIX + claimed.id);
    ctx.log.info("task dispatched", {
      task_id: claimed.id,
      attempt: claimed.attempts,
      workflow_id: claimed.workflowId,
      job_id: claimed.jobId,
    });
    if (claimed.jobId) await publishStepAssigned(ctx, claimed);
    this.noteActivity(ctx, { currentTaskId: claimed.id, counts });
    void flushMetrics(ctx);
  }

  /** A finished attempt counts in the bot's health (which may quarantine it). */
  private async noteAttempt(ctx: Ctx, attempt: Attempt): Promise<void> {
    if (this.botId) await this.health.recordAttempt(ctx, this.botId, attempt);
  }

  /** The fleet stream learns this bot's current task and finished attempts (coalesced, see fleet-activity.ts). */
  private noteActivity(ctx: Ctx, change: ActivityChange): void {
    if (this.botId) this.activity.note(ctx, this.botId, change);
  }

  /**
   * The alarm rings no later than the held task's deadline. The entry is a check, not a verdict (onDeadline
   * re-reads the task and re-arms for its real deadline), so it is written only to move earlier: a bot
   * running tasks back to back, each deadline later than the last, costs no storage write per task, and a
   * task that left is not cleared (its entry rings once and finds nothing due).
   */
  private async trackDeadline(task: TaskRow): Promise<void> {
    const deadline = deadlineOf(task);
    if (deadline !== null && isHeld(task.status)) await this.alarms.setNoLaterThan(DEADLINE, deadline);
  }

  private async sendAssignment(ws: WebSocket, task: TaskRow): Promise<void> {
    this.send(ws, await assignmentOf(this.ctxBase, task));
  }

  /**
   * A start with the bot's result right behind it (a quick task: the bot sent both back to back) is not
   * written on its own: the result's write records the start too (the task machine's complete from
   * `assigned`: its start time and `task_started` event, then `task_completed`), one D1 round trip
   * instead of two. D1 lags nothing a reader could see: until that write, the task reads `assigned`,
   * as it would while the start's own write was on its way. It waits a few ms at most for the result
   * (bot-inbox.ts; a start written that much later costs a long task nothing, and a result arriving
   * after it waits for the start's write as before).
   */
  private async startRidesWithResult(ctx: Ctx, taskId: string): Promise<boolean> {
    const held = this.heldTask;
    if (held?.id !== taskId || held.status !== "assigned") return false;
    const startedAtMs = ctx.now(); // when the bot said so, not when its result was seen
    if (!(await this.inbox.awaitResult(taskId)) || this.heldTask !== held) return false;
    this.heldTask = { ...held, startedAt: startedAtMs };
    return true;
  }

  /** This bot acts on its task; the kept row saves the read (see `heldTask`). */
  private reportOptions() {
    return { actingBotId: this.botId ?? undefined, knownRow: this.heldTask ?? undefined };
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

const deadlineOf = (task: TaskRow): number | null =>
  taskDeadlineMs({ assignedAtMs: task.assignedAt, startedAtMs: task.startedAt, timeoutSeconds: task.timeoutSeconds });
