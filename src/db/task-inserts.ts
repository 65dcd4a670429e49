/**
 * New tasks: the full row a create stores, and the inserts. Any number of tasks
 * travel as one JSON parameter read by json_each (two statements however many),
 * and a single create gives its task to a bot in the same batch.
 */
import { type SQL, sql } from "drizzle-orm";
import { timeOrderedId } from "../crypto/ids";
import { compiled, runBatch, type Statement } from "./batch";
import { firstIdleBot, idleBot } from "./bots";
import { changedRows, type Db, rowFromRaw } from "./client";
import { capabilityHasRoom } from "./rate-limits";
import { type TaskRow, tasks } from "./schema";

const placeholder = sql.placeholder;

export type TaskInsert = typeof tasks.$inferInsert;

/** A complete new task row: the given fields over the schema's defaults (what the insert stores). */
export function newTaskRow(fields: Pick<TaskInsert, "id" | "payload" | "createdAt" | "updatedAt"> & Partial<TaskRow>): TaskRow {
  return {
    capability: null,
    priority: 0,
    timeoutSeconds: 300,
    maxAttempts: 3,
    attempts: 0,
    status: "pending",
    botId: null,
    previousBotId: null,
    workflowId: null,
    jobId: null,
    stepIndex: null,
    iteration: 0,
    itemIndex: null,
    ready: true,
    runAfter: 0,
    result: null,
    error: null,
    errorCode: null,
    progress: null,
    progressMessage: null,
    inputArtifacts: null,
    stepRules: null,
    idempotencyKey: null,
    idempotencyHash: null,
    version: 0,
    writeId: null,
    assignedAt: null,
    startedAt: null,
    completedAt: null,
    failedAt: null,
    cancelledAt: null,
    ...fields,
  };
}

/**
 * Inserts new tasks (and their `task_created` events) with two statements
 * whatever their number: the rows travel as one JSON parameter read by
 * json_each, so a 1,000-step workflow neither binds 1,000 × 15 parameters nor
 * sends 2,000 statements. `extra` statements run in the same batch, first.
 */
export async function insertTasks(db: Db, rows: TaskRow[], extra: Statement[] = []): Promise<void> {
  await runBatch(db, [...extra, ...insertStatements(rows)]);
}

/**
 * Inserts one new task and, in the same batch, gives it to the least recently
 * used idle connected bot that can run it (the machine's `assign`, in SQL as
 * in claimNextStatements). Returns the row as stored: `assigned` with its bot
 * (the claim's own answer), or `pending` if no bot was free (the row inserted,
 * which newTaskRow made whole). One round trip and four statements for
 * "created and dispatched"; the caller still has the bot's object deliver it
 * (and hand it back if that bot's socket turns out to be gone).
 */
export async function insertTaskAndClaim(db: Db, row: TaskRow, nowMs: number): Promise<TaskRow> {
  const values = {
    taskId: row.id,
    capability: row.capability,
    workflowId: row.workflowId,
    createdAt: row.createdAt,
    nowMs,
    writeId: timeOrderedId(),
  };
  const claim = row.capability === null ? claimForAnyBot(values) : claimForCapability(values);
  // The task's row alone: its `task_created` goes in with the claim's `task_assigned`.
  const results = await runBatch(db, [...taskRowsFromJson({ rows: rowsJson([row]) }), ...claim]);
  if (changedRows(results[0]) !== 1) throw new Error(`task ${row.id} was not stored`);
  const claimed = results[1 + CREATE_CLAIM_TAKE]?.results?.[0] as Record<string, unknown> | undefined;
  return claimed ? rowFromRaw<TaskRow>(tasks, claimed) : row;
}

/** Where in a create's claim the task is taken (its RETURNING is the claimed row). */
const CREATE_CLAIM_TAKE = 1;

/** insertTaskAndClaim's claim: for a task of one capability (`capable`), or one any bot may run. */
function claimOnCreateTemplate(capable: boolean): SQL[] {
  const taskId = placeholder("taskId");
  const capability = placeholder("capability");
  const nowMs = placeholder("nowMs");
  const writeId = placeholder("writeId");
  const holder = sql`(SELECT id FROM bots WHERE current_task_id = ${taskId})`;
  return [
    sql`UPDATE bots SET current_task_id = ${taskId}, last_assigned_at = ${nowMs}, updated_at = ${nowMs}
        WHERE id = ${firstIdleBot(capable ? capability : null)}
          AND ${idleBot}
          AND EXISTS (SELECT 1 FROM tasks WHERE id = ${taskId} AND status = 'pending' AND ready = 1 AND run_after <= ${nowMs})
          ${capable ? sql`AND ${capabilityHasRoom(sql`${capability}`)}` : sql``}`,
    sql`UPDATE tasks SET status = 'assigned', bot_id = ${holder}, attempts = attempts + 1, assigned_at = ${nowMs},
          version = version + 1, write_id = ${writeId}, updated_at = ${nowMs}
        WHERE id = ${taskId} AND status = 'pending' AND ready = 1 AND run_after <= ${nowMs} AND EXISTS ${holder}
        RETURNING *`,
    // The task's `task_created` (as insertStatements writes it), then its `task_assigned` if it was claimed.
    sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', entity_id, type, data, at FROM (
          SELECT ${taskId} AS entity_id, 'task_created' AS type, json_object('workflow_id', ${placeholder("workflowId")}) AS data,
            ${placeholder("createdAt")} AS at, 0 AS ord
          UNION ALL
          SELECT id, 'task_assigned', json_object('bot_id', bot_id, 'attempt', attempts, 'status', 'assigned'), ${nowMs}, 1
            FROM tasks WHERE id = ${taskId} AND write_id = ${writeId})
        ORDER BY ord`,
  ];
}

const claimForCapability = compiled(() => claimOnCreateTemplate(true));
const claimForAnyBot = compiled(() => claimOnCreateTemplate(false));

/** New tasks and their `task_created` events: two statements however many tasks. */
function insertStatements(rows: TaskRow[]): Statement[] {
  const values = { rows: rowsJson(rows) };
  return [...taskRowsFromJson(values), ...createdEventsFromJson(values)];
}

/** The rows as the one JSON parameter both inserts read (column names, values as stored). */
function rowsJson(rows: TaskRow[]): string {
  return JSON.stringify(
    rows.map((r) => ({
      id: r.id,
      payload: JSON.stringify(r.payload ?? null),
      capability: r.capability,
      priority: r.priority,
      timeout_seconds: r.timeoutSeconds,
      max_attempts: r.maxAttempts,
      workflow_id: r.workflowId,
      job_id: r.jobId,
      step_index: r.stepIndex,
      ready: r.ready ? 1 : 0,
      run_after: r.runAfter,
      input_artifacts: r.inputArtifacts ? JSON.stringify(r.inputArtifacts) : null,
      step_rules: r.stepRules ? JSON.stringify(r.stepRules) : null,
      idempotency_key: r.idempotencyKey,
      idempotency_hash: r.idempotencyHash,
      created_at: r.createdAt,
      updated_at: r.updatedAt,
    })),
  );
}

const col = (name: string) => sql.raw(`json_extract(value, '$.${name}')`);

/** insertStatements' texts, one JSON parameter (`rows`) for any number of tasks: the rows, then their events. */
const taskRowsFromJson = compiled<{ rows: string }>(() => [
  sql`INSERT INTO tasks (id, payload, capability, priority, timeout_seconds, max_attempts, workflow_id, job_id, step_index,
          ready, run_after, input_artifacts, step_rules, idempotency_key, idempotency_hash, created_at, updated_at, status)
        SELECT ${col("id")}, ${col("payload")}, ${col("capability")}, ${col("priority")}, ${col("timeout_seconds")}, ${col("max_attempts")},
          ${col("workflow_id")}, ${col("job_id")}, ${col("step_index")}, ${col("ready")}, ${col("run_after")}, ${col("input_artifacts")}, ${col("step_rules")}, ${col("idempotency_key")},
          ${col("idempotency_hash")}, ${col("created_at")}, ${col("updated_at")}, 'pending'
        FROM json_each(${placeholder("rows")})`,
]);
const createdEventsFromJson = compiled<{ rows: string }>(() => [
  sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
        SELECT 'task', ${col("id")}, 'task_created', json_object('workflow_id', ${col("workflow_id")}), ${col("created_at")}
        FROM json_each(${placeholder("rows")})`,
]);
