/**
 * The work of one bot, as its Durable Object drives it: the task it holds (delivered, started,
 * reported on, settled, timed out) and the next one it takes. The object (bot-session.ts) owns the
 * socket, the connection's lifecycle and the alarm; this owns what the bot does with a socket open.
 *
 * The task row kept here is the object's last read or write of it: the bot's start and result are
 * decided on it without reading D1 first (lifecycle's `knownRow`; the write is version-guarded, so a
 * stale copy costs a re-read, never a wrong write). Memory only.
 */
import type { BotMessage, ServerMessage } from "../contracts/ws";
import type { Attempt } from "../core/health";
import { isHeld, resultMayBeWrittenBehind, type TaskAction, taskDeadlineMs } from "../core/task-machine";
import { getBot } from "../db/bots";
import type { TaskRow } from "../db/schema";
import { claimBestTask } from "../db/task-claims";
import { type BotTaskCounts, recordProgress } from "../db/task-writes";
import { getTask, taskState } from "../db/tasks";
import { AppError, refusedForGood } from "../errors";
import type { Ctx } from "../services/context";
import { claimForBot, dispatchReleasedSteps, dispatchTask } from "../services/dispatch";
import { publishStepAssigned, publishStepLog, publishStepProgress } from "../services/job-events";
import { applyTaskAction, type TransitionOutcome } from "../services/lifecycle";
import { countDispatch, flushMetrics } from "../services/metrics";
import type { AlarmSchedule } from "./alarm-schedule";
import { assignmentOf } from "./bot-frames";
import type { BotHealth } from "./bot-health";
import type { BotInbox } from "./bot-inbox";
import type { ActivityChange, FleetActivity } from "./fleet-activity";
import type { KeptResult } from "./kept-result";
import type { KeptValue } from "./kept-value";

/** The alarm entry of the held task's deadline (one: a bot holds one task). */
export const DEADLINE = "deadline";
/** Alarm entries for a task of this bot's back in the queue with a backoff: the bot looks for work when it is due. */
export const RETRY_PREFIX = "retry:";
/** The alarm entry that retries a kept result whose D1 write failed (kept-result.ts). */
export const KEPT_RETRY = "kept_retry";
const KEPT_RETRY_DELAY_MS = 5000;
/** A task's progress reaches D1 at most this often (every message still reaches the job's watchers). */
const PROGRESS_WRITE_INTERVAL_MS = 1000;

/** How a released task is told to the bot's object by whoever released it (dispatch.ts). */
export interface ReleaseInfo {
  notify: boolean;
  reason: string;
  retryAtMs: number | null;
  /** The bot's finished attempts after the release (null: unknown, e.g. a deleted task). */
  counts: BotTaskCounts | null;
  /** The attempt the release ended, for the bot's health (null: it does not count). */
  attempt?: Attempt | null;
}

/** What the work needs of its object. */
export interface BotWorkDeps {
  /** The object's bot (null only for an instance nobody addressed by name). */
  botId: () => string | null;
  /** The bot's open socket, if any. */
  socket: () => WebSocket | undefined;
  send: (ws: WebSocket, msg: ServerMessage) => void;
  /** Sends an `error` frame (the bot's message was refused). */
  refuse: (ws: WebSocket, code: string, message: string, details: Record<string, unknown>) => void;
  alarms: AlarmSchedule;
  health: BotHealth;
  activity: FleetActivity;
  /** The bot's capabilities as D1 said at its last connect. */
  capabilities: KeptValue<string[] | null>;
  inbox: BotInbox;
  /** The result written behind (kept-result.ts). */
  kept: KeptResult;
  /** A context whose D1 writes linger at the group-commit writer; null: no writer or a writer under load, no writing behind. */
  lingering: (ctx: Ctx) => Ctx | null;
}

type Payload<T extends BotMessage["type"]> = Extract<BotMessage, { type: T }>["payload"];

export class BotWork {
  /** The row of the task this bot holds (see the file's comment). */
  private heldTask: TaskRow | null = null;
  /** When each task's progress was last written to D1 (coalescing; memory only). */
  private readonly progressWrittenAtMs = new Map<string, number>();
  /** This bot's last claim found a task (a backlog): its results are then written before it is told. Memory only. */
  private backlogSeen = false;

  constructor(private readonly deps: BotWorkDeps) {}

  // ---------------------------------------------------------------- the bot's reports

  async progress(ctx: Ctx, ws: WebSocket, botId: string, { task_id, progress, message }: Payload<"task_progress">): Promise<void> {
    // D1 takes a task's progress at most once a second (the row and the job follow); watchers get every message.
    const held = this.heldTask?.id === task_id ? this.heldTask : null;
    const lastWriteMs = this.progressWrittenAtMs.get(task_id) ?? 0;
    if (!held || ctx.now() - lastWriteMs >= PROGRESS_WRITE_INTERVAL_MS) {
      const jobId = held?.jobId ?? null;
      const applied = await recordProgress(ctx.db, { taskId: task_id, botId, jobId }, progress, message ?? null, ctx.now());
      if (!applied) return this.deps.refuse(ws, "invalid_transition", "progress for a task this bot does not hold", { task_id });
      this.progressWrittenAtMs.set(task_id, ctx.now());
    }
    if (held?.jobId) await publishStepProgress(ctx, held, progress, message ?? null);
  }

  async log(ctx: Ctx, ws: WebSocket, { task_id, stream, lines }: Payload<"task_log">): Promise<void> {
    const held = this.heldTask?.id === task_id ? this.heldTask : null;
    if (!held) return this.deps.refuse(ws, "invalid_transition", "log lines for a task this bot does not hold", { task_id });
    if (held.jobId) await publishStepLog(ctx, held, stream, lines);
  }

  async started(ctx: Ctx, ws: WebSocket, botId: string, taskId: string): Promise<void> {
    if (await this.startRidesWithResult(ctx, taskId)) {
      this.deps.send(ws, { type: "task_ack", payload: { task_id: taskId, status: "in_progress", applied: true, ack_of: "task_started" } });
      return;
    }
    const outcome = await applyTaskAction(ctx, taskId, { kind: "start" }, this.reportOptions(botId));
    this.heldTask = isHeld(outcome.task.status) && outcome.task.botId === botId ? outcome.task : null;
    await this.trackDeadline(outcome.task);
    this.deps.send(ws, {
      type: "task_ack",
      payload: { task_id: outcome.task.id, status: outcome.task.status, applied: true, ack_of: "task_started" },
    });
  }

  async result(ctx: Ctx, ws: WebSocket, botId: string, { task_id, success, result, error }: Payload<"task_complete">): Promise<void> {
    const action: TaskAction = success
      ? { kind: "complete", result, reporterBotId: botId }
      : { kind: "fail", code: "bot_error", error: error ?? "bot reported failure", retry: true };
    const behind = this.writesBehind(ctx, botId, task_id, action) ? this.deps.lingering(ctx) : null;
    if (behind) {
      await this.deps.kept.keep({ taskId: task_id, result });
      this.deps.send(ws, { type: "task_ack", payload: { task_id, status: "completed", applied: true, ack_of: "task_complete" } });
      await this.deps.kept.track(this.applyKept(behind, task_id, action));
      return;
    }
    // The bot hears that its result was applied before it is offered anything else.
    await this.settleOwnTask(ctx, task_id, action, (outcome) =>
      this.deps.send(ws, { type: "task_ack", payload: { task_id, status: outcome.task.status, applied: true, ack_of: "task_complete" } }),
    );
  }

  // ---------------------------------------------------------------- what others tell this bot's object

  /** A bot back within its grace holds this task (D1 says so): keep its row, watch its deadline, tell the bot again. */
  async resume(ctx: Ctx, task: TaskRow, ws: WebSocket | undefined): Promise<void> {
    this.heldTask = task;
    await this.trackDeadline(task);
    if (ws) await this.sendAssignment(ctx, ws, task);
  }

  /** A REST assignment or start of this bot's task: as resume, and the fleet learns its current task. */
  async holding(ctx: Ctx, task: TaskRow, ws: WebSocket | undefined): Promise<void> {
    await this.resume(ctx, task, ws);
    this.noteActivity(ctx, { currentTaskId: task.id });
  }

  /** A task left this bot (completed, failed, cancelled, timed out, deleted) outside this object. */
  async released(ctx: Ctx, taskId: string, info: ReleaseInfo): Promise<void> {
    if (this.heldTask?.id === taskId) this.heldTask = null;
    const ws = this.deps.socket();
    if (ws && info.notify) this.deps.send(ws, { type: "task_cancelled", payload: { task_id: taskId, reason: info.reason } });
    if (info.retryAtMs !== null) await this.deps.alarms.set(RETRY_PREFIX + taskId, info.retryAtMs);
    if (info.attempt) await this.noteAttempt(ctx, info.attempt);
    this.noteActivity(ctx, { currentTaskId: null, counts: info.counts });
    await this.pullNextTask(ctx);
  }

  /** The deadline entry rang. D1 decides, not this object's copy: the entry may be early (kept from an earlier task, see trackDeadline). */
  async deadlineDue(ctx: Ctx, botId: string): Promise<void> {
    await this.settleKept(ctx); // a result the bot was told of is the task's outcome, not a timeout
    const bot = await getBot(ctx.db, botId);
    if (!bot?.currentTaskId) return;
    const task = await getTask(ctx.db, bot.currentTaskId);
    if (!task || task.botId !== botId || !isHeld(task.status)) return;
    const deadline = deadlineOf(task);
    if (deadline !== null && deadline > ctx.now()) return this.deps.alarms.set(DEADLINE, deadline); // early or restarted: not due yet
    const timeout: TaskAction = { kind: "fail", code: "timeout", error: `no result within ${task.timeoutSeconds}s`, retry: true };
    // The bot is told to stop before it is offered its next task.
    await this.settleOwnTask(ctx, task.id, timeout, () => {
      const ws = this.deps.socket();
      if (ws) this.deps.send(ws, { type: "task_cancelled", payload: { task_id: task.id, reason: "timeout" } });
    });
  }

  /** A retry's backoff is over: this bot looks for work, and the task is offered to whoever can run it. */
  async retryDue(ctx: Ctx, taskId: string): Promise<void> {
    await this.pullNextTask(ctx);
    await dispatchTask(ctx, taskId);
  }

  // ---------------------------------------------------------------- settling and taking tasks

  /**
   * Settles the task this bot holds, then does the follow-ups locally: forget
   * the deadline, schedule a retry wake-up, take the next task, and dispatch a
   * released workflow step to whoever can run it. With a socket open, the next
   * task is claimed in the same D1 batch as the settlement.
   */
  async settleOwnTask(
    ctx: Ctx,
    taskId: string,
    action: TaskAction,
    announce?: (outcome: TransitionOutcome) => void,
  ): Promise<TransitionOutcome> {
    const botId = this.deps.botId();
    const ws = this.deps.socket();
    const capabilities = ws && botId ? await this.deps.capabilities.get() : undefined;
    const claimNext = ws && botId && capabilities ? { botId, capabilities } : undefined;
    const outcome = await applyTaskAction(ctx, taskId, action, { ...this.reportOptions(botId), claimNext });
    if (this.heldTask?.id === taskId) this.heldTask = null;
    if (outcome.claimTried) this.backlogSeen = outcome.claimedNext !== null;
    announce?.(outcome);
    if (outcome.retryAtMs !== null) await this.deps.alarms.set(RETRY_PREFIX + taskId, outcome.retryAtMs);
    const counts = outcome.releasedBotId === botId ? outcome.releasedBotCounts : null;
    if (outcome.releasedBotId === botId && outcome.releasedAttempt) await this.noteAttempt(ctx, outcome.releasedAttempt);
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
  async pullNextTask(ctx: Ctx): Promise<void> {
    const ws = this.deps.socket();
    if (!ws || (await this.deps.health.isQuarantined())) return; // (the claim would refuse it anyway)
    await this.claimBest(ctx, ws, (await this.deps.capabilities.get()) ?? []);
  }

  /** Claims the best pending task this bot can run, chosen by the claim itself (claimBestTask), and sends it. */
  async claimBest(ctx: Ctx, ws: WebSocket, capabilities: string[]): Promise<void> {
    const botId = this.deps.botId();
    if (!botId) return;
    const claimed = await claimBestTask(ctx.db, { botId, capabilities }, ctx.now());
    this.backlogSeen = claimed !== null;
    if (claimed) await this.deliver(ctx, ws, claimed);
  }

  /** Dispatch offers this task: claimed for this bot if it is still pending and the bot idle (conditional in D1), then sent. */
  async claimAndSend(ctx: Ctx, ws: WebSocket, task: TaskRow): Promise<TaskRow | null> {
    const botId = this.deps.botId();
    if (!botId) return null;
    const claimed = await claimForBot(ctx, task, botId, { requireConnected: true });
    if (!claimed) return null;
    await this.deliver(ctx, ws, claimed);
    return claimed;
  }

  /** A task this bot has just claimed: keep its row, send it, watch its deadline. */
  async deliver(ctx: Ctx, ws: WebSocket, claimed: TaskRow, counts: BotTaskCounts | null = null): Promise<void> {
    this.heldTask = claimed;
    this.progressWrittenAtMs.clear();
    countDispatch(claimed, ctx.now());
    await this.sendAssignment(ctx, ws, claimed);
    await this.trackDeadline(claimed);
    await this.deps.alarms.clear(RETRY_PREFIX + claimed.id);
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
  async noteAttempt(ctx: Ctx, attempt: Attempt): Promise<void> {
    const botId = this.deps.botId();
    if (botId) await this.deps.health.recordAttempt(ctx, botId, attempt);
  }

  /** The fleet stream learns this bot's current task and finished attempts (coalesced, see fleet-activity.ts). */
  private noteActivity(ctx: Ctx, change: ActivityChange): void {
    const botId = this.deps.botId();
    if (botId) this.deps.activity.note(ctx, botId, change);
  }

  /**
   * The alarm rings no later than the held task's deadline. The entry is a check, not a verdict (deadlineDue
   * re-reads the task and re-arms for its real deadline), so it is written only to move earlier: a bot
   * running tasks back to back, each deadline later than the last, costs no storage write per task, and a
   * task that left is not cleared (its entry rings once and finds nothing due).
   */
  private async trackDeadline(task: TaskRow): Promise<void> {
    const deadline = deadlineOf(task);
    if (deadline !== null && isHeld(task.status)) await this.deps.alarms.setNoLaterThan(DEADLINE, deadline);
  }

  private async sendAssignment(ctx: Ctx, ws: WebSocket, task: TaskRow): Promise<void> {
    this.deps.send(ws, await assignmentOf(ctx, task));
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
    if (!(await this.deps.inbox.awaitResult(taskId)) || this.heldTask !== held) return false;
    this.heldTask = { ...held, startedAt: startedAtMs };
    return true;
  }

  /** This bot acts on its task; the kept row saves the read (see `heldTask`). */
  private reportOptions(botId: string | null) {
    return { actingBotId: botId ?? undefined, knownRow: this.heldTask ?? undefined, fromHolder: true };
  }

  // ---------------------------------------------------------------- the result written behind (kept-result.ts)

  /** Whether this result is told before D1 has it: a standalone task's success that takes it to `completed`, with no backlog. */
  private writesBehind(ctx: Ctx, botId: string, taskId: string, action: TaskAction): boolean {
    const held = this.heldTask;
    if (this.backlogSeen || held?.id !== taskId) return false;
    const standalone = held.jobId === null && held.workflowId === null;
    return resultMayBeWrittenBehind(taskState(held), standalone, botId, action, ctx.now(), ctx.config.backoff);
  }

  /** Writes a kept result to D1; a refusal for good forgets it, a failure tries again by alarm. */
  private async applyKept(ctx: Ctx, taskId: string, action: TaskAction): Promise<void> {
    try {
      await this.settleOwnTask(ctx, taskId, action);
      this.deps.kept.markApplied(taskId);
    } catch (err) {
      const gone = err instanceof AppError && err.code === "task_not_found";
      if (!refusedForGood(err) && !gone) {
        ctx.log.error("a kept result could not be written; trying again", { task_id: taskId, error: String(err) });
        return this.deps.alarms.set(KEPT_RETRY, ctx.now() + KEPT_RETRY_DELAY_MS);
      }
      // `completed`: D1 has it already (written before a restart, its entry kept until the next storage
      // write). Anything else: only a writer that bypasses the settling (a task deleted meanwhile) gets
      // here, and the result goes with the task.
      if (gone || err.details.status !== "completed") {
        ctx.log.warn("a result the bot was told of was refused: the task changed before it was written", {
          task_id: taskId,
          error: String(err),
        });
      }
      this.deps.kept.markApplied(taskId);
    }
  }

  /**
   * Whatever result this object kept reaches D1 before the caller goes on: the write on its way is
   * waited for; one kept but not written (a restart, a failed write) is written now. True if there was
   * one, or if `taskId`'s result was kept and has been written already (the caller may have read the
   * task before that write landed: it reads again).
   */
  async settleKept(ctx: Ctx, taskId?: string): Promise<boolean> {
    const settled = await this.settleAnyKept(ctx);
    return settled || (taskId !== undefined && this.deps.kept.keptFor(taskId));
  }

  private async settleAnyKept(ctx: Ctx): Promise<boolean> {
    if (await this.deps.kept.settled()) return true;
    const entry = await this.deps.kept.unapplied();
    const botId = this.deps.botId();
    if (!entry || !botId) return false;
    const action: TaskAction = { kind: "complete", result: entry.result, reporterBotId: botId };
    await this.deps.kept.track(this.applyKept(ctx, entry.taskId, action));
    return true;
  }
}

const deadlineOf = (task: TaskRow): number | null =>
  taskDeadlineMs({ assignedAtMs: task.assignedAt, startedAtMs: task.startedAt, timeoutSeconds: task.timeoutSeconds });
