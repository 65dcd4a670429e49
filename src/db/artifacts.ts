/** Artifacts' metadata (their bytes are in R2 under `r2_key`). */
import { and, asc, eq, lt, type SQL, sql } from "drizzle-orm";
import type { ArtifactKind } from "../core/artifact";
import { type Db, inJsonList } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { type ArtifactRow, artifacts, jobs, tasks } from "./schema";

export type NewArtifact = typeof artifacts.$inferInsert;

export async function insertArtifact(db: Db, row: NewArtifact): Promise<ArtifactRow> {
  const [inserted] = await db.insert(artifacts).values(row).returning();
  return inserted!;
}

export async function getArtifact(db: Db, id: string): Promise<ArtifactRow | undefined> {
  return db.select().from(artifacts).where(eq(artifacts.id, id)).get();
}

/** Ready artifacts among `ids` (any number: the ids go in as one JSON parameter), in no order. */
export async function readyArtifactsIn(db: Db, ids: readonly string[]): Promise<ArtifactRow[]> {
  if (ids.length === 0) return [];
  return db
    .select()
    .from(artifacts)
    .where(and(inJsonList(artifacts.id, ids), eq(artifacts.status, "ready")))
    .all();
}

export interface ArtifactFilter {
  jobId?: string;
  taskId?: string;
  projectId?: string;
  kind?: ArtifactKind;
  limit: number;
  cursor: Cursor | null;
}

/** Ready artifacts, newest first (a pending upload is not listed until its bytes are in). */
export async function listArtifacts(db: Db, f: ArtifactFilter) {
  const rows = await db
    .select()
    .from(artifacts)
    .where(
      and(
        eq(artifacts.status, "ready"),
        f.jobId ? eq(artifacts.jobId, f.jobId) : undefined,
        f.taskId ? eq(artifacts.taskId, f.taskId) : undefined,
        f.projectId ? eq(artifacts.projectId, f.projectId) : undefined,
        f.kind ? eq(artifacts.kind, f.kind) : undefined,
        afterCursor(artifacts, f.cursor),
      ),
    )
    .orderBy(...newestFirst(artifacts))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/** A pending upload's bytes are in: ready, once (a second PUT of the same URL finds it ready and changes nothing). */
export async function markArtifactReady(db: Db, id: string, stored: { size: number; sha256: string }, nowMs: number) {
  return db
    .update(artifacts)
    .set({ status: "ready", size: stored.size, sha256: stored.sha256, updatedAt: nowMs, uploadExpiresAt: null })
    .where(and(eq(artifacts.id, id), eq(artifacts.status, "pending")))
    .returning()
    .get();
}

export async function deleteArtifactRows(db: Db, ids: readonly string[]): Promise<void> {
  if (ids.length > 0) await db.delete(artifacts).where(inJsonList(artifacts.id, ids));
}

/**
 * Up to `limit` artifacts retention removes: those whose job (or, without a job, whose task) is gone —
 * the job cleanup ran first —, and pending uploads whose URL expired before their bytes came.
 * Artifacts of nothing (an admin's uploads) stay until deleted.
 */
export async function artifactsToRemove(db: Db, nowMs: number, limit: number): Promise<ArtifactRow[]> {
  const jobGone: SQL = sql`${artifacts.jobId} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${jobs} WHERE ${jobs.id} = ${artifacts.jobId})`;
  const taskGone: SQL = sql`${artifacts.jobId} IS NULL AND ${artifacts.taskId} IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ${tasks} WHERE ${tasks.id} = ${artifacts.taskId})`;
  const expiredUpload = and(eq(artifacts.status, "pending"), lt(artifacts.uploadExpiresAt, nowMs));
  return db
    .select()
    .from(artifacts)
    .where(sql`(${jobGone}) OR (${taskGone}) OR (${expiredUpload})`)
    .orderBy(asc(artifacts.createdAt))
    .limit(limit)
    .all();
}

/** A job's ready artifacts, oldest first (its result lists them). */
export async function artifactsOfJob(db: Db, jobId: string, limit: number): Promise<ArtifactRow[]> {
  return db
    .select()
    .from(artifacts)
    .where(and(eq(artifacts.jobId, jobId), eq(artifacts.status, "ready")))
    .orderBy(asc(artifacts.createdAt))
    .limit(limit)
    .all();
}
