/**
 * Task writes. D1 has no interactive transactions, so every state change is one
 * `db.batch()` whose first statement is conditional on the task's `version` and
 * stamps a unique `write_id`; every other statement in the batch (freeing the
 * bot, the event, the workflow step release) runs only if that `write_id` is
 * there. Two writers can never both win; the loser re-reads and re-decides.
 */
import { and, eq, inArray, isNull, type SQL, sql } from "drizzle-orm";
import { isFinalJobStatus, type JobChange } from "../core/job";
import { projectStatusAfterJob } from "../core/project";
import type { NewRun, StepPlan } from "../core/step-plan";
import { HELD_TASK_STATUSES, type TaskPatch, type Transition, type TransitionEvent } from "../core/task-machine";
import { CONDITION_ERROR, SKIPPED } from "../core/workflow";
import { timeOrderedId } from "../crypto/ids";
import { compiled, runBatch, type Statement, updateStatement } from "./batch";
import { changedRows, type Db, inJsonList, rowFromRaw } from "./client";
import { capabilityHasRoom } from "./rate-limits";
import { bots, events, type TaskRow, tasks, workflows } from "./schema";
import { CLAIM_TAKE, type ClaimNext, claimNextStatements, guard, HAND_OFF_BOT_UPDATE, handOffStatements } from "./task-claims";
import { inSequence, type Sequence, sequenceOf } from "./tasks";

const placeholder = sql.placeholder;

/** Where each field of the machine's patch is stored (the machine speaks in domain terms, `…Ms`). */
const PATCH_COLUMNS = {
  botId: "botId",
  previousBotId: "previousBotId",
  attempts: "attempts",
  assignedAtMs: "assignedAt",
  startedAtMs: "startedAt",
  completedAtMs: "completedAt",
  failedAtMs: "failedAt",
  cancelledAtMs: "cancelledAt",
  runAfterMs: "runAfter",
  result: "result",
  error: "error",
  errorCode: "errorCode",
  progress: "progress",
  progressMessage: "progressMessage",
} as const satisfies Record<Exclude<keyof TaskPatch, "status">, keyof TaskRow>;

function patchColumns(patch: TaskPatch): Partial<TaskRow> {
  const cols: Record<string, unknown> = { status: patch.status };
  for (const [field, column] of Object.entries(PATCH_COLUMNS)) {
    const value = patch[field as keyof typeof PATCH_COLUMNS];
    if (value !== undefined) cols[column] = value;
  }
  return cols as Partial<TaskRow>;
}

/** A transition's events (in order), one statement however many: they travel as one JSON parameter. */
const guardedEventsStatement = compiled<{ taskId: string; writeId: string; events: string; nowMs: number }>(() => [
  sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', ${placeholder("taskId")}, json_extract(value, '$.type'), json_extract(value, '$.data'), ${placeholder("nowMs")}
        FROM json_each(${placeholder("events")})
        WHERE ${guard(placeholder("taskId"), placeholder("writeId"))}
        ORDER BY key`,
]);

/** A transition's events as one JSON parameter (each event's data a JSON text, as the events table keeps it). */
function eventListing(events: { type: string; data: Record<string, unknown> }[]): string {
  return JSON.stringify(events.map((e) => ({ type: e.type, data: JSON.stringify(e.data) })));
}

const guardedEvents = (taskId: string, writeId: string, events: string, nowMs: number): Statement =>
  guardedEventsStatement({ taskId, writeId, events, nowMs })[0]!;

export interface GuardedWrite {
  task: TaskRow;
  patch: TaskPatch;
  events: TransitionEvent[];
  eventData: Record<string, unknown>;
  releasedBotId: string | null;
  /** What the step's sequence (workflow or job) does, if the task is a step and its status changed. */
  workflowPlan: StepPlan | null;
  /** For a job's step: what the job becomes. */
  jobChange?: JobChange | null;
  nowMs: number;
  /** The bot freed by this write takes its next task in the same batch (one round trip for "result in, next task out"). */
  claimNext?: ClaimNext;
}

export interface Written {
  row: TaskRow;
  /** The task `claimNext` claimed for the bot, or null (nothing was due, or no claim was asked for). */
  next: TaskRow | null;
  /** The freed bot's finished attempts after this write (null: no bot was freed). */
  releasedBotCounts: BotTaskCounts | null;
}

export interface BotTaskCounts {
  completed: number;
  failed: number;
}

/** Applies a transition if nobody changed the task since it was read. Returns the new row, or null on a lost race. */
export async function writeTransition(db: Db, w: GuardedWrite): Promise<Written | null> {
  const { task, nowMs } = w;
  const writeId = timeOrderedId();
  const seq = sequenceOf(task);
  const siblings = w.workflowPlan?.siblingsEnded;
  const statements: Statement[] = [
    updateStatement(
      tasks,
      { ...patchColumns(w.patch), version: task.version + 1, writeId, updatedAt: nowMs },
      // A step's items: the plan holds only if no other item ended since it was made.
      siblings && seq
        ? sql`id = ${task.id} AND version = ${task.version} AND (SELECT COUNT(*) FROM tasks s WHERE ${seq.kind === "job" ? sql`s.job_id = ${seq.id}` : sql`s.workflow_id = ${seq.id} AND s.job_id IS NULL`} AND s.step_index = ${siblings.stepIndex}
                     AND s.iteration = ${siblings.iteration} AND s.id <> ${task.id}
                     AND s.status IN ('completed', 'failed', 'cancelled')) = ${siblings.ended}`
        : sql`id = ${task.id} AND version = ${task.version}`,
    ),
  ];
  // The freed bot taking its next task in this batch: its row is written once, by the hand-off (below).
  const handOff = w.claimNext !== undefined && w.claimNext.botId === w.releasedBotId;
  let releaseAt = w.releasedBotId && !handOff ? statements.length : -1;
  if (w.releasedBotId && !handOff) {
    const outcome = attemptOutcome(w.patch);
    statements.push(
      updateStatement(
        bots,
        {
          currentTaskId: null,
          updatedAt: nowMs,
          ...(outcome === "completed" ? { tasksCompleted: sql`tasks_completed + 1` } : {}),
          ...(outcome === "failed" ? { tasksFailed: sql`tasks_failed + 1` } : {}),
        },
        sql`id = ${w.releasedBotId} AND current_task_id = ${task.id} AND ${guard(task.id, writeId)}`,
        "RETURNING tasks_completed, tasks_failed",
      ),
    );
  }
  const events = eventListing(
    w.events.map((type) => ({ type, data: { ...w.eventData, status: type === "task_started" ? "in_progress" : w.patch.status } })),
  );
  // A hand-off inserts them with the next task's event (handOffStatements), one statement fewer, unless a
  // step's sequence statements come between: those may add events of this same task (a loop's end fails
  // the run that just completed), which must come after these.
  const eventsWithHandOff = handOff && !(w.workflowPlan && seq);
  if (w.events.length && !eventsWithHandOff) statements.push(guardedEvents(task.id, writeId, events, nowMs));
  if (w.workflowPlan && seq) statements.push(...sequenceStatements(db, w, seq, w.workflowPlan, writeId));
  // Last, so a workflow step this write released can be the one claimed.
  const claimAt = statements.length;
  if (w.claimNext && handOff) {
    const claim = handOffStatements(
      w.claimNext,
      { taskId: task.id, writeId, events: eventsWithHandOff ? events : "[]" },
      attemptOutcome(w.patch),
      nowMs,
    );
    releaseAt = statements.length + HAND_OFF_BOT_UPDATE;
    statements.push(...claim);
  } else if (w.claimNext) statements.push(...claimNextStatements(w.claimNext, { taskId: task.id, writeId }, nowMs));
  const results = await runBatch(db, statements);
  if (changedRows(results[0]) !== 1) return null;
  const row = { ...task, ...patchColumns(w.patch), version: task.version + 1, writeId, updatedAt: nowMs } as TaskRow;
  const claimed = w.claimNext ? (results[claimAt + CLAIM_TAKE]?.results?.[0] as Record<string, unknown> | undefined) : undefined;
  const counts = releaseAt >= 0 ? (results[releaseAt]?.results?.[0] as Record<string, number> | undefined) : undefined;
  const releasedBotCounts = counts ? { completed: Number(counts.tasks_completed), failed: Number(counts.tasks_failed) } : null;
  return { row, next: claimed ? rowFromRaw<TaskRow>(tasks, claimed) : null, releasedBotCounts };
}

/** How the bot's attempt ended, for its success rate: an unassign (never delivered) and a cancel count in neither. */
function attemptOutcome(patch: TaskPatch): "completed" | "failed" | null {
  if (patch.status === "completed") return "completed";
  if (patch.status === "cancelled" || !patch.errorCode) return null;
  return "failed";
}

/**
 * What a step's transition does to the rest of its sequence, in the same batch:
 * add runs (a loop's next iteration, a for_each's items), release, skip, fail
 * or cancel runs, then update the workflow — or, for a job's steps, the job
 * (and the project a finished initialization run belongs to). Every list
 * travels as one JSON parameter.
 */
function sequenceStatements(db: Db, w: GuardedWrite, seq: Sequence, plan: StepPlan, writeId: string): Statement[] {
  const { task, nowMs } = w;
  const guarded = guard(task.id, writeId);
  const out: Statement[] = [];
  if (plan.create.length) out.push(...newRunStatements(plan.create, guarded, nowMs));
  if (plan.firstItem) {
    out.push(sql`UPDATE tasks SET payload = json_set(payload, '$.item', json(${JSON.stringify(plan.firstItem.item ?? null)}), '$.item_index', 0),
          item_index = 0, ready = 1, version = version + 1, updated_at = ${nowMs}
        WHERE id = ${plan.firstItem.taskId} AND status = 'pending' AND ${guarded}`);
  }
  if (plan.release.length) {
    out.push(
      db
        .update(tasks)
        .set({ ready: true, updatedAt: nowMs, version: sql`${tasks.version} + 1` })
        .where(and(inSequence(seq), inJsonList(tasks.id, plan.release), eq(tasks.status, "pending"), guarded)),
    );
  }
  /** Ends the listed runs (each with its own error), each with an event in its history saying why. */
  const endRuns = (
    runs: { taskId: string; error: string; errorCode?: string }[],
    status: "cancelled" | "failed",
    code: string,
    from: SQL,
  ): Statement[] => {
    const json = JSON.stringify(runs.map((r) => ({ id: r.taskId, error: r.error, code: r.errorCode ?? code })));
    const field = (name: string) =>
      sql`(SELECT json_extract(value, ${`$.${name}`}) FROM json_each(${json}) WHERE json_extract(value, '$.id') = tasks.id)`;
    const listed = sql`id IN (SELECT json_extract(value, '$.id') FROM json_each(${json}))`;
    const at = status === "failed" ? sql`failed_at` : sql`cancelled_at`;
    return [
      // First, while the runs are as they were: the event of each run the update below ends.
      sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
          SELECT 'task', id, ${`task_${status}`},
            json_object('status', ${status}, 'error_code', ${field("code")}, 'error', ${field("error")}), ${nowMs}
          FROM tasks WHERE ${listed} AND ${from} AND ${guarded}`,
      sql`UPDATE tasks SET status = ${status}, ${at} = ${nowMs}, error = ${field("error")}, error_code = ${field("code")},
          updated_at = ${nowMs}, version = version + 1
        WHERE ${listed} AND ${from} AND ${guarded}`,
    ];
  };
  if (plan.skip.length) out.push(...endRuns(plan.skip, "cancelled", SKIPPED, sql`status = 'pending'`));
  // A failing run: a pending step whose condition could not be evaluated, or a completed run whose loop ends in failure.
  if (plan.fail.length) out.push(...endRuns(plan.fail, "failed", CONDITION_ERROR, sql`status IN ('pending', 'completed')`));
  if (plan.cancel.length) out.push(...endRuns(plan.cancel, "cancelled", "cancelled", sql`status = 'pending'`));
  if (seq.kind === "workflow") {
    const terminal = plan.status === "completed" || plan.status === "failed" || plan.status === "cancelled";
    out.push(
      db
        .update(workflows)
        .set({ status: plan.status, updatedAt: nowMs, ...(terminal ? { finishedAt: nowMs } : {}) })
        .where(and(eq(workflows.id, seq.id), guarded)),
    );
  } else if (w.jobChange) {
    out.push(...jobStatements(seq.id, w.jobChange, guarded, nowMs));
  }
  return out;
}

/**
 * A step's new runs, copied from one of its runs (payload, capability, limits,
 * rules, input artifacts): a for_each item's payload gains `item` and
 * `item_index`; a for_each step's new iteration loses them (it fans out
 * afresh); any other step's payload is copied as it is.
 */
function newRunStatements(runs: NewRun[], after: SQL, nowMs: number): Statement[] {
  const json = JSON.stringify(
    runs.map((r) => ({
      id: r.taskId,
      from: r.fromTaskId,
      iteration: r.iteration,
      item_index: r.itemIndex,
      item: r.itemIndex === null ? null : JSON.stringify(r.item ?? null),
      ready: r.released ? 1 : 0,
    })),
  );
  const col = (name: string) => sql.raw(`json_extract(n.value, '$.${name}')`);
  return [
    sql`INSERT INTO tasks (id, payload, capability, priority, timeout_seconds, max_attempts, workflow_id, job_id, step_index,
          iteration, item_index, ready, run_after, input_artifacts, step_rules, created_at, updated_at, status)
        SELECT ${col("id")},
          CASE WHEN ${col("item_index")} IS NOT NULL
                 THEN json_set(t.payload, '$.item', json(${col("item")}), '$.item_index', ${col("item_index")})
               WHEN json_extract(t.step_rules, '$.forEach') IS NOT NULL THEN json_remove(t.payload, '$.item', '$.item_index')
               ELSE t.payload END,
          t.capability, t.priority, t.timeout_seconds, t.max_attempts, t.workflow_id, t.job_id, t.step_index,
          ${col("iteration")}, ${col("item_index")}, ${col("ready")}, 0, t.input_artifacts, t.step_rules, ${nowMs}, ${nowMs}, 'pending'
        FROM json_each(${json}) n JOIN tasks t ON t.id = ${col("from")}
        WHERE ${after}`,
    sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', t.id, 'task_created', json_object('workflow_id', t.workflow_id, 'iteration', t.iteration, 'item_index', t.item_index), ${nowMs}
        FROM json_each(${json}) n JOIN tasks t ON t.id = ${col("id")}
        WHERE ${after}`,
  ];
}

/** The job as its steps now make it (core/job.ts); a finished job keeps its first end (a late step cannot reopen it). */
function jobStatements(jobId: string, change: JobChange, after: SQL, nowMs: number): Statement[] {
  const final = isFinalJobStatus(change.status);
  const statements: Statement[] = [
    sql`UPDATE jobs SET status = ${change.status}, progress = ${change.progress},
          started_at = COALESCE(started_at, ${change.status === "queued" ? null : nowMs}),
          finished_at = ${final ? nowMs : null},
          result = ${change.result === undefined ? sql`result` : JSON.stringify(change.result)},
          error = ${change.error === undefined ? sql`error` : change.error},
          error_code = ${change.errorCode === undefined ? sql`error_code` : change.errorCode},
          updated_at = ${nowMs}
        WHERE id = ${jobId} AND finished_at IS NULL AND ${after}`,
  ];
  if (final) {
    // A project's initialization run decides the project's status (seed 000's three words).
    statements.push(
      sql`UPDATE projects SET status = ${projectStatusAfterJob(change.status as "completed" | "failed" | "cancelled")},
            error = ${change.error ?? null}, updated_at = ${nowMs}
          WHERE init_job_id = ${jobId} AND ${after}`,
    );
  }
  return statements;
}

/**
 * Claims a pending task for a bot in one atomic batch: the bot takes the task
 * only if it is idle (and connected, for automatic dispatch) and the task is
 * still the version we read; the task moves only if the bot took it. The
 * task's new state is the machine's `assign` transition, decided by the caller.
 */
export async function claimTask(
  db: Db,
  task: TaskRow,
  assign: Transition,
  nowMs: number,
  requireConnected: boolean,
): Promise<TaskRow | null> {
  const botId = assign.patch.botId;
  if (assign.patch.status !== "assigned" || !botId) throw new Error("claimTask needs an assign transition");
  const writeId = timeOrderedId();
  const columns = { ...patchColumns(assign.patch), version: task.version + 1, writeId, updatedAt: nowMs };
  const results = await runBatch(db, [
    db
      .update(bots)
      .set({ currentTaskId: task.id, lastAssignedAt: nowMs, updatedAt: nowMs })
      .where(
        and(
          eq(bots.id, botId),
          sql`${bots.currentTaskId} IS NULL`,
          eq(bots.held, false),
          requireConnected ? eq(bots.connected, true) : undefined,
          // A quarantined bot is offered nothing automatically (an operator may still assign to it).
          requireConnected ? isNull(bots.quarantinedAt) : undefined,
          sql`EXISTS (SELECT 1 FROM tasks WHERE id = ${task.id} AND version = ${task.version} AND status = 'pending' AND ready = 1)`,
          // Automatic dispatch honours the capability's concurrency limit; an operator's manual assign may exceed it.
          requireConnected && task.capability !== null ? capabilityHasRoom(sql`${task.capability}`) : undefined,
        ),
      ),
    db
      .update(tasks)
      .set(columns)
      .where(
        and(
          eq(tasks.id, task.id),
          eq(tasks.version, task.version),
          sql`EXISTS (SELECT 1 FROM bots WHERE id = ${botId} AND current_task_id = ${task.id})`,
        ),
      ),
    ...(assign.events.length
      ? [
          guardedEvents(
            task.id,
            writeId,
            eventListing(
              assign.events.map((type) => ({ type, data: { bot_id: botId, attempt: columns.attempts, status: columns.status } })),
            ),
            nowMs,
          ),
        ]
      : []),
  ]);
  return changedRows(results[1]) === 1 ? { ...task, ...columns } : null;
}

/**
 * A bot's progress on the task it holds; for a job's step, the job's progress
 * follows in the same batch: its completed steps plus this step's fraction (the
 * SQL form of core/job.ts's jobProgressOf for a job whose steps run one at a time).
 */
export async function recordProgress(
  db: Db,
  ref: { taskId: string; botId: string; jobId: string | null },
  progress: number,
  message: string | null,
  nowMs: number,
): Promise<boolean> {
  const percent = Math.round(progress);
  const update = db
    .update(tasks)
    .set({ progress: percent, progressMessage: message, updatedAt: nowMs })
    .where(and(eq(tasks.id, ref.taskId), eq(tasks.botId, ref.botId), inArray(tasks.status, [...HELD_TASK_STATUSES])));
  if (!ref.jobId) return changedRows(await update) === 1;
  const results = await runBatch(db, [
    update,
    sql`UPDATE jobs SET progress = MIN(99, CAST(((SELECT COUNT(DISTINCT step_index) FROM tasks WHERE job_id = ${ref.jobId} AND status = 'completed')
            + ${percent} / 100.0) * 100 / step_count AS INTEGER)), updated_at = ${nowMs}
        WHERE id = ${ref.jobId} AND finished_at IS NULL
          AND EXISTS (SELECT 1 FROM tasks WHERE id = ${ref.taskId} AND bot_id = ${ref.botId} AND status IN ('assigned', 'in_progress'))`,
  ]);
  return changedRows(results[0]) === 1;
}

export async function deleteTaskRow(db: Db, taskId: string, nowMs: number): Promise<void> {
  await runBatch(db, [
    db.update(bots).set({ currentTaskId: null, updatedAt: nowMs }).where(eq(bots.currentTaskId, taskId)),
    db.delete(tasks).where(eq(tasks.id, taskId)),
    db.insert(events).values({ entityType: "task", entityId: taskId, type: "task_deleted", data: {}, createdAt: nowMs }),
  ]);
}
