/** Job queries. A job's steps are tasks with `job_id` + `step_index`; its row is updated with them (task-writes.ts). */
import { and, eq, gte, isNull, lt, sql } from "drizzle-orm";
import type { JobStatus } from "../core/job";
import { runBatch, type Statement } from "./batch";
import { changedRows, type Db } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { events, type JobRow, jobs, type TaskRow, tasks } from "./schema";
import { insertTasks } from "./task-inserts";
import { inSequence } from "./tasks";

export type JobInsert = typeof jobs.$inferInsert;

/** The job and its steps in one batch (`extra` rides along: a project row, say). */
export async function insertJob(db: Db, job: JobInsert, steps: TaskRow[], extra: Statement[] = []): Promise<void> {
  await insertTasks(db, steps, [
    ...extra,
    db.insert(jobs).values(job),
    db.insert(events).values({
      entityType: "job",
      entityId: job.id,
      type: "job_created",
      data: { steps: steps.length, workflow_id: job.workflowId ?? null },
      createdAt: job.createdAt,
    }),
  ]);
}

export function getJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.select().from(jobs).where(eq(jobs.id, id)).get();
}

export function getJobByIdempotencyKey(db: Db, key: string): Promise<JobRow | undefined> {
  return db.select().from(jobs).where(eq(jobs.idempotencyKey, key)).get();
}

export interface JobFilter {
  status?: JobStatus;
  workflowId?: string;
  scheduleId?: string;
  createdAfterMs?: number;
  createdBeforeMs?: number;
  limit: number;
  cursor: Cursor | null;
}

export async function listJobs(db: Db, f: JobFilter) {
  const rows = await db
    .select()
    .from(jobs)
    .where(
      and(
        f.status ? eq(jobs.status, f.status) : undefined,
        f.workflowId ? eq(jobs.workflowId, f.workflowId) : undefined,
        f.scheduleId ? eq(jobs.scheduleId, f.scheduleId) : undefined,
        f.createdAfterMs !== undefined ? gte(jobs.createdAt, f.createdAfterMs) : undefined,
        f.createdBeforeMs !== undefined ? lt(jobs.createdAt, f.createdBeforeMs) : undefined,
        afterCursor(jobs, f.cursor),
      ),
    )
    .orderBy(...newestFirst(jobs))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/**
 * Starts a job created with `execute: false`: releases its first step.
 * Conditional, so two concurrent executes start it once. True if this call did.
 */
export async function executeJob(db: Db, id: string, nowMs: number): Promise<boolean> {
  const results = await runBatch(db, [
    db
      .update(jobs)
      .set({ queuedAt: nowMs, updatedAt: nowMs })
      .where(and(eq(jobs.id, id), isNull(jobs.queuedAt), eq(jobs.status, "queued"))),
    db
      .update(tasks)
      .set({ ready: true, updatedAt: nowMs, version: sql`${tasks.version} + 1` })
      .where(
        and(
          inSequence({ kind: "job", id }),
          eq(tasks.stepIndex, 0),
          eq(tasks.status, "pending"),
          sql`EXISTS (SELECT 1 FROM jobs WHERE id = ${id} AND queued_at = ${nowMs})`,
        ),
      ),
  ]);
  return changedRows(results[0]) === 1;
}
