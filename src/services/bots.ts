/** Bot lifecycle beyond a single row: removal re-queues its task, revokes its tokens and closes its socket. */
import { deleteBotRows } from "../db/bots";
import type { BotRow } from "../db/schema";
import { AppError } from "../errors";
import { botSession } from "../objects/stubs";
import type { Ctx } from "./context";
import { settleOutcome } from "./dispatch";
import { applyTaskAction } from "./lifecycle";

/** Deletes a bot (`DELETE /bots/{id}`, a deployment's teardown): its held task goes back to the queue first. */
export async function removeBot(ctx: Ctx, bot: BotRow): Promise<void> {
  if (bot.currentTaskId) {
    try {
      const outcome = await applyTaskAction(ctx, bot.currentTaskId, {
        kind: "fail",
        code: "bot_lost",
        error: `bot ${bot.id} was deleted`,
        retry: true,
      });
      await settleOutcome(ctx, { ...outcome, releasedBotId: null });
    } catch (err) {
      // The task moved on meanwhile (completed, cancelled): nothing to re-queue.
      if (!(err instanceof AppError)) throw err;
      ctx.log.info("deleted bot's task was already settled", { bot_id: bot.id, task_id: bot.currentTaskId, code: err.code });
    }
  }
  await deleteBotRows(ctx.db, bot.id, ctx.now());
  await botSession(ctx.env, bot.id).shutdown();
  ctx.log.info("bot deleted", { bot_id: bot.id });
}
