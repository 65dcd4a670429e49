/**
 * Claims: a bot takes the best due task it may run inside a batch — on its own (a pull), after a write
 * in the same batch (guarded by it), or as the hand-off of a result (the bot's row moved from the
 * finished task straight to the next). The task is chosen by the statement itself, so nothing read
 * beforehand can go stale; the columns set are the task machine's `assign` (core/task-machine.ts).
 */
import { type SQL, sql } from "drizzle-orm";
import { timeOrderedId } from "../crypto/ids";
import { compiled, runBatch, type Statement } from "./batch";
import { type Db, rowFromRaw } from "./client";
import { capabilityHasRoom } from "./rate-limits";
import { type TaskRow, tasks } from "./schema";

/** True only inside the batch whose own write stamped `writeId` on the task (values, or placeholders of a compiled statement). */
export const guard = (taskId: unknown, writeId: unknown) =>
  sql`EXISTS (SELECT 1 FROM tasks WHERE id = ${taskId} AND write_id = ${writeId})`;
const placeholder = sql.placeholder;

export interface ClaimNext {
  botId: string;
  /** The bot's capabilities (its object keeps them). */
  capabilities: string[];
}

/**
 * A bot takes the best task it can run, if it is idle, connected and not held —
 * decided inside the batch, so it costs no round trip of its own. The columns
 * set are the task machine's `assign` (core/task-machine.ts), in SQL because
 * the task is chosen by the statement itself; the claimed row comes back from
 * the claim's first statement (CLAIM_TAKE). `after` makes the claim part of the write before it.
 */
export function claimNextStatements(next: ClaimNext, guardedBy: { taskId: string; writeId: string } | null, nowMs: number): Statement[] {
  const values = {
    botId: next.botId,
    capabilities: JSON.stringify(next.capabilities),
    nowMs,
    writeId: timeOrderedId(),
    ...(guardedBy ? { guardTaskId: guardedBy.taskId, guardWriteId: guardedBy.writeId } : {}),
  };
  return guardedBy ? claimNextAfterWrite(values) : claimNextAlone(values);
}

/**
 * The statements every claim shares (the task taken, answering with its row as claimed; its
 * `task_assigned` event), with placeholders `botId`, `nowMs`, `writeId`, `capabilities`; `botMay` is
 * the claiming bot's condition and `after` the write the claim follows.
 */
function claimParts(botMay: SQL, after: SQL) {
  const botId = placeholder("botId");
  const nowMs = placeholder("nowMs");
  const writeId = placeholder("writeId");
  return {
    claimed: sql`(SELECT id FROM tasks WHERE write_id = ${writeId})`,
    take: sql`UPDATE tasks SET status = 'assigned', bot_id = ${botId}, previous_bot_id = NULL, attempts = attempts + 1,
          assigned_at = ${nowMs}, started_at = NULL, progress = NULL, progress_message = NULL,
          version = version + 1, write_id = ${writeId}, updated_at = ${nowMs}
        WHERE id = ${bestDueTask(placeholder("capabilities"), nowMs)}
          AND EXISTS (SELECT 1 FROM bots WHERE id = ${botId} AND ${botMay} AND held = 0 AND connected = 1 AND quarantined_at IS NULL)
          AND ${after}
        RETURNING *`,
    event: sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', id, 'task_assigned', json_object('bot_id', ${botId}, 'attempt', attempts, 'status', 'assigned'), ${nowMs}
        FROM tasks WHERE write_id = ${writeId}`,
  };
}

/** claimNextStatements' text: `guarded`, it runs only if the write it follows in the batch succeeded. */
function claimNextTemplate(guarded: boolean): SQL[] {
  const after = guarded ? guard(placeholder("guardTaskId"), placeholder("guardWriteId")) : sql`1 = 1`;
  const { claimed, take, event } = claimParts(sql`current_task_id IS NULL`, after);
  const nowMs = placeholder("nowMs");
  return [
    take,
    sql`UPDATE bots SET current_task_id = ${claimed}, last_assigned_at = ${nowMs}, updated_at = ${nowMs}
        WHERE id = ${placeholder("botId")} AND EXISTS ${claimed}`,
    event,
  ];
}

const claimNextAlone = compiled(() => claimNextTemplate(false));
const claimNextAfterWrite = compiled(() => claimNextTemplate(true));

/**
 * The bot whose result this batch writes takes its next task in it: the claim as in claimNextStatements,
 * but the bot's row is written once — from the finished task straight to the claimed one (or to none),
 * with its finished attempts counted — instead of freed by one statement and claimed by another, and the
 * finished task's events (`finished.events`, as eventListing lists them) go in with the claimed one's
 * `task_assigned`, one insert for both. Runs only if the result's own write succeeded (`finished`), and
 * only for a bot still holding that task.
 */
export function handOffStatements(
  next: ClaimNext,
  finished: { taskId: string; writeId: string; events: string },
  outcome: "completed" | "failed" | null,
  nowMs: number,
): Statement[] {
  return handOffToNext({
    botId: next.botId,
    capabilities: JSON.stringify(next.capabilities),
    nowMs,
    writeId: timeOrderedId(),
    finishedTaskId: finished.taskId,
    finishedWriteId: finished.writeId,
    finishedEvents: finished.events,
    completed: outcome === "completed" ? 1 : 0,
    failed: outcome === "failed" ? 1 : 0,
  });
}

/** Sorts a hand-off's `task_assigned` after the finished task's events (json_each keys count from 0). */
const CLAIM_EVENT_ORDER = sql.raw("1000000");

/** Where in a claim's statements (either kind) the task is taken: its RETURNING gives the claimed row, if any. */
export const CLAIM_TAKE = 0;
/** Where in handOffStatements the bot's row is written (its RETURNING gives the bot's counts). */
export const HAND_OFF_BOT_UPDATE = 2;

const handOffToNext = compiled(() => {
  const botId = placeholder("botId");
  const nowMs = placeholder("nowMs");
  const finishedTaskId = placeholder("finishedTaskId");
  const finished = guard(finishedTaskId, placeholder("finishedWriteId"));
  const writeId = placeholder("writeId");
  const { claimed, take } = claimParts(sql`current_task_id = ${finishedTaskId}`, finished);
  return [
    take,
    // The finished task's events in their order, then the claimed task's (ordered by a column of their own:
    // a compound SELECT has no order of its parts otherwise).
    sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', entity_id, type, data, ${nowMs} FROM (
          SELECT ${finishedTaskId} AS entity_id, json_extract(value, '$.type') AS type, json_extract(value, '$.data') AS data, key AS ord
            FROM json_each(${placeholder("finishedEvents")}) WHERE ${finished}
          UNION ALL
          SELECT id, 'task_assigned', json_object('bot_id', ${botId}, 'attempt', attempts, 'status', 'assigned'), ${CLAIM_EVENT_ORDER}
            FROM tasks WHERE write_id = ${writeId})
        ORDER BY ord`,
    sql`UPDATE bots SET current_task_id = ${claimed},
          last_assigned_at = CASE WHEN EXISTS ${claimed} THEN ${nowMs} ELSE last_assigned_at END,
          tasks_completed = tasks_completed + ${placeholder("completed")}, tasks_failed = tasks_failed + ${placeholder("failed")},
          updated_at = ${nowMs}
        WHERE id = ${botId} AND current_task_id = ${finishedTaskId} AND ${finished}
        RETURNING tasks_completed, tasks_failed`,
  ];
});

/**
 * The best due task a bot with `capabilities` may run (highest priority, then oldest), as a subquery.
 * Each capability's best is one seek down tasks_claim_idx (pending, ready, that capability, in priority
 * order), and only capabilities with room are looked at; the winners (one per capability, and one of the
 * tasks any bot may run) are then compared. A claim reads about a row per capability, not the whole
 * queue: another capability's backlog costs it nothing (a single query over every pending task would
 * walk all of them). Rows in backoff (`run_after` later) are stepped over.
 */
function bestDueTask(capabilitiesJson: unknown, nowMs: unknown): SQL {
  const bestOf = (capability: SQL) =>
    sql`(SELECT t.id FROM tasks t WHERE t.status = 'pending' AND t.ready = 1 AND ${capability} AND t.run_after <= ${nowMs}
           ORDER BY t.priority DESC, t.created_at ASC LIMIT 1)`;
  return sql`(SELECT best.id FROM tasks best
       WHERE best.id IN (SELECT ${bestOf(sql`t.capability = c.value`)} FROM json_each(${capabilitiesJson}) c
                           WHERE ${capabilityHasRoom(sql`c.value`)}
                         UNION ALL SELECT ${bestOf(sql`t.capability IS NULL`)})
       ORDER BY best.priority DESC, best.created_at ASC LIMIT 1)`;
}

/**
 * The task a bot with these capabilities would claim now (at most one row), unexecuted, to ride in
 * another round trip's batch: a connecting bot's "is there anything to claim?". The same seeks as the
 * claim (one per capability down tasks_claim_idx, room under max_running included), so it reads a few
 * rows however long other capabilities' backlogs are.
 */
export function bestDueTaskQuery(db: Db, capabilities: string[], nowMs: number) {
  return db
    .select()
    .from(tasks)
    .where(sql`${tasks.id} = ${bestDueTask(JSON.stringify(capabilities), nowMs)}`);
}

/**
 * A free bot takes the best task it can run, chosen inside the batch (claimNextStatements): one round
 * trip, and nothing read beforehand that another bot could act on first — fifty bots woken together
 * each take a different task instead of racing for the same few. Null: nothing it may run is due, or
 * the bot is not idle, connected and free to take work.
 */
export async function claimBestTask(db: Db, next: ClaimNext, nowMs: number): Promise<TaskRow | null> {
  const results = await runBatch(db, claimNextStatements(next, null, nowMs));
  const claimed = results[CLAIM_TAKE]?.results?.[0] as Record<string, unknown> | undefined;
  return claimed ? rowFromRaw<TaskRow>(tasks, claimed) : null;
}
