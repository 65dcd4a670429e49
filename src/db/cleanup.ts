/**
 * Retention: what is older than the cut-off and finished goes, in bounded
 * batches (each statement removes at most `limit` rows; ids travel as one JSON
 * parameter), so one cleanup run stays small however much is due.
 */
import { sql } from "drizzle-orm";
import { runBatch } from "./batch";
import { changedRows, type Db } from "./client";

/**
 * Finished jobs older than the cut-off, except a project's latest initialization
 * run (it is the project's history; the project's earlier runs go).
 */
export async function findExpiredJobIds(db: Db, cutoffMs: number, limit: number): Promise<string[]> {
  const rows = await db.all<{ id: string }>(
    sql`SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ${cutoffMs}
          AND NOT EXISTS (SELECT 1 FROM projects WHERE init_job_id = jobs.id)
        ORDER BY finished_at LIMIT ${limit}`,
  );
  return rows.map((r) => r.id);
}

/** Jobs with their tasks and the tasks' events, in one batch. Returns the rows removed per table. */
export async function deleteJobs(db: Db, jobIds: string[]): Promise<{ jobs: number; tasks: number; events: number }> {
  if (!jobIds.length) return { jobs: 0, tasks: 0, events: 0 };
  const ids = JSON.stringify(jobIds);
  const results = await runBatch(db, [
    sql`DELETE FROM events WHERE entity_type = 'task'
          AND entity_id IN (SELECT id FROM tasks WHERE job_id IN (SELECT value FROM json_each(${ids})))`,
    sql`DELETE FROM events WHERE entity_type = 'job' AND entity_id IN (SELECT value FROM json_each(${ids}))`,
    // A task still held by a bot is never part of a finished job; the bot guard is belt and braces.
    sql`DELETE FROM tasks WHERE job_id IN (SELECT value FROM json_each(${ids}))
          AND id NOT IN (SELECT current_task_id FROM bots WHERE current_task_id IS NOT NULL)`,
    sql`DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(${ids})) AND finished_at IS NOT NULL`,
    sql`DELETE FROM stream_events WHERE stream IN (SELECT 'job:' || value FROM json_each(${ids}))`,
  ]);
  return { events: changedRows(results[0]) + changedRows(results[1]), tasks: changedRows(results[2]), jobs: changedRows(results[3]) };
}

/** Tasks of no job and no workflow that finished before the cut-off, with their events. */
export async function deleteExpiredTasks(db: Db, cutoffMs: number, limit: number): Promise<number> {
  const rows = await db.all<{ id: string }>(
    sql`SELECT id FROM tasks WHERE job_id IS NULL AND workflow_id IS NULL AND status IN ('completed', 'failed', 'cancelled')
          AND COALESCE(completed_at, failed_at, cancelled_at, updated_at) < ${cutoffMs}
        LIMIT ${limit}`,
  );
  if (!rows.length) return 0;
  const ids = JSON.stringify(rows.map((r) => r.id));
  const results = await runBatch(db, [
    sql`DELETE FROM events WHERE entity_type = 'task' AND entity_id IN (SELECT value FROM json_each(${ids}))`,
    sql`DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(${ids}))`,
  ]);
  return changedRows(results[1]);
}

/** Any event, deployment log line and stream event copy older than the cut-off (oldest first, bounded). */
export async function deleteExpiredLogs(
  db: Db,
  cutoffMs: number,
  limit: number,
): Promise<{ events: number; deploymentLogs: number; streamCopies: number }> {
  const results = await runBatch(db, [
    sql`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < ${cutoffMs} ORDER BY id LIMIT ${limit})`,
    sql`DELETE FROM deployment_events WHERE id IN
          (SELECT id FROM deployment_events WHERE created_at < ${cutoffMs} ORDER BY id LIMIT ${limit})`,
    sql`DELETE FROM stream_events WHERE rowid IN (SELECT rowid FROM stream_events WHERE created_at < ${cutoffMs} LIMIT ${limit})`,
  ]);
  return { events: changedRows(results[0]), deploymentLogs: changedRows(results[1]), streamCopies: changedRows(results[2]) };
}

/** A stream's D1 copy, when its resource is deleted. */
export async function deleteStreamCopy(db: Db, stream: string): Promise<void> {
  await db.run(sql`DELETE FROM stream_events WHERE stream = ${stream}`);
}
