/** Task queries (the guarded writes are in task-writes.ts). */
import { and, asc, desc, eq, inArray, isNull, lte, type SQL, sql } from "drizzle-orm";
import type { JobStep } from "../core/job";
import { HELD_TASK_STATUSES, type TaskState, type TaskStatus } from "../core/task-machine";
import { botExistsFor } from "./bots";
import { type Db, inJsonList } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { capabilityHasRoom } from "./rate-limits";
import { bots, events, type TaskRow, tasks } from "./schema";

/** A task row with why it waits, if it is pending (`waiting_for`). */
export type TaskWithWaiting = TaskRow & { waitingFor?: string | null };

/** Why a pending task is not running, computed in SQL so lists stay one query. */
function waitingForSql(nowMs: number): SQL<string | null> {
  return sql<string | null>`CASE
    WHEN ${tasks.status} != 'pending' THEN NULL
    WHEN ${tasks.ready} = 0 AND ${tasks.itemIndex} IS NOT NULL THEN 'parallelism'
    WHEN ${tasks.ready} = 0 THEN 'previous_step'
    WHEN ${tasks.runAfter} > ${nowMs} THEN 'retry_backoff'
    WHEN NOT ${botExistsFor(sql`${tasks.capability}`, "available")}
      THEN CASE WHEN ${tasks.capability} IS NULL THEN 'bot' ELSE 'capability:' || ${tasks.capability} END
    WHEN NOT ${capabilityHasRoom(sql`${tasks.capability}`)} THEN 'max_running'
    WHEN NOT ${botExistsFor(sql`${tasks.capability}`, "availableUnquarantined")} THEN 'quarantined'
    ELSE 'free_bot' END`;
}

const withWaiting = (nowMs: number) => ({ task: tasks, waitingFor: waitingForSql(nowMs) });
const flatten = (r: { task: TaskRow; waitingFor: string | null }): TaskWithWaiting => ({ ...r.task, waitingFor: r.waitingFor });

/** The fields of a task row the state machine decides on. */
export const taskState = (t: TaskRow): TaskState => ({
  status: t.status,
  botId: t.botId,
  previousBotId: t.previousBotId,
  attempts: t.attempts,
  maxAttempts: t.maxAttempts,
  startedAtMs: t.startedAt,
});

/** The stored task: what lifecycle decisions read. */
export function getTask(db: Db, id: string): Promise<TaskRow | undefined> {
  return db.select().from(tasks).where(eq(tasks.id, id)).get();
}

/** The task as the API shows it, with `waiting_for`. */
export async function getTaskView(db: Db, id: string, nowMs: number): Promise<TaskWithWaiting | undefined> {
  const row = await taskViewQuery(db, id, nowMs).get();
  return row ? flatten(row) : undefined;
}

/** getTaskView's statement, unexecuted (its `run()` carries D1's meta: what it costs in rows read). */
export const taskViewQuery = (db: Db, id: string, nowMs: number) => db.select(withWaiting(nowMs)).from(tasks).where(eq(tasks.id, id));

export async function getTaskByIdempotencyKey(db: Db, key: string, nowMs: number): Promise<TaskWithWaiting | undefined> {
  const row = await db.select(withWaiting(nowMs)).from(tasks).where(eq(tasks.idempotencyKey, key)).get();
  return row ? flatten(row) : undefined;
}

/** Tasks by id or by idempotency key, any number (one bound parameter: the list travels as JSON). */
export async function getTaskViewsByIds(db: Db, ids: string[], nowMs: number): Promise<TaskWithWaiting[]> {
  if (!ids.length) return [];
  return (await db.select(withWaiting(nowMs)).from(tasks).where(inJsonList(tasks.id, ids))).map(flatten);
}

export async function getTasksByIdempotencyKeys(db: Db, keys: string[]): Promise<TaskRow[]> {
  if (!keys.length) return [];
  return db.select().from(tasks).where(inJsonList(tasks.idempotencyKey, keys));
}

/**
 * A run of steps, released in `step_index` order: a job's tasks, or a
 * workflow's own (the tasks it was created with; a job's copies carry the
 * workflow's id too, but belong to their job).
 */
export type Sequence = { kind: "job"; id: string } | { kind: "workflow"; id: string };

export const sequenceOf = (t: Pick<TaskRow, "jobId" | "workflowId" | "stepIndex">): Sequence | null => {
  if (t.stepIndex === null) return null;
  if (t.jobId) return { kind: "job", id: t.jobId };
  return t.workflowId ? { kind: "workflow", id: t.workflowId } : null;
};

/** The tasks of one sequence. */
export const inSequence = (s: Sequence): SQL =>
  s.kind === "job" ? eq(tasks.jobId, s.id) : (and(eq(tasks.workflowId, s.id), isNull(tasks.jobId)) as SQL);

/**
 * Every run of a sequence's steps as the workflow and job machines see them
 * (one row per step, more when steps loop or fan out). Results (up to 256 KiB
 * each) are read only when some step has rules whose conditions may read them.
 */
export async function sequenceSteps(db: Db, s: Sequence): Promise<JobStep[]> {
  const inSequenceR = s.kind === "job" ? sql`r.job_id = ${s.id}` : sql`r.workflow_id = ${s.id} AND r.job_id IS NULL`;
  const hasRules = sql`EXISTS (SELECT 1 FROM tasks r WHERE ${inSequenceR} AND r.step_rules IS NOT NULL)`;
  // A looping step's earlier runs are superseded (a step reads as its latest iteration): their results stay unread.
  const latestRun = sql`${tasks.iteration} = (SELECT MAX(r.iteration) FROM tasks r WHERE ${inSequenceR} AND r.step_index = ${tasks.stepIndex})`;
  const rows = await db
    .select({
      taskId: tasks.id,
      capability: tasks.capability,
      stepIndex: tasks.stepIndex,
      iteration: tasks.iteration,
      itemIndex: tasks.itemIndex,
      status: tasks.status,
      ready: tasks.ready,
      progress: tasks.progress,
      attempts: tasks.attempts,
      rules: tasks.stepRules,
      result: sql<string | null>`CASE WHEN ${hasRules} AND ${latestRun} THEN ${tasks.result} END`,
      error: tasks.error,
      errorCode: tasks.errorCode,
    })
    .from(tasks)
    .where(inSequence(s));
  return rows.map((r) => ({
    taskId: r.taskId,
    capability: r.capability,
    stepIndex: r.stepIndex ?? 0,
    iteration: r.iteration,
    itemIndex: r.itemIndex,
    status: r.status,
    released: r.ready,
    progress: r.progress,
    attempts: r.attempts,
    rules: r.rules,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error,
    errorCode: r.errorCode,
  }));
}

export interface TaskFilter {
  status?: TaskStatus;
  botId?: string;
  workflowId?: string;
  limit: number;
  cursor: Cursor | null;
}

export async function listTasks(db: Db, f: TaskFilter, nowMs: number) {
  const rows = await db
    .select(withWaiting(nowMs))
    .from(tasks)
    .where(
      and(
        f.status ? eq(tasks.status, f.status) : undefined,
        f.botId ? eq(tasks.botId, f.botId) : undefined,
        f.workflowId ? eq(tasks.workflowId, f.workflowId) : undefined,
        afterCursor(tasks, f.cursor),
      ),
    )
    .orderBy(...newestFirst(tasks))
    .limit(f.limit + 1);
  return page(rows.map(flatten), f.limit);
}

/** Pending tasks in dispatch order (highest priority, then oldest). */
export async function listPendingTasks(db: Db, nowMs: number, limit: number): Promise<TaskWithWaiting[]> {
  const rows = await db
    .select(withWaiting(nowMs))
    .from(tasks)
    .where(eq(tasks.status, "pending"))
    .orderBy(desc(tasks.priority), asc(tasks.createdAt))
    .limit(limit);
  return rows.map(flatten);
}

/** A sequence's tasks in step order, each step's runs in the order they were made (a workflow's own, or a job's). */
export async function listSequenceTasks(db: Db, s: Sequence, nowMs: number): Promise<TaskWithWaiting[]> {
  const rows = await db
    .select(withWaiting(nowMs))
    .from(tasks)
    .where(inSequence(s))
    .orderBy(asc(tasks.stepIndex), asc(tasks.iteration), asc(tasks.itemIndex));
  return rows.map(flatten);
}

/**
 * Ready pending tasks whose backoff has passed and that a free connected bot could take now (sweeper):
 * a queue of work nobody can run (no bot with its capability, every bot busy) costs a sweep this one
 * query, not a dispatch attempt per task.
 */
export async function findDueTasks(db: Db, nowMs: number, limit: number): Promise<TaskRow[]> {
  const takerExists = botExistsFor(sql`${tasks.capability}`, "idle");
  return db
    .select()
    .from(tasks)
    .where(
      and(
        eq(tasks.status, "pending"),
        eq(tasks.ready, true),
        lte(tasks.runAfter, nowMs),
        takerExists,
        capabilityHasRoom(sql`${tasks.capability}`),
      ),
    )
    .orderBy(desc(tasks.priority), asc(tasks.createdAt))
    .limit(limit);
}

/** Held tasks past their deadline by `slackMs` (the bot DO's alarm should have caught them). */
export async function findOverdueTasks(db: Db, nowMs: number, slackMs: number, limit: number): Promise<TaskRow[]> {
  return db
    .select()
    .from(tasks)
    .where(
      and(
        inArray(tasks.status, [...HELD_TASK_STATUSES]),
        sql`COALESCE(${tasks.startedAt}, ${tasks.assignedAt}) + ${tasks.timeoutSeconds} * 1000 + ${slackMs} < ${nowMs}`,
      ),
    )
    .limit(limit);
}

/** Held tasks whose bot has had no socket for longer than the reconnect grace (plus slack). */
export async function findTasksOfLostBots(db: Db, nowMs: number, graceMs: number, limit: number): Promise<TaskRow[]> {
  return db
    .select({ task: tasks })
    .from(tasks)
    .innerJoin(bots, eq(bots.id, tasks.botId))
    .where(
      and(
        inArray(tasks.status, [...HELD_TASK_STATUSES]),
        eq(bots.connected, false),
        sql`(${bots.lastHeartbeatAt} IS NULL OR ${bots.lastHeartbeatAt} < ${nowMs - graceMs})`,
        sql`COALESCE(${bots.disconnectedAt}, 0) < ${nowMs - graceMs}`,
      ),
    )
    .limit(limit)
    .then((rows) => rows.map((r) => r.task));
}

/** Tasks whose bot row is gone (deleted bot) but which are still held. */
export async function findOrphanedHeldTasks(db: Db, limit: number): Promise<TaskRow[]> {
  return db
    .select()
    .from(tasks)
    .where(and(inArray(tasks.status, [...HELD_TASK_STATUSES]), sql`NOT EXISTS (SELECT 1 FROM bots b WHERE b.id = ${tasks.botId})`))
    .limit(limit);
}

export async function listTaskEvents(db: Db, taskId: string, limit: number) {
  return db
    .select()
    .from(events)
    .where(and(eq(events.entityType, "task"), eq(events.entityId, taskId)))
    .orderBy(asc(events.id))
    .limit(limit);
}

/** Pending tasks per capability (null: any bot) and the age of the oldest, for the fleet stream (bounded). */
export async function queueDepthByCapability(db: Db, nowMs: number, limit: number) {
  const rows = await db.all<{ capability: string | null; pending: number; oldest: number }>(
    sql`SELECT capability, count(*) AS pending, min(created_at) AS oldest FROM tasks WHERE status = 'pending'
        GROUP BY capability ORDER BY pending DESC LIMIT ${limit}`,
  );
  return rows.map((r) => ({ capability: r.capability, pending: r.pending, oldest_pending_age_s: Math.round((nowMs - r.oldest) / 1000) }));
}

/** Tasks completed and failed (for good) per minute since `sinceMs`, oldest first; minutes with none are left out. */
export async function finishedTasksPerMinute(db: Db, sinceMs: number) {
  return db.all<{ minute: number; completed: number; failed: number }>(
    sql`SELECT minute, sum(completed) AS completed, sum(failed) AS failed FROM (
          SELECT completed_at / 60000 AS minute, 1 AS completed, 0 AS failed FROM tasks WHERE completed_at >= ${sinceMs}
          UNION ALL
          SELECT failed_at / 60000 AS minute, 0 AS completed, 1 AS failed FROM tasks WHERE failed_at >= ${sinceMs}
        ) GROUP BY minute ORDER BY minute`,
  );
}
