/**
 * Automatic dispatch. Every assignment goes through the bot's Durable Object
 * (it knows whether its socket is really open) and is settled by the atomic
 * claim in D1, so a task never goes to two bots and a bot never holds two tasks.
 */

import { eq } from "drizzle-orm";
import { findIdleConnectedBots } from "../db/bots";
import { type TaskRow, tasks } from "../db/schema";
import { findDueTasks } from "../db/tasks";
import { botStub, type Ctx } from "./context";
import type { TransitionOutcome } from "./lifecycle";

/** How many idle bots to offer one task to before leaving it pending. */
const CANDIDATES_PER_TASK = 5;

/** Offers a pending task to idle capable bots. Returns the bot that took it, or null. */
export async function dispatchTask(ctx: Ctx, taskOrId: string | TaskRow): Promise<string | null> {
  const task = typeof taskOrId === "string" ? await ctx.db.select().from(tasks).where(eq(tasks.id, taskOrId)).get() : taskOrId;
  if (!task || task.status !== "pending" || !task.ready || task.runAfter > ctx.now()) return null;
  const candidates = await findIdleConnectedBots(ctx.db, task.capability, CANDIDATES_PER_TASK);
  for (const bot of candidates) {
    try {
      if (await botStub(ctx, bot.id).offerTask(bot.id, task)) return bot.id;
    } catch (err) {
      ctx.log.warn("offer to bot failed", { bot_id: bot.id, task_id: task.id, error: String(err) });
    }
  }
  ctx.log.debug("task left pending", { task_id: task.id, capability: task.capability, candidates: candidates.length });
  return null;
}

/** Dispatches due pending tasks (sweeper safety net), bounded per run. */
export async function dispatchDueTasks(ctx: Ctx, limit: number): Promise<number> {
  let assigned = 0;
  for (const task of await findDueTasks(ctx.db, ctx.now(), limit)) {
    if (await dispatchTask(ctx, task)) assigned++;
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
      await botStub(ctx, outcome.releasedBotId).taskReleased(outcome.releasedBotId, task.id, {
        notify: outcome.notifyBot,
        reason: task.errorCode ?? task.status,
        retryAtMs: outcome.retryAtMs,
      });
    } catch (err) {
      ctx.log.warn("could not tell bot its task was released", { bot_id: outcome.releasedBotId, task_id: task.id, error: String(err) });
    }
  }
  if (outcome.releasedStepTaskId) await dispatchTask(ctx, outcome.releasedStepTaskId);
}

/** A held task was deleted (alone or with its workflow): tell its bot to stop and let it take other work. */
export async function releaseDeletedTask(ctx: Ctx, botId: string, taskId: string): Promise<void> {
  await botStub(ctx, botId).taskReleased(botId, taskId, { notify: true, reason: "deleted", retryAtMs: null });
}
