/**
 * Automatic dispatch. Every assignment goes through the bot's Durable Object
 * (it knows whether its socket is really open) and is settled by the atomic
 * claim in D1, so a task never goes to two bots and a bot never holds two tasks.
 */
import { transitionTask } from "../core/task-machine";
import { botStatusOf, findIdleConnectedBots, getBot } from "../db/bots";
import type { TaskRow } from "../db/schema";
import { insertTaskAndClaim } from "../db/task-inserts";
import { claimTask } from "../db/task-writes";
import { findDueTasks, getTask, taskState } from "../db/tasks";
import { AppError, loadOr404 } from "../errors";
import { botSession } from "../objects/stubs";
import type { Ctx } from "./context";
import type { TransitionOutcome } from "./lifecycle";
import { countCreated } from "./metrics";

/** How many idle bots to offer one task to before leaving it pending. */
const CANDIDATES_PER_TASK = 5;

/**
 * Claims a pending task for a bot: the machine's `assign` decides the new
 * state, the guarded batch decides who wins. Null if the task or the bot changed.
 */
export async function claimForBot(ctx: Ctx, task: TaskRow, botId: string, opts: { requireConnected: boolean }): Promise<TaskRow | null> {
  const nowMs = ctx.now();
  const result = transitionTask(taskState(task), { kind: "assign", botId }, nowMs, ctx.config.backoff);
  if (!result.ok) return null;
  return claimTask(ctx.db, task, result.transition, nowMs, opts.requireConnected);
}

/**
 * `POST /tasks/{id}/assign`: an operator picks the bot. Any online idle bot with
 * the capability may take it (a bot with only REST heartbeats too); the claim
 * is the same atomic batch as automatic dispatch.
 */
export async function assignManually(ctx: Ctx, taskId: string, botId: string): Promise<void> {
  const task = await loadOr404("task", taskId, getTask(ctx.db, taskId));
  const bot = await loadOr404("bot", botId, getBot(ctx.db, botId));
  if (task.status !== "pending") {
    throw new AppError("invalid_transition", `cannot assign a task that is ${task.status}`, { task_id: taskId, status: task.status });
  }
  if (!task.ready) {
    throw new AppError("invalid_transition", "this workflow step is not released yet (its previous step has not completed)", {
      task_id: taskId,
      status: task.status,
    });
  }
  const status = botStatusOf(bot, ctx.now(), ctx.config.botStaleAfterMs);
  if (status !== "online") throw new AppError("bot_unavailable", `bot ${botId} is ${status}`, { bot_id: botId, status });
  if (task.capability && !bot.capabilities.includes(task.capability)) {
    throw new AppError("bot_unavailable", `bot ${botId} lacks capability ${task.capability}`, {
      bot_id: botId,
      capability: task.capability,
    });
  }
  if (!(await claimForBot(ctx, task, botId, { requireConnected: false }))) {
    throw new AppError("conflict", "the task or the bot changed while assigning; nothing was changed", { task_id: taskId, bot_id: botId });
  }
  ctx.log.info("task assigned manually", { task_id: taskId, bot_id: botId });
  await botSession(ctx.env, botId).taskAssigned(taskId);
}

/**
 * A new task: stored and given to an idle bot in one D1 batch, then delivered
 * by that bot's object. Returns the row as it now is (assigned, or pending when
 * no bot was free or the chosen one could not be reached).
 */
export async function createAndDispatch(ctx: Ctx, row: TaskRow): Promise<TaskRow | null> {
  const stored = await insertTaskAndClaim(ctx.db, row, ctx.now());
  countCreated([row]);
  if (!stored.botId) return null;
  try {
    if (await botSession(ctx.env, stored.botId).deliverClaimed(stored)) return stored;
  } catch (err) {
    // The object could not be reached: the task stays assigned to that bot; its grace and the sweeper re-queue it.
    ctx.log.warn("could not deliver a claimed task", { bot_id: stored.botId, task_id: stored.id, error: String(err) });
    return stored;
  }
  return dispatchTask(ctx, row.id); // handed back: offer it to the others
}

/** Offers a pending task to idle capable bots. Returns the task as claimed by the bot that took it, or null. */
export async function dispatchTask(ctx: Ctx, taskOrId: string | TaskRow): Promise<TaskRow | null> {
  const task = typeof taskOrId === "string" ? await getTask(ctx.db, taskOrId) : taskOrId;
  if (task?.status !== "pending" || !task.ready || task.runAfter > ctx.now()) return null;
  const candidates = await findIdleConnectedBots(ctx.db, task.capability, CANDIDATES_PER_TASK);
  for (const bot of candidates) {
    try {
      const claimed = await botSession(ctx.env, bot.id).offerTask(task);
      if (claimed) return claimed;
    } catch (err) {
      ctx.log.warn("offer to bot failed", { bot_id: bot.id, task_id: task.id, error: String(err) });
    }
  }
  ctx.log.debug("task left pending", { task_id: task.id, capability: task.capability, candidates: candidates.length });
  return null;
}

/**
 * Hands the runs a transition released (the next step, a loop's next run, a for_each's items: at most
 * MAX_PARALLELISM) to bots; one that fails is left to the sweeper, the others still go.
 */
export async function dispatchReleasedSteps(ctx: Ctx, taskIds: readonly string[]): Promise<void> {
  for (const id of taskIds) {
    try {
      await dispatchTask(ctx, id);
    } catch (err) {
      ctx.log.error("dispatch of a released step failed; the sweeper will retry it", { task_id: id, error: String(err) });
    }
  }
}

/** Dispatches due pending tasks (sweeper safety net), bounded per run; one failing task does not stop the rest. */
export async function dispatchDueTasks(ctx: Ctx, limit: number): Promise<number> {
  let assigned = 0;
  for (const task of await findDueTasks(ctx.db, ctx.now(), limit)) {
    try {
      if (await dispatchTask(ctx, task)) assigned++;
    } catch (err) {
      ctx.log.error("dispatch of a due task failed", { task_id: task.id, error: String(err) });
    }
  }
  return assigned;
}

/**
 * Follow-ups of a transition made outside the holding bot's Durable Object
 * (REST routes, the sweeper): free and tell the bot, dispatch a released step.
 */
export async function settleOutcome(ctx: Ctx, outcome: TransitionOutcome): Promise<void> {
  const { task } = outcome;
  if (outcome.releasedBotId) {
    try {
      await botSession(ctx.env, outcome.releasedBotId).taskReleased(task.id, {
        notify: outcome.notifyBot,
        reason: task.errorCode ?? task.status,
        retryAtMs: outcome.retryAtMs,
        counts: outcome.releasedBotCounts,
        attempt: outcome.releasedAttempt,
      });
    } catch (err) {
      ctx.log.warn("could not tell bot its task was released", { bot_id: outcome.releasedBotId, task_id: task.id, error: String(err) });
    }
  }
  await dispatchReleasedSteps(ctx, outcome.releasedStepTaskIds);
}

/** A held task was deleted (alone or with its workflow): tell its bot to stop and let it take other work. */
export async function releaseDeletedTask(ctx: Ctx, botId: string, taskId: string): Promise<void> {
  await botSession(ctx.env, botId).taskReleased(taskId, { notify: true, reason: "deleted", retryAtMs: null, counts: null });
}
