/** Schedule queries. A schedule's runs are jobs with its `schedule_id` (db/jobs.ts writes them). */
import { and, asc, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import type { Statement } from "./batch";
import { changedRows, type Db } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { jobs, type ScheduleRow, schedules } from "./schema";

export function insertSchedule(db: Db, row: typeof schedules.$inferInsert): Promise<unknown> {
  return db.insert(schedules).values(row);
}

export function getSchedule(db: Db, id: string): Promise<ScheduleRow | undefined> {
  return db.select().from(schedules).where(eq(schedules.id, id)).get();
}

export function getScheduleByIdempotencyKey(db: Db, key: string): Promise<ScheduleRow | undefined> {
  return db.select().from(schedules).where(eq(schedules.idempotencyKey, key)).get();
}

export async function listSchedules(db: Db, f: { status?: ScheduleRow["status"]; limit: number; cursor: Cursor | null }) {
  const rows = await db
    .select()
    .from(schedules)
    .where(and(f.status ? eq(schedules.status, f.status) : undefined, afterCursor(schedules, f.cursor)))
    .orderBy(...newestFirst(schedules))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/** Pauses or resumes; true if the status changed. */
export async function setScheduleStatus(db: Db, id: string, status: ScheduleRow["status"], nowMs: number): Promise<boolean> {
  const res = await db
    .update(schedules)
    .set({ status, updatedAt: nowMs, ...(status === "paused" ? { nextRunAt: null } : {}) })
    .where(and(eq(schedules.id, id), sql`${schedules.status} != ${status}`))
    .run();
  return changedRows(res) === 1;
}

export function deleteSchedule(db: Db, id: string): Promise<unknown> {
  return db.delete(schedules).where(eq(schedules.id, id));
}

/** The due time the object armed its alarm for (null: none). */
export function setNextRunAt(db: Db, id: string, nextRunAtMs: number | null): Promise<unknown> {
  return db.update(schedules).set({ nextRunAt: nextRunAtMs }).where(eq(schedules.id, id));
}

/** Active schedules whose armed due time is long past: their alarm was lost (a killed runtime). */
export async function overdueScheduleIds(db: Db, beforeMs: number, limit: number): Promise<string[]> {
  const rows = await db
    .select({ id: schedules.id })
    .from(schedules)
    .where(and(eq(schedules.status, "active"), lt(schedules.nextRunAt, beforeMs)))
    .orderBy(asc(schedules.nextRunAt))
    .limit(limit)
    .all();
  return rows.map((r) => r.id);
}

/** Rides in the batch that inserts the run's job: the schedule's last run is that job. */
export const recordScheduleRun = (db: Db, id: string, jobId: string, nowMs: number): Statement =>
  db
    .update(schedules)
    .set({ runCount: sql`${schedules.runCount} + 1`, lastRunAt: nowMs, lastJobId: jobId, lastSkip: null, updatedAt: nowMs })
    .where(eq(schedules.id, id));

/** Due times that did not run (`skipped` of them), and why. */
export function recordScheduleSkips(db: Db, id: string, skipped: number, reason: string, nowMs: number): Promise<unknown> {
  return db
    .update(schedules)
    .set({ skippedCount: sql`${schedules.skippedCount} + ${skipped}`, lastSkip: reason, updatedAt: nowMs })
    .where(eq(schedules.id, id));
}

/** Runs not finished yet, oldest first (bounded: overlap decisions need only a few). */
export function activeRunsOf(db: Db, scheduleId: string, limit = 20) {
  return db
    .select({ id: jobs.id, status: jobs.status, queuedAt: jobs.queuedAt })
    .from(jobs)
    .where(and(eq(jobs.scheduleId, scheduleId), inArray(jobs.status, ["queued", "running"])))
    .orderBy(asc(jobs.createdAt), asc(jobs.scheduledFor), asc(jobs.id))
    .limit(limit)
    .all();
}

/** How many runs wait their turn (`overlap: queue`: created, not started). */
export async function waitingRunCount(db: Db, scheduleId: string): Promise<number> {
  const row = await db
    .select({ n: sql<number>`count(*)` })
    .from(jobs)
    .where(and(eq(jobs.scheduleId, scheduleId), eq(jobs.status, "queued"), isNull(jobs.queuedAt)))
    .get();
  return row?.n ?? 0;
}
