/** Workflow queries. A workflow's steps are tasks with `workflow_id` + `step_index`. */
import { and, eq, isNull, sql } from "drizzle-orm";
import type { WorkflowStatus } from "../core/workflow";
import { runBatch } from "./batch";
import { changedRows, type Db, inJsonList } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { bots, events, type TaskRow, tasks, type WorkflowRow, workflows } from "./schema";
import { insertTasks } from "./task-inserts";
import { inSequence } from "./tasks";

export async function insertWorkflow(db: Db, row: typeof workflows.$inferInsert, steps: TaskRow[]): Promise<void> {
  await insertTasks(db, steps, [
    db.insert(workflows).values(row),
    db.insert(events).values({
      entityType: "workflow",
      entityId: row.id,
      type: "workflow_created",
      data: { steps: steps.length },
      createdAt: row.createdAt,
    }),
  ]);
}

export async function getWorkflow(db: Db, id: string): Promise<WorkflowRow | undefined> {
  return db.select().from(workflows).where(eq(workflows.id, id)).get();
}

export async function getWorkflowByIdempotencyKey(db: Db, key: string): Promise<WorkflowRow | undefined> {
  return db.select().from(workflows).where(eq(workflows.idempotencyKey, key)).get();
}

export async function taskIdsOf(db: Db, workflowIds: string[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>(workflowIds.map((id) => [id, []]));
  if (!workflowIds.length) return map;
  const rows = await db
    .select({ id: tasks.id, workflowId: tasks.workflowId })
    .from(tasks)
    .where(and(inJsonList(tasks.workflowId, workflowIds), isNull(tasks.jobId)))
    .orderBy(tasks.stepIndex);
  for (const r of rows) map.get(r.workflowId!)?.push(r.id);
  return map;
}

export interface WorkflowFilter {
  status?: WorkflowStatus;
  limit: number;
  cursor: Cursor | null;
}

export async function listWorkflows(db: Db, f: WorkflowFilter) {
  const rows = await db
    .select()
    .from(workflows)
    .where(and(f.status ? eq(workflows.status, f.status) : undefined, afterCursor(workflows, f.cursor)))
    .orderBy(...newestFirst(workflows))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/** Starts a pending workflow: releases step 0. Conditional, so a double start is a no-op. */
export async function startWorkflow(db: Db, id: string, nowMs: number): Promise<boolean> {
  const results = await runBatch(db, [
    db
      .update(workflows)
      .set({ status: "in_progress", startedAt: nowMs, updatedAt: nowMs })
      .where(and(eq(workflows.id, id), eq(workflows.status, "pending"))),
    db
      .update(tasks)
      .set({ ready: true, updatedAt: nowMs, version: sql`${tasks.version} + 1` })
      .where(
        and(
          inSequence({ kind: "workflow", id }),
          eq(tasks.stepIndex, 0),
          eq(tasks.status, "pending"),
          sql`EXISTS (SELECT 1 FROM workflows WHERE id = ${id} AND status = 'in_progress' AND started_at = ${nowMs})`,
        ),
      ),
    sql`INSERT INTO events (entity_type, entity_id, type, data, created_at)
          SELECT 'workflow', ${id}, 'workflow_started', '{}', ${nowMs}
          WHERE EXISTS (SELECT 1 FROM workflows WHERE id = ${id} AND started_at = ${nowMs})`,
  ]);
  return changedRows(results[0]) === 1;
}

export async function deleteWorkflowRows(db: Db, id: string, nowMs: number): Promise<void> {
  await runBatch(db, [
    // Free any bot running a step first, or it would stay busy with a task that no longer exists.
    db
      .update(bots)
      .set({ currentTaskId: null, updatedAt: nowMs })
      .where(sql`${bots.currentTaskId} IN (SELECT id FROM tasks WHERE workflow_id = ${id} AND job_id IS NULL)`),
    db.delete(tasks).where(inSequence({ kind: "workflow", id })),
    db.delete(workflows).where(eq(workflows.id, id)),
    db.insert(events).values({ entityType: "workflow", entityId: id, type: "workflow_deleted", data: {}, createdAt: nowMs }),
  ]);
}
