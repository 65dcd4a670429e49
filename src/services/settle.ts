/**
 * Reads and writes by id of a task a bot holds go through its object first: a result the bot was
 * told of but D1 does not have yet (objects/kept-result.ts) is written before the caller reads, so a
 * read by id never lags the bot's acknowledgement and no other writer (a cancel, an operator's fail)
 * overtakes a result already acknowledged. Results are written behind only with the group-commit
 * writer, but one kept before it was turned off may remain, so the holder is asked either way.
 */
import { isHeld } from "../core/task-machine";
import type { TaskRow } from "../db/schema";
import { getTaskView, type TaskWithWaiting } from "../db/tasks";
import { loadOr404 } from "../errors";
import { botSession } from "../objects/stubs";
import type { Ctx } from "./context";

/** True if the holder had a result on its way and has written it (the caller reads the task again). */
export async function settleHeldResult(ctx: Ctx, task: Pick<TaskRow, "id" | "status" | "botId">): Promise<boolean> {
  if (!task.botId || !isHeld(task.status)) return false;
  // With the task's id: a result written between the caller's read and this call still sends it back to read again.
  return botSession(ctx.env, task.botId).settleResult(task.id);
}

/** A task by id as a reader should see it: after its holder's result on its way, if any. */
export async function readTask(ctx: Ctx, id: string): Promise<TaskWithWaiting> {
  const task = await loadOr404("task", id, getTaskView(ctx.db, id, ctx.now()));
  if (!(await settleHeldResult(ctx, task))) return task;
  return loadOr404("task", id, getTaskView(ctx.db, id, ctx.now()));
}
