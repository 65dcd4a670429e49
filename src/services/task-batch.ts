/**
 * `POST /tasks/batch`: up to 500 tasks in one call. All are validated before
 * any is stored (the route's schema); they are stored in one D1 statement (the
 * rows travel as JSON), and idle bots are woken to pull them — each bot claims
 * the best task it can run, so a batch spreads over the fleet at once.
 *
 * Idempotency, per task: a task's own `idempotency_key`, or the batch's key
 * plus the task's index. The same batch again returns the same tasks (200);
 * a key reused with another task body is `409 idempotency_conflict` and
 * nothing is stored; a concurrent batch with the same keys replays the winner.
 */
import type { z } from "zod";
import type { TaskCreateBody } from "../contracts/tasks";
import { timeOrderedId } from "../crypto/ids";
import { findIdleConnectedBots } from "../db/bots";
import { releaseExpiredKey } from "../db/idempotency";
import type { TaskRow } from "../db/schema";
import { insertTasks, newTaskRow } from "../db/task-inserts";
import { getTasksByIdempotencyKeys, getTaskViewsByIds, type TaskWithWaiting } from "../db/tasks";
import { AppError } from "../errors";
import { botSession } from "../objects/stubs";
import type { Ctx } from "./context";
import { IDEMPOTENCY_KEY_TTL_MS, requestHash, withoutKey } from "./create-once";
import { countCreated } from "./metrics";

type TaskCreate = z.infer<typeof TaskCreateBody>;

/** Idle bots woken per batch: each pulls a task, and pulls again as it finishes. */
const MAX_BOTS_WOKEN = 50;

export async function createTaskBatch(
  ctx: Ctx,
  items: TaskCreate[],
  batchKey: string | undefined,
): Promise<{ tasks: TaskWithWaiting[]; created: number }> {
  const keys = items.map((item, index) => item.idempotency_key ?? (batchKey ? `${batchKey}#${index}` : undefined));
  const firstUse = new Map<string, number>();
  keys.forEach((key, index) => {
    if (!key) return;
    const first = firstUse.get(key);
    if (first !== undefined) {
      throw new AppError("validation_failed", `tasks ${first} and ${index} carry the same idempotency_key`, {
        field: `tasks.${index}.idempotency_key`,
      });
    }
    firstUse.set(key, index);
  });
  const hashes = await Promise.all(items.map((item, i) => (keys[i] ? requestHash(withoutKey(item)) : null)));

  // Twice at most: a concurrent batch that stored one of our keys first makes ours fail as a whole; the second pass replays it.
  for (let pass = 0; ; pass++) {
    const existing = await liveTasksByKey(ctx, [...firstUse.keys()]);
    const ids: string[] = [];
    const rows: TaskRow[] = [];
    items.forEach((item, index) => {
      const key = keys[index];
      const found = key ? existing.get(key) : undefined;
      if (found) {
        if (found.idempotencyHash !== null && found.idempotencyHash !== hashes[index]) {
          throw new AppError("idempotency_conflict", `task ${index}: this idempotency key was used with a different task`, {
            index,
            idempotency_key: key,
          });
        }
        ids.push(found.id);
        return;
      }
      const nowMs = ctx.now();
      const row = newTaskRow({
        id: timeOrderedId(),
        payload: item.payload ?? {},
        capability: item.capability ?? null,
        priority: item.priority,
        timeoutSeconds: item.timeout_seconds,
        maxAttempts: item.max_attempts,
        idempotencyKey: key ?? null,
        idempotencyHash: hashes[index] ?? null,
        createdAt: nowMs,
        updatedAt: nowMs,
      });
      rows.push(row);
      ids.push(row.id);
    });
    try {
      if (rows.length) await insertTasks(ctx.db, rows);
      countCreated(rows);
    } catch (err) {
      if (pass === 0 && firstUse.size > 0) continue;
      throw err;
    }
    if (rows.length) {
      ctx.log.info("task batch created", { created: rows.length, replayed: items.length - rows.length });
      await wakeIdleBots(ctx, rows);
    }
    const byId = new Map((await getTaskViewsByIds(ctx.db, ids, ctx.now())).map((t) => [t.id, t]));
    return { tasks: ids.map((id) => byId.get(id)!), created: rows.length };
  }
}

/** Stored tasks holding these keys; keys older than 24 hours are released (they start afresh). */
async function liveTasksByKey(ctx: Ctx, keys: string[]): Promise<Map<string, TaskRow>> {
  const live = new Map<string, TaskRow>();
  const expiredBefore = ctx.now() - IDEMPOTENCY_KEY_TTL_MS;
  for (const task of await getTasksByIdempotencyKeys(ctx.db, keys)) {
    if (task.createdAt < expiredBefore) await releaseExpiredKey(ctx.db, "task", task.idempotencyKey!, expiredBefore);
    else live.set(task.idempotencyKey!, task);
  }
  return live;
}

/**
 * Each idle connected bot that can run the batch's tasks pulls the best task it can run; one that cannot
 * be reached does not stop the others. A batch of one capability wakes only that capability's bots (a
 * bot woken for nothing it can run would spend a claim's round trip on nothing); a mixed batch, or
 * tasks without a capability, any idle bot.
 */
async function wakeIdleBots(ctx: Ctx, rows: TaskRow[]): Promise<void> {
  const capabilities = new Set(rows.map((r) => r.capability));
  const only = capabilities.size === 1 ? [...capabilities][0]! : null;
  const idle = await findIdleConnectedBots(ctx.db, only, Math.min(rows.length, MAX_BOTS_WOKEN));
  const woken = await Promise.allSettled(idle.map((bot) => botSession(ctx.env, bot.id).wake()));
  woken.forEach((w, i) => {
    if (w.status === "rejected") ctx.log.warn("could not wake a bot for a batch", { bot_id: idle[i]!.id, error: String(w.reason) });
  });
}
