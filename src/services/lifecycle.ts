/**
 * Applies a task action end to end: read → pure transition → guarded write,
 * retrying a lost race a few times. Returns what the caller must do next
 * (free a bot, dispatch a released workflow step) instead of doing it, so a
 * bot's Durable Object can handle its own bot locally.
 */

import { type Attempt, endedAttempt } from "../core/health";
import { type JobChange, jobChangeOf, jobStatusOf } from "../core/job";
import { planAfterStepChange } from "../core/step-plan";
import { botMayReport, isLateCompletion, type TaskAction, transitionTask } from "../core/task-machine";
import { MAX_PARALLELISM, stepViews } from "../core/workflow";
import { timeOrderedId } from "../crypto/ids";
import type { TaskRow } from "../db/schema";
import type { ClaimNext } from "../db/task-claims";
import { type BotTaskCounts, writeTransition } from "../db/task-writes";
import { getTask, sequenceOf, sequenceSteps, type TaskWithWaiting, taskState } from "../db/tasks";
import { AppError, loadOr404 } from "../errors";
import type { Ctx } from "./context";
import { publishJobTransition } from "./job-events";
import { countCreated, countTaskTransition } from "./metrics";
import { settleHeldResult } from "./settle";

export interface TransitionOutcome {
  task: TaskWithWaiting;
  /** Bot that held the task and must be freed / told. */
  releasedBotId: string | null;
  /** Tell the releasing bot to stop working on it: anything but its own report (cancel, timeout, operator fail, …). */
  notifyBot: boolean;
  /** Set when the task went back to pending with a backoff. */
  retryAtMs: number | null;
  /** Steps' runs this transition released (the next step, a loop's next run, a for_each's items), to dispatch now. */
  releasedStepTaskIds: string[];
  /** With `claimNext`: the task the freed bot claimed in the same batch (null: nothing it could take was due). */
  claimedNext: TaskRow | null;
  /** Whether the claim was tried (the write freed the bot); if not, the caller pulls as usual. */
  claimTried: boolean;
  /** The freed bot's finished attempts after this write, for the fleet's success rates (null: no bot freed). */
  releasedBotCounts: BotTaskCounts | null;
  /** The attempt this release ended, for the freed bot's health (null: none freed, or a cancel/unassign). */
  releasedAttempt: Attempt | null;
}

export interface ActionOptions {
  /** The acting bot must hold the task (bot tokens, WebSocket messages). */
  actingBotId?: string;
  /**
   * The task as the caller last saw it (a bot's object keeps the row of the task it holds). Decided
   * on without reading D1 first; the write is guarded by its version, so a stale copy only costs a
   * re-read and a second decision, never a wrong write.
   */
  knownRow?: TaskRow;
  /** The bot this action frees takes its next task in the same D1 batch (see task-claims.ts). */
  claimNext?: ClaimNext;
  /** The holding bot's own object acts: it has no result of its own to settle first (objects/kept-result.ts). */
  fromHolder?: boolean;
}

const MAX_RACE_RETRIES = 4;
/**
 * A for_each step's items ending together each lose to whichever wrote first, one winner a round: as many
 * rounds as items may run at once (every loser re-reads and re-decides, so it never waits on a stale view).
 */
const MAX_SIBLING_RACE_RETRIES = MAX_RACE_RETRIES + MAX_PARALLELISM;

export async function applyTaskAction(ctx: Ctx, taskId: string, action: TaskAction, opts: ActionOptions = {}): Promise<TransitionOutcome> {
  let attempts = MAX_RACE_RETRIES;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const nowMs = ctx.now();
    const known = attempt === 0 && opts.knownRow?.id === taskId ? opts.knownRow : undefined;
    const task = known ?? (await loadOr404("task", taskId, getTask(ctx.db, taskId)));
    // A result the holder's bot was told of but D1 does not have yet comes first: read again after it.
    if (!known && !opts.fromHolder && (await settleHeldResult(ctx, task))) continue;
    const state = taskState(task);
    const mayReport = !opts.actingBotId || botMayReport(state, opts.actingBotId, action);
    const result = transitionTask(state, action, nowMs, ctx.config.backoff);
    // A refusal is only ever decided on what D1 says now, never on a kept copy.
    if (known && (!mayReport || !result.ok)) continue;
    if (!mayReport) {
      throw new AppError("forbidden", `task ${taskId} is not held by bot ${opts.actingBotId}`, { task_id: taskId, status: task.status });
    }
    if (!result.ok) throw new AppError("invalid_transition", result.message, { task_id: taskId, status: task.status, action: action.kind });
    const { patch, events, releasedBotId } = result.transition;

    const seq = sequenceOf(task);
    const stepsBefore = seq && patch.status !== task.status ? await sequenceSteps(ctx.db, seq) : null;
    const ended = { status: patch.status, result: patch.result, error: patch.error, errorCode: patch.errorCode };
    const workflowPlan = stepsBefore && task.stepIndex !== null ? planAfterStepChange(stepsBefore, task.id, ended, timeOrderedId) : null;
    const jobChange: JobChange | null =
      seq?.kind === "job" && workflowPlan
        ? jobChangeOf(workflowPlan.steps, { status: patch.status, result: patch.result, error: patch.error, errorCode: patch.errorCode })
        : null;
    const eventData: Record<string, unknown> = { bot_id: task.botId, attempt: task.attempts };
    if (action.kind === "fail") Object.assign(eventData, { error_code: action.code, error: action.error });
    if (action.kind === "cancel") eventData.reason = action.reason;
    if (isLateCompletion(state, action)) Object.assign(eventData, { bot_id: task.previousBotId, late: true });

    const claimNext = opts.claimNext && releasedBotId === opts.claimNext.botId ? opts.claimNext : undefined;
    const written = await writeTransition(ctx.db, {
      task,
      patch,
      events,
      eventData,
      releasedBotId,
      workflowPlan,
      jobChange,
      nowMs,
      claimNext,
    });
    if (!written) {
      // Someone changed the task (or, for an item, its step) since we read it: re-read and re-decide.
      if (workflowPlan?.siblingsEnded) attempts = MAX_SIBLING_RACE_RETRIES;
      continue;
    }
    countTaskTransition(task, patch, events);
    // Runs the plan added (a loop's next, a for_each's items) are tasks created, under their step's capability.
    if (workflowPlan?.create.length) {
      countCreated(
        workflowPlan.create.map((r) => ({ capability: stepsBefore?.find((s) => s.taskId === r.fromTaskId)?.capability ?? null })),
      );
    }
    // waiting_for of a re-queued task is computed on the next read (routes re-read for their response).
    const updated: TaskWithWaiting = { ...written.row, waitingFor: null };
    ctx.log.info("task transition", {
      task_id: taskId,
      bot_id: task.botId,
      workflow_id: task.workflowId,
      from: task.status,
      to: patch.status,
      action: action.kind,
      ...(action.kind === "fail" ? { error_code: action.code } : {}),
      ...(workflowPlan ? { workflow_status: workflowPlan.status } : {}),
    });
    // The runs the plan released (the next step; a loop's next run; a for_each's items), to hand to bots now.
    // (not the one the freed bot already claimed in this write: offering it again would only re-read it)
    const releasedStepTaskIds = workflowPlan
      ? [
          ...(workflowPlan.firstItem ? [workflowPlan.firstItem.taskId] : []),
          ...workflowPlan.release,
          ...workflowPlan.create.filter((r) => r.released).map((r) => r.taskId),
        ].filter((id) => id !== written.next?.id)
      : [];
    const outcome: TransitionOutcome = {
      task: updated,
      releasedBotId,
      // Every release tells the bot, except the one it reported itself (its own result or failure).
      notifyBot: releasedBotId !== null && !reportedBy(action, releasedBotId, opts),
      retryAtMs: patch.status === "pending" ? (patch.runAfterMs ?? null) : null,
      releasedStepTaskIds,
      claimedNext: written.next,
      claimTried: claimNext !== undefined,
      releasedBotCounts: written.releasedBotCounts,
      releasedAttempt: releasedBotId
        ? endedAttempt(
            { assignedAtMs: task.assignedAt, startedAtMs: task.startedAt, timeoutSeconds: task.timeoutSeconds },
            { status: patch.status, errorCode: patch.errorCode ?? null },
            nowMs,
          )
        : null,
    };
    if (seq?.kind === "job" && stepsBefore) {
      await publishJobTransition(ctx, {
        jobId: seq.id,
        task,
        patch,
        events,
        jobBefore: jobStatusOf(stepViews(stepsBefore)),
        jobChange,
        stepCount: workflowPlan?.steps.length ?? stepViews(stepsBefore).length,
        decisions: workflowPlan?.decisions ?? [],
      });
    }
    return outcome;
  }
  throw new AppError("conflict", `task ${taskId} kept changing while we updated it; try again`, { task_id: taskId });
}

/** The holder itself sent this outcome (a result or a failure), so it needs no word that the task left it. */
function reportedBy(action: TaskAction, botId: string, opts: ActionOptions): boolean {
  const ownReport = action.kind === "complete" || (action.kind === "fail" && action.code === "bot_error");
  return ownReport && opts.actingBotId === botId;
}
